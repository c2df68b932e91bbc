// The union of metadata manifests (docs/metadata.md, "Through the union"): one named case per rule, hostile
// layers refused with InvalidLayerError naming the layer and the path, and manifestDelta giving back the
// records that reproduce a target manifest.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { META_HEADER, applyManifest, formatManifest, manifestDelta, parseManifest, type Manifest } from '../../src/core/meta.js';
import { applyLayer } from '../../src/core/union.js';
import { InvalidLayerError } from '../../src/errors.js';
import { MemTrees, build, empty, exe, file, flatten, type Spec } from '../helpers/memtrees.js';

const WH = empty();
const meta = (...lines: string[]): string => [META_HEADER, ...lines, ''].join('\n');

/** A layer: its tree spec, and its manifest's lines (none: no manifest file). */
interface Layer { tree: Spec; meta?: string[] }

function stack(layers: Layer[]): { m: MemTrees; tree: string | null; manifest: Manifest } {
  const m = new MemTrees();
  let tree: string | null = null;
  let manifest: Manifest = new Map();
  layers.forEach((l, i) => {
    const spec = l.meta ? { ...l.tree, '.wh..wh..meta': file(meta(...l.meta)) } : l.tree;
    const delta = build(m, spec);
    const result = applyLayer(m, tree, delta, { layer: `L${i}` });
    manifest = applyManifest(m, tree, manifest, delta, l.meta ? parseManifest(meta(...l.meta)) : null, result, `L${i}`);
    tree = result;
  });
  return { m, tree, manifest };
}

const lines = (mf: Manifest): string[] => (formatManifest(mf)?.toString('latin1').split('\n').slice(1, -1) ?? []);

interface Case { name: string; layers: Layer[]; manifest: string[] }

const CASES: Case[] = [
  { name: 'a layer without a manifest has no records', layers: [{ tree: { a: '1' } }], manifest: [] },
  {
    name: 'records of one layer, normalized (defaults dropped)',
    layers: [{ tree: { a: '1', b: exe('x'), d: {} }, meta: ['a mode=640 uid=0 gid=42', 'b mode=755 uid=7', 'd mode=700'] }],
    manifest: ['a mode=640 gid=42', 'b uid=7', 'd mode=700'],
  },
  {
    name: "a later layer's record for a path it holds wins",
    layers: [{ tree: { a: '1' }, meta: ['a mode=600'] }, { tree: { a: '2' }, meta: ['a uid=5'] }],
    manifest: ['a uid=5'],
  },
  {
    name: 'a file re-added without a record gets the defaults',
    layers: [{ tree: { a: '1' }, meta: ['a mode=600 uid=3'] }, { tree: { a: '2' } }],
    manifest: [],
  },
  {
    name: 'a metadata-only record changes the entry below',
    layers: [{ tree: { usr: { bin: { passwd: exe('p') } } } }, { tree: {}, meta: ['usr/bin/passwd mode=4755'] }],
    manifest: ['usr/bin/passwd mode=4755'],
  },
  {
    name: 'a metadata-only record of all defaults puts a record back to the defaults',
    layers: [{ tree: { a: '1' }, meta: ['a mode=600 uid=3'] }, { tree: {}, meta: ['a mode=644'] }],
    manifest: [],
  },
  {
    name: 'a whiteout drops the records of the path and below',
    layers: [{ tree: { d: { e: '1' }, f: '2' }, meta: ['d uid=1', 'd/e uid=2', 'f uid=3'] }, { tree: { '.wh.d': WH } }],
    manifest: ['f uid=3'],
  },
  {
    name: "an opaque directory drops the lower records inside it, not the directory's own",
    layers: [{ tree: { d: { e: '1', g: '3' } }, meta: ['d uid=1', 'd/e uid=2'] }, { tree: { d: { '.wh..wh..opq': WH, g: '4' } } }],
    manifest: ['d uid=1'],
  },
  {
    name: 'a directory merging over a lower one keeps the lower record',
    layers: [{ tree: { d: { e: '1' } }, meta: ['d mode=700 uid=1'] }, { tree: { d: { f: '2' } } }],
    manifest: ['d mode=700 uid=1'],
  },
  {
    name: 'a directory that replaces a file gets its own record or the defaults',
    layers: [{ tree: { d: '1' }, meta: ['d uid=1'] }, { tree: { d: { f: '2' } } }],
    manifest: [],
  },
  {
    name: 'a device and a fifo are empty files with a record',
    layers: [{ tree: { dev: { null: empty(), p: empty() } }, meta: ['dev/null type=char dev=1,3 mode=666', 'dev/p type=fifo'] }],
    manifest: ['dev/null type=char dev=1,3 mode=666', 'dev/p type=fifo'],
  },
  {
    name: 'a hardlink holds while both sides hold the same file',
    layers: [{ tree: { a: '1', b: '1' }, meta: ['b link=a'] }, { tree: { c: '2' } }],
    manifest: ['b link=a'],
  },
  {
    name: 'a hardlink breaks when a later layer changes one side',
    layers: [{ tree: { a: '1', b: '1' }, meta: ['b uid=1 link=a'] }, { tree: { a: '2' } }],
    manifest: ['b uid=1'],
  },
  {
    name: 'a hardlink breaks when a later layer deletes its first path',
    layers: [{ tree: { a: '1', b: '1' }, meta: ['b link=a'] }, { tree: { '.wh.a': WH } }],
    manifest: [],
  },
  {
    name: "the root's record",
    layers: [{ tree: { a: '1' }, meta: ['. mode=700'] }],
    manifest: ['. mode=700'],
  },
];

for (const c of CASES) {
  test(`manifest union: ${c.name}`, () => {
    assert.equal(lines(stack(c.layers).manifest), c.manifest);
  });
}

const HOSTILE: Array<{ name: string; layers: Layer[]; path: string; reason: RegExp }> = [
  { name: 'a record for a path not in the union', layers: [{ tree: { a: '1' }, meta: ['b mode=600'] }], path: 'b', reason: /not in the union/ },
  { name: 'a record under a whiteout of the same layer', layers: [{ tree: { d: { e: '1' } } }, { tree: { '.wh.d': WH }, meta: ['d/e mode=600'] }], path: 'd/e', reason: /not in the union/ },
  { name: 'a metadata-only record without mode=', layers: [{ tree: { a: '1' } }, { tree: {}, meta: ['a uid=1'] }], path: 'a', reason: /must carry mode=/ },
  { name: 'a link to a missing path', layers: [{ tree: { b: '1' }, meta: ['b link=a'] }], path: 'b', reason: /not in the union/ },
  { name: 'a link to a different file', layers: [{ tree: { a: '1', b: '2' }, meta: ['b link=a'] }], path: 'b', reason: /same file/ },
  { name: 'a device that is not an empty file', layers: [{ tree: { d: '1' }, meta: ['d type=char dev=1,3'] }], path: 'd', reason: /empty regular file/ },
  { name: 'a mode that disagrees with the tree', layers: [{ tree: { a: '1' }, meta: ['a mode=755'] }], path: 'a', reason: /execute bit/ },
];

for (const c of HOSTILE) {
  test(`manifest union refuses ${c.name}`, () => {
    try { stack(c.layers); assert.unreachable('accepted'); } catch (e) {
      assert.instance(e, InvalidLayerError);
      const err = e as InvalidLayerError;
      assert.is(err.data.path, c.path);
      assert.match(err.message, c.reason);
      assert.match(err.message, /^invalid layer L\d+: /);
    }
  });
}

test('lenient (the writable layer): a record for a path that is gone, or a broken link, is dropped, not refused', () => {
  const m = new MemTrees();
  const lower = applyLayer(m, null, build(m, { a: '1', b: '2' }), { layer: 'L0' });
  const delta = build(m, { '.wh.a': WH, c: '2' });
  const result = applyLayer(m, lower, delta, { layer: 'upper' });
  const own = parseManifest(meta('a mode=600', 'b mode=600', 'c uid=3 link=a'));
  const out = applyManifest(m, lower, new Map(), delta, own, result, 'upper', true);
  assert.equal(lines(out), ['b mode=600', 'c uid=3']);
  assert.throws(() => applyManifest(m, lower, new Map(), delta, own, result, 'upper'), (e: Error) => e instanceof InvalidLayerError);
});

test('the manifest anywhere but the root makes the layer invalid', () => {
  const m = new MemTrees();
  const t = build(m, { d: { '.wh..wh..meta': file(meta('x mode=600')) } });
  assert.throws(() => applyLayer(m, null, t, { layer: 'L0' }), (e: Error) => e instanceof InvalidLayerError && /d\/\.wh\.\.wh\.\.meta: the metadata manifest must be at the layer's root/.test(e.message));
});

test('the manifest never reaches the view', () => {
  const { m, tree } = stack([{ tree: { a: '1' }, meta: ['a mode=600'] }]);
  assert.equal(flatten(m, tree), { a: 'file:1' });
});

test('manifestDelta gives the records that reproduce the target manifest', () => {
  const base = stack([{ tree: { a: '1', d: { e: '2', f: '3' }, g: '4', x: exe('x') }, meta: ['a mode=600', 'd uid=1', 'd/e uid=2', 'g gid=5'] }]);
  const { m } = base;
  // Target: a chmod'ed back to default, d/e chown'ed, g's content changed (keeps its record), a new file with a record.
  const target = build(m, { a: '1', d: { e: '2', f: '3' }, g: '5', n: '6', x: exe('x') });
  const targetMeta = parseManifest(meta('d uid=1', 'd/e uid=9', 'g gid=5', 'n mode=600', 'x mode=4755'));
  const delta = build(m, { g: '5', n: '6' });
  const records = manifestDelta(m, base.tree, base.manifest, delta, target, targetMeta);
  assert.equal(lines(records), ['a mode=644', 'd/e mode=644 uid=9', 'g gid=5', 'n mode=600', 'x mode=4755']);
  const again = applyManifest(m, base.tree, base.manifest, delta, records, target, 'upper');
  assert.equal(lines(again), lines(targetMeta));
});

test.run();
