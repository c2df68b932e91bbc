// Bundle the CLI into one file (dist/glayer.mjs): loading one module instead of ~40 saves tens of
// milliseconds on every command, which matters for `glayer status` (target: 250 ms in an empty workspace).
// isomorphic-git stays external and is loaded only by the commands that use it.
// Then the page of `glayer serve` (src/serve/web) into dist/web/: preact, htm and diff2html bundled in, so the
// page loads nothing from the network.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
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
mkdirSync('dist/web', { recursive: true });
await build({
  entryPoints: ['src/serve/web/app.ts', 'src/serve/web/app.css'],
  outdir: 'dist/web',
  bundle: true,
  platform: 'browser',
  format: 'iife',
  target: 'es2020',
  minify: true,
  legalComments: 'linked',
  external: ['/favicon.svg'],
  logLevel: 'warning',
});
for (const f of ['index.html', 'favicon.svg']) copyFileSync(`src/serve/web/${f}`, `dist/web/${f}`);
