// Bundle the CLI into one CommonJS file (dist/glayer.cjs) that bin/glayer compiles with a V8 code cache
// (dist/glayer.cjs.cache): loading one file instead of ~40 modules, and deserializing compiled code instead of
// parsing 470 KB, is most of what every command costs to start (bench rows 7, 15 and 17; README "Performance").
// CommonJS rather than ESM because node 20 has a code cache for vm.Script only, and because the modules that only
// some commands use (the web server, smart HTTP, https) then load their node built-ins when first called.
// isomorphic-git stays external and is loaded only by the commands that use it.
// Then the page of `glayer serve` (src/serve/web) into dist/web/: preact, htm and diff2html bundled in, so the
// page loads nothing from the network.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
rmSync('dist/glayer.mjs', { force: true }); // the ESM bundle of earlier builds
rmSync('dist/glayer.cjs.cache', { force: true });
await build({
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/glayer.cjs',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['isomorphic-git', 'isomorphic-git/*'],
  // import.meta.url (templates/ and the web page are found beside the bundle) is the bundle's own URL.
  define: { 'import.meta.url': '__glayerUrl' },
  banner: { js: "const __glayerUrl = require('node:url').pathToFileURL(__filename).href;" },
  // import() of our own modules becomes a lazy require: their top-level code and built-ins run when first used.
  supported: { 'dynamic-import': false },
  minifyWhitespace: true,
  minifySyntax: true,
  minifyIdentifiers: !process.env.GLAYER_BUNDLE_READABLE, // GLAYER_BUNDLE_READABLE=1: names kept, for profiles
  logLevel: 'warning',
});

// The code cache: V8's compiled form of the bundle after one real command (`status` in a new workspace), so that
// the functions a command runs are not compiled again. V8 checks it against its version and flags and ignores a
// cache that does not match (a newer node: the command just starts slower until the next build).
const ws = mkdtempSync(join(tmpdir(), 'glayer-build-'));
try {
  const glayer = (args, env = {}) => {
    const r = spawnSync(process.execPath, [resolve('bin/glayer'), ...args], { cwd: ws, env: { ...process.env, ...env }, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`bundle: glayer ${args.join(' ')} failed while making the code cache: ${r.stderr || r.error}`);
  };
  glayer(['init', '--json']);
  glayer(['status'], { GLAYER_WRITE_CODE_CACHE: resolve('dist/glayer.cjs.cache.tmp') });
  renameSync('dist/glayer.cjs.cache.tmp', 'dist/glayer.cjs.cache');
} finally {
  rmSync(ws, { recursive: true, force: true });
}

mkdirSync('dist/web', { recursive: true });
await build({
  entryPoints: ['src/serve/web/app.ts', 'src/serve/web/app.css'],
  outdir: 'dist/web',
  bundle: true,
  platform: 'browser',
  format: 'iife',
  target: 'es2020',
  minifyWhitespace: true,
  minifySyntax: true,
  minifyIdentifiers: !process.env.GLAYER_BUNDLE_READABLE, // GLAYER_BUNDLE_READABLE=1: names kept, for profiles
  legalComments: 'linked',
  external: ['/favicon.svg'],
  logLevel: 'warning',
});
for (const f of ['index.html', 'favicon.svg']) copyFileSync(`src/serve/web/${f}`, `dist/web/${f}`);
