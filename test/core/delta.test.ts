// computeDelta writes the upper overlayfs would (one marker per deleted directory, whole-file copy-up, nothing
// for equal entries, opaque when told), and applyLayer(lower, computeDelta(lower, target)) === target, on a
// table and on a few hundred random trees.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { computeDelta } from '../../src/core/delta.js';
import { applyLayer } from '../../src/core/union.js';
import { EMPTY_TREE, lookup } from '../../src/core/tree.js';
import { MemTrees, build, empty, exe, flatten, link, prng, randomTree, type Spec, deepChain } from '../helpers/memtrees.js';

const W = 'file:'; // a marker flattens to an empty file

interface Case { name: string; lower: Spec | null; target: Spec; opaque?: string[]; delta: Record<string, string> }

const CASES: Case[] = [
  { name: 'equal trees: empty delta', lower: { a: '1', d: { b: '2' } }, target: { a: '1', d: { b: '2' } }, delta: {} },
  { name: 'no lower: the target is the delta', lower: null, target: { a: '1', d: { b: {} } }, delta: { a: 'file:1', d: 'dir', 'd/b': 'dir' } },
  { name: 'deleted file: one marker', lower: { a: '1', b: '2' }, target: { b: '2' }, delta: { '.wh.a': W } },
  {
    name: 'deleted directory: one marker, never one per child',
    lower: { d: { a: '1', e: { f: '2', g: '3' } }, k: '4' },
    target: { k: '4' },
    delta: { '.wh.d': W },
  },
  { name: 'deleted nested file: the marker in its directory', lower: { d: { e: { f: '1', g: '2' } } }, target: { d: { e: { g: '2' } } }, delta: { d: 'dir', 'd/e': 'dir', 'd/e/.wh.f': W } },
  { name: 'deleted all children of a directory: markers, the directory stays', lower: { d: { a: '1', b: '2' } }, target: { d: {} }, delta: { d: 'dir', 'd/.wh.a': W, 'd/.wh.b': W } },
  { name: 'changed file: copied up whole', lower: { a: 'old', b: 'same' }, target: { a: 'new', b: 'same' }, delta: { a: 'file:new' } },
  { name: 'mode change only: copied up', lower: { a: '1' }, target: { a: exe('1') }, delta: { a: 'exe:1' } },
  { name: 'new file', lower: { a: '1' }, target: { a: '1', b: '2' }, delta: { b: 'file:2' } },
  { name: 'new directory: whole', lower: { a: '1' }, target: { a: '1', d: { e: { f: '1' } } }, delta: { d: 'dir', 'd/e': 'dir', 'd/e/f': 'file:1' } },
  { name: 'new empty directory', lower: { a: '1' }, target: { a: '1', d: {} }, delta: { d: 'dir' } },
  { name: 'file replaced by a directory: the whole directory', lower: { x: '1' }, target: { x: { y: '2' } }, delta: { x: 'dir', 'x/y': 'file:2' } },
  { name: 'directory replaced by a file: just the file', lower: { x: { y: '2', z: '3' } }, target: { x: '1' }, delta: { x: 'file:1' } },
  { name: 'directory replaced by a symlink', lower: { x: { y: '2' } }, target: { x: link('/tmp') }, delta: { x: 'link:/tmp' } },
  { name: 'symlink target change', lower: { l: link('a') }, target: { l: link('b') }, delta: { l: 'link:b' } },
  {
    name: 'changes deep in one branch: only that path is in the delta',
    lower: { a: { b: { c: '1', d: '2' } }, big: { x: '1', y: '2' } },
    target: { a: { b: { c: '9', d: '2' } }, big: { x: '1', y: '2' } },
    delta: { a: 'dir', 'a/b': 'dir', 'a/b/c': 'file:9' },
  },
  {
    name: 'opaque hint: marker plus all target children',
    lower: { d: { a: '1', b: '2' } },
    target: { d: { b: '2', c: '3' } },
    opaque: ['d'],
    delta: { d: 'dir', 'd/.wh..wh..opq': W, 'd/b': 'file:2', 'd/c': 'file:3' },
  },
  {
    // Deleted and re-created with the same content: the view equals the lower, so no no-op entries.
    name: 'opaque hint on an unchanged directory records nothing',
    lower: { p: { d: { a: '1' } } },
    target: { p: { d: { a: '1' } }, n: '1' },
    opaque: ['p/d'],
    delta: { n: 'file:1' },
  },
  {
    name: 'opaque hint on a directory that is new is ignored (nothing below to hide)',
    lower: { a: '1' },
    target: { a: '1', d: { x: '1' } },
    opaque: ['d'],
    delta: { d: 'dir', 'd/x': 'file:1' },
  },
  {
    name: 'markers sort among names in byte order',
    lower: { a: '1', '.wg': '1', '.wi': '1', b: '2' },
    target: { '.wg': '1', '.wi': '1', '.wh': 'n', b: '2' },
    delta: { '.wh': 'file:n', '.wh.a': W },
  },
];

for (const c of CASES) {
  test(`delta: ${c.name}`, () => {
    const m = new MemTrees();
    const lower = c.lower === null ? null : build(m, c.lower);
    const target = build(m, c.target);
    const opaque = new Set(c.opaque ?? []);
    const delta = computeDelta(m, lower, target, (p) => opaque.has(p));
    assert.equal(flatten(m, delta), c.delta);
    assert.is(applyLayer(m, lower, delta, { layer: 'delta' }), target, 'round trip');
  });
}

test('delta: an equal lower gives git\'s empty tree', () => {
  const m = new MemTrees();
  const t = build(m, { a: '1' });
  assert.is(computeDelta(m, t, t), EMPTY_TREE);
  assert.is(computeDelta(m, null, EMPTY_TREE), EMPTY_TREE);
});

test('delta: a deleted directory is one marker however big it was', () => {
  const m = new MemTrees();
  const big: Record<string, Spec> = {};
  for (let k = 0; k < 100; k++) big[`d${k}`] = { a: '1', b: { c: String(k) } };
  const lower = build(m, { big, keep: '1' });
  const target = build(m, { keep: '1' });
  const delta = computeDelta(m, lower, target);
  assert.equal(m.readTree(delta).map((e) => e.name), ['.wh.big']);
});

test('delta: an untouched subtree is not walked', () => {
  const m = new MemTrees();
  const lower = build(m, { big: { x: { y: '1' } }, s: { a: '1' } });
  const target = build(m, { big: { x: { y: '1' } }, s: { a: '2' } });
  const bigOid = lookup(m, lower, 'big')!.oid;
  m.reads.clear();
  computeDelta(m, lower, target);
  assert.is(m.reads.get(bigOid), undefined);
});

/** A target made from `lower` by random edits, so the two share most of their structure. */
function mutate(m: MemTrees, r: ReturnType<typeof prng>, tree: string, depth: number): string {
  const out = [...m.readTree(tree)].map((e) => ({ ...e }));
  const res: typeof out = [];
  for (const e of out) {
    const roll = r.next();
    if (roll < 0.12) continue; // delete
    if (roll < 0.22) { res.push({ ...e, oid: m.blob(String(r.int(4))), mode: r.pick(['100644', '100755', '120000'] as const) }); continue; }
    if (roll < 0.3) { res.push({ ...e, mode: '40000', oid: randomTree(m, r, 1) }); continue; }
    if (e.mode === '40000' && roll < 0.7 && depth > 0) { res.push({ ...e, oid: mutate(m, r, e.oid, depth - 1) }); continue; }
    res.push(e);
  }
  if (r.chance(0.3)) {
    const name = r.pick(['new', 'a', 'zz', '\xff']);
    if (!res.some((e) => e.name === name)) res.push({ name, mode: '100644', oid: m.blob('n') });
  }
  res.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return m.writeTree(res);
}

test('delta: round trip over 400 random (lower, target) pairs, with and without opaque hints', () => {
  const r = prng(7);
  let markers = 0;
  let opaques = 0;
  for (let round = 0; round < 400; round++) {
    const m = new MemTrees();
    const lower = r.chance(0.05) ? null : randomTree(m, r, 3);
    const target = r.chance(0.3) || lower === null ? randomTree(m, r, 3) : mutate(m, r, lower, 3);
    const hinted = new Set<string>();
    const opaque = (p: string): boolean => {
      if (round % 3 !== 0) return false;
      if (r.chance(0.3)) { hinted.add(p); return true; }
      return false;
    };
    const delta = computeDelta(m, lower, target, opaque);
    const back = applyLayer(m, lower, delta, { layer: `round ${round}` });
    if (back !== target) {
      assert.equal(flatten(m, back), flatten(m, target), `round ${round}: lower ${JSON.stringify(flatten(m, lower))} delta ${JSON.stringify(flatten(m, delta))}`);
    }
    // No no-op entries: every non-marker leaf in the delta differs from the lower at that path.
    const flat = flatten(m, delta);
    for (const [p, d] of Object.entries(flat)) {
      const name = p.slice(p.lastIndexOf('/') + 1);
      if (name === '.wh..wh..opq') { opaques++; continue; }
      if (name.startsWith('.wh.')) {
        markers++;
        const target = p.slice(0, p.length - name.length) + name.slice(4);
        assert.ok(lookup(m, lower, target) !== null, `marker ${p} hides nothing`);
        assert.ok(lookup(m, back, target) === null, `marker ${p} for something in the target`);
        continue;
      }
      if (d !== 'dir' && !p.split('/').some((n, i, a) => i < a.length - 1 && flat[a.slice(0, i + 1).join('/') + '/.wh..wh..opq'] !== undefined)) {
        const low = lookup(m, lower, p);
        const tgt = lookup(m, target, p)!;
        assert.ok(!low || low.mode !== tgt.mode || low.oid !== tgt.oid, `no-op entry ${p}`);
      }
    }
  }
  assert.ok(markers > 100, `only ${markers} markers: the random pairs are too tame`);
  assert.ok(opaques > 10, `only ${opaques} opaque markers`);
});

test('delta: whiteout + re-creation round trip over a stack of deltas', () => {
  // Build a chain: each target becomes the next lower; the union of all deltas is the last target.
  const r = prng(99);
  const m = new MemTrees();
  let lower: string | null = null;
  let stacked: string | null = null;
  for (let k = 0; k < 60; k++) {
    const target: string = lower === null ? randomTree(m, r, 3) : mutate(m, r, lower, 3);
    const delta = computeDelta(m, lower, target, () => r.chance(0.05));
    stacked = applyLayer(m, stacked, delta, { layer: `L${k}` });
    assert.is(stacked, target, `layer ${k}`);
    lower = target;
  }
});

test('delta: trees 20,000 directories deep cost no call stack', () => {
  const m = new MemTrees();
  const chain = (leaf: Spec): string => deepChain(m, leaf);
  const lower = chain({ f: '1', g: '2' });
  const target = chain({ f: '9' });
  const delta = computeDelta(m, lower, target);
  assert.is(delta, chain({ f: '9', '.wh.g': empty() }));
  assert.is(applyLayer(m, lower, delta, { layer: 'deep' }), target);
});

test.run();
