// The efficiency cache (store/delta-sizes.ts): each layer's delta with its file sizes, kept per layer tree in
// .glayer/glayer/cache/s/. The figures are checked against an independent count made with git (ls-tree -l of
// every layer, the files of a view), cold and warm, over a store packed by git with deltas; the cache is shown
// to be what a warm run reads (an entry altered by hand changes the figures), to grow by one entry per new layer
// (the others untouched), to survive damage (recomputed), `glayer gc` (entries of reachable layers kept, others
// removed) and to be left alone in read-only mode and when the file system refuses its writes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { efficiency, type EfficiencyReport } from '../../src/api/efficiency.js';
import { layerSizesFile } from '../../src/store/delta-sizes.js';
import { storeMode } from '../../src/store/store.js';
import { injectFault } from '../../src/sys/fs.js';
import { glayerOk } from '../helpers/cli.js';
import { fsck, git } from '../helpers/git.js';
import { countWithGit } from '../helpers/efficiency.js';
import { tmpdir } from '../helpers/tmp.js';

interface Ws { ws: string; view: string; gitdir: string }

const put = (view: string, p: string, data: string | Buffer): void => {
  fs.mkdirSync(join(view, p, '..'), { recursive: true });
  fs.writeFileSync(join(view, p), data);
};

const text = (n: number, seed: number): string => {
  let s = '';
  for (let k = 0; s.length < n; k++) s += `line ${k} of version ${seed % 3} ${'x'.repeat(k % 17)}\n`;
  return s.slice(0, n);
};

/** Layers with overwrites, deletions, an opaque directory, a symlink and large files, packed by git with deltas. */
async function fixture(): Promise<Ws> {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  await glayerOk(ws, 'mount-view');
  const view = join(ws, 'view');
  const commit = (msg: string) => glayerOk(ws, 'commit', '-m', msg);
  put(view, 'etc/a.conf', 'a'.repeat(100)); put(view, 'big/data', text(150_000, 0)); put(view, 'opt/x/1', 'x1'.repeat(50));
  put(view, 'opt/x/2', 'x2'.repeat(30)); fs.symlinkSync('etc/a.conf', join(view, 'link')); put(view, 'naïve/ü', 'u'.repeat(7));
  await commit('base');
  put(view, 'big/data', text(150_100, 1)); put(view, 'tmp/big', text(70_000, 2));
  await commit('overwrite big, add tmp');
  fs.rmSync(join(view, 'tmp'), { recursive: true }); fs.rmSync(join(view, 'link'));
  await commit('delete tmp and link');
  fs.rmSync(join(view, 'opt/x'), { recursive: true }); put(view, 'opt/x/3', 'three');
  await commit('replace opt/x');
  put(view, 'big/data', text(149_000, 2)); put(view, 'etc/a.conf', 'final'); put(view, 'naïve/ü', 'U');
  await commit('last ✓ ünï\nand a body');
  const gitdir = join(ws, '.glayer');
  git(gitdir, ['repack', '-Adf', '-q', '--depth=50', '--window=50']);
  git(gitdir, ['prune-packed']);
  return { ws, view, gitdir };
}

const layerIds = (gitdir: string): string[] => git(gitdir, ['rev-list', '--first-parent', 'HEAD']).split('\n');

const cacheDir = (gitdir: string): string => join(gitdir, 'glayer', 'cache', 's');
const entries = (gitdir: string): string[] => (fs.existsSync(cacheDir(gitdir)) ? fs.readdirSync(cacheDir(gitdir)).sort() : []);
const run = async (ws: string, ...args: string[]): Promise<EfficiencyReport> => JSON.parse((await glayerOk(ws, 'efficiency', '--json', ...args)).stdout);

test('the same figures cold and warm, equal to a count made with git; one entry per layer, read (nothing walked) when warm', async () => {
  const f = await fixture();
  assert.ok(/ \d+ [0-9a-f]{40}$/m.test(git(f.gitdir, ['verify-pack', '-v', ...fs.readdirSync(join(f.gitdir, 'objects', 'pack')).filter((n) => n.endsWith('.idx')).map((n) => join(f.gitdir, 'objects', 'pack', n))])), 'git stored deltas');
  assert.equal(entries(f.gitdir), [], 'no cache yet');
  const cold = await run(f.ws);
  const want = countWithGit(f.gitdir, f.view);
  assert.is(cold.totalBytes, want.total);
  assert.is(cold.unionBytes, want.union);
  const by = Object.fromEntries(cold.paths.map((p) => [p.path, [p.wastedBytes, p.count]]));
  assert.equal(by, { 'big/data': [300_100, 3], 'tmp/big': [70_000, 1], 'etc/a.conf': [100, 2], 'opt/x/1': [100, 1], 'opt/x/2': [60, 1], link: [10, 1], 'naïve/ü': [7, 2] });
  assert.is(cold.perLayer[0].message, 'last ✓ ünï');
  const layers = layerIds(f.gitdir);
  assert.equal(entries(f.gitdir), [...layers].sort(), 'one entry per layer');
  const saved = new Map(layers.map((t) => [t, fs.readFileSync(layerSizesFile(f.gitdir, t))]));
  assert.equal(await run(f.ws), cold, 'warm: the same report');
  assert.equal(await run(f.ws, 'HEAD~3'), JSON.parse(JSON.stringify(await efficiency({ cwd: f.ws, layer: 'HEAD~3' }))), 'an older top, from the same entries');
  // A warm run reads the entries: one altered by hand (in a valid form) changes the figures.
  const top = layerSizesFile(f.gitdir, layers[0]);
  fs.writeFileSync(top, saved.get(layers[0])!.toString('latin1').replace('fbig/data\x00149000\x00', 'fbig/data\x00150000\x00'), 'latin1');
  assert.is((await run(f.ws)).totalBytes, cold.totalBytes + 1000);
  // Damaged entries (a record cut off, garbage, empty): computed again and rewritten whole.
  fs.writeFileSync(top, saved.get(layers[0])!.subarray(0, saved.get(layers[0])!.length - 3));
  fs.writeFileSync(layerSizesFile(f.gitdir, layers[1]), saved.get(layers[1])!.toString('latin1').replace(/^glayer-layer-sizes 1 (\d+)/, (_, n) => `glayer-layer-sizes 1 ${Number(n) + 1}`), 'latin1');
  fs.writeFileSync(layerSizesFile(f.gitdir, layers[3]), saved.get(layers[3])!.toString('latin1').replace(/^glayer-layer-sizes 1 /, 'glayer-layer-sizes 2 '), 'latin1');
  fs.writeFileSync(layerSizesFile(f.gitdir, layers[2]), '');
  assert.equal(await run(f.ws), cold, 'damaged entries: the same report');
  for (const t of layers) assert.ok(fs.readFileSync(layerSizesFile(f.gitdir, t)).equals(saved.get(t)!), `entry ${t} rewritten whole`);
  // A new layer: one new entry, the others untouched.
  const stamps = new Map(layers.map((t) => [t, fs.statSync(layerSizesFile(f.gitdir, t)).mtimeMs]));
  await new Promise((r) => setTimeout(r, 20));
  put(f.view, 'etc/a.conf', 'newer');
  await glayerOk(f.ws, 'commit', '-m', 'one more');
  const grown = await run(f.ws);
  assert.is(grown.layers, 6);
  assert.is(grown.wastedBytes, cold.wastedBytes + 'final'.length);
  assert.equal(entries(f.gitdir), [...layerIds(f.gitdir)].sort());
  for (const [t, m] of stamps) assert.is(fs.statSync(layerSizesFile(f.gitdir, t)).mtimeMs, m, `entry ${t} untouched`);
  assert.equal(fs.readdirSync(join(f.gitdir, 'glayer', 'cache', 'tmp')), [], 'no temporary file left');
  fsck(f.gitdir);
});

test('glayer gc keeps the entries of reachable layers and removes the others; the figures do not change', async () => {
  const f = await fixture();
  const before = await run(f.ws);
  const stray = '0123456789abcdef0123456789abcdef01234567';
  fs.writeFileSync(layerSizesFile(f.gitdir, stray), 'glayer-layer-sizes 1 0\n- 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n""\n');
  const kept = entries(f.gitdir).filter((t) => t !== stray);
  await glayerOk(f.ws, 'gc', '--prune=now');
  assert.equal(entries(f.gitdir), kept, 'the stray entry went, the others stay');
  assert.equal(await run(f.ws), before, 'after gc (objects repacked by glayer)');
  // Cold again over glayer's own pack: the same.
  fs.rmSync(cacheDir(f.gitdir), { recursive: true });
  assert.equal(await run(f.ws), before, 'cold after gc');
  fsck(f.gitdir);
});

test('read-only mode (glayer serve) writes no entry', async () => {
  const f = await fixture();
  const want = await run(f.ws);
  fs.rmSync(cacheDir(f.gitdir), { recursive: true });
  storeMode.readOnly = true;
  try {
    assert.equal(JSON.parse(JSON.stringify(await efficiency({ cwd: f.ws }))), want);
    assert.not.ok(fs.existsSync(cacheDir(f.gitdir)), 'nothing written');
  } finally {
    storeMode.readOnly = false;
  }
});

test('a file system that refuses the cache writes (ENOSPC, EIO at each call in turn): the same figures, no partial entry', async () => {
  const f = await fixture();
  const want = await run(f.ws);
  let cacheFaults = 0;
  for (let nth = 1; nth < 5000; nth++) {
    for (const errno of ['ENOSPC', 'EIO']) {
      fs.rmSync(join(f.gitdir, 'glayer', 'cache'), { recursive: true, force: true });
      const state = injectFault({ errno, nth })!;
      let r: EfficiencyReport | Error;
      try { r = await efficiency({ cwd: f.ws }); } catch (e) { r = e as Error; } finally { injectFault(null); }
      const fired = state.fired;
      if (fired === null) {
        assert.equal(JSON.parse(JSON.stringify(r)), want);
        assert.ok(cacheFaults > 5, `faults met in the cache: ${cacheFaults}`);
        return;
      }
      if (fired.includes('/glayer/cache/')) {
        cacheFaults++;
        assert.ok(!(r instanceof Error), `${errno} at ${fired}: ${r instanceof Error ? r.message : ''}`);
        assert.equal(JSON.parse(JSON.stringify(r)), want, `${errno} at ${fired}`);
      }
      // Whatever failed: every entry present is whole (the next run uses it and gets the same figures).
      assert.equal(JSON.parse(JSON.stringify(await efficiency({ cwd: f.ws }))), want, `after ${errno} at ${fired}`);
      const tmp = join(f.gitdir, 'glayer', 'cache', 'tmp');
      const left = fs.existsSync(tmp) ? fs.readdirSync(tmp) : [];
      assert.ok(left.every((n) => n.startsWith(`${process.pid}-`)), `only this process's temporary files (fsck removes them once it ends): ${left}`);
    }
  }
  assert.unreachable('the faults never stopped firing');
});

test.run();
