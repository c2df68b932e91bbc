// Bundle the CLI into one file (dist/glayer.mjs): loading one module instead of ~40 saves tens of
// milliseconds on every command, which matters for `glayer status` (target: 250 ms in an empty workspace).
// isomorphic-git stays external and is loaded only by the commands that use it.
import { build } from 'esbuild';
await build({
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/glayer.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['isomorphic-git', 'isomorphic-git/*'],
  banner: { js: "import { createRequire as __glayerCreateRequire } from 'node:module'; const require = __glayerCreateRequire(import.meta.url);" },
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
});
