// The union engine against the spec's rules (Whiteouts, Union), one named case per rule, hostile layers
// refused with InvalidLayerError naming the path, structural sharing, and random stacks against a small
// path-by-path reference model of the spec.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { applyLayer, unionOf } from '../../src/core/union.js';
import { toBytes } from '../../src/core/path.js';
import { EMPTY_TREE, lookup } from '../../src/core/tree.js';
import { InvalidLayerError } from '../../src/errors.js';
import { MemTrees, build, empty, exe, file, flatten, link, prng, raw, sub, type Leaf, type Spec, deepChain } from '../helpers/memtrees.js';

const WH = empty();
const OPQ = { '.wh..wh..opq': empty() };

function view(layers: Spec[]): { m: MemTrees; tree: string | null; flat: Record<string, string> } {
  const m = new MemTrees();
  const tree = unionOf(m, layers.map((s, i) => ({ tree: build(m, s), name: `L${i}` })));
  return { m, tree, flat: flatten(m, tree) };
}

interface Case { name: string; layers: Spec[]; view: Record<string, string> }

const CASES: Case[] = [
  {
    name: 'one plain layer is its own view',
    layers: [{ a: '1', d: { b: '2', l: link('../a') }, x: exe('run') }],
    view: { a: 'file:1', d: 'dir', 'd/b': 'file:2', 'd/l': 'link:../a', x: 'exe:run' },
  },
  {
    name: 'whiteout of a file hides it',
    layers: [{ a: '1', b: '2' }, { '.wh.a': WH }],
    view: { b: 'file:2' },
  },
  {
    name: 'whiteout of a directory hides its whole subtree',
    layers: [{ d: { e: { f: '1' }, g: '2' }, k: '3' }, { '.wh.d': WH }],
    view: { k: 'file:3' },
  },
  {
    name: 'whiteout in a subdirectory hides only that entry',
    layers: [{ d: { e: '1', f: '2' } }, { d: { '.wh.e': WH } }],
    view: { d: 'dir', 'd/f': 'file:2' },
  },
  {
    name: 'whiteout hides every lower layer, not just the one below',
    layers: [{ a: '1' }, { b: '2' }, { '.wh.a': WH }],
    view: { b: 'file:2' },
  },
  {
    name: 'opaque directory hides lower children, keeps the directory and its own entries',
    layers: [{ d: { a: '1', b: { c: '2' } }, top: 't' }, { d: { ...OPQ, own: 'mine', b: { z: '9' } } }],
    view: { d: 'dir', 'd/b': 'dir', 'd/b/z': 'file:9', 'd/own': 'file:mine', top: 'file:t' },
  },
  {
    name: 'opaque directory with no own entries is an empty directory',
    layers: [{ d: { a: '1' } }, { d: OPQ }],
    view: { d: 'dir' },
  },
  {
    name: 'opaque marker at the root hides the whole lower stack',
    layers: [{ a: '1', d: { b: '2' } }, { ...OPQ, n: 'new' }],
    view: { n: 'file:new' },
  },
  {
    name: 'opaque hides only lower: the layer above adds back on top',
    layers: [{ d: { a: '1' } }, { d: { ...OPQ, b: '2' } }, { d: { c: '3' } }],
    view: { d: 'dir', 'd/b': 'file:2', 'd/c': 'file:3' },
  },
  {
    name: 'whiteout and re-creation in the same layer: the new entry stays visible',
    layers: [{ a: '1' }, { '.wh.a': WH, a: '2' }],
    view: { a: 'file:2' },
  },
  {
    name: 'whiteout of a directory and same-layer re-creation brings back nothing from below',
    layers: [{ d: { old: '1', keep: '2' } }, { '.wh.d': WH, d: { new: '3' } }],
    view: { d: 'dir', 'd/new': 'file:3' },
  },
  {
    name: 'whiteout of a file re-created as a directory in the same layer',
    layers: [{ a: '1' }, { '.wh.a': WH, a: { b: '2' } }],
    view: { a: 'dir', 'a/b': 'file:2' },
  },
  {
    name: 'directory over directory merges children',
    layers: [{ d: { a: '1', s: { x: 'x' } } }, { d: { b: '2', s: { y: 'y' } } }],
    view: { d: 'dir', 'd/a': 'file:1', 'd/b': 'file:2', 'd/s': 'dir', 'd/s/x': 'file:x', 'd/s/y': 'file:y' },
  },
  {
    name: 'file over file replaces (content and mode)',
    layers: [{ a: '1', b: '2' }, { a: '9', b: exe('2') }],
    view: { a: 'file:9', b: 'exe:2' },
  },
  {
    name: 'file over directory replaces the whole directory',
    layers: [{ d: { a: '1', e: { f: '2' } } }, { d: 'now a file' }],
    view: { d: 'file:now a file' },
  },
  {
    name: 'directory over file replaces the file',
    layers: [{ d: 'file' }, { d: { a: '1' } }],
    view: { d: 'dir', 'd/a': 'file:1' },
  },
  {
    name: 'symlink over directory replaces the directory',
    layers: [{ d: { a: '1' } }, { d: link('/elsewhere') }],
    view: { d: 'link:/elsewhere' },
  },
  {
    name: 'directory over symlink replaces the symlink (never follows it)',
    layers: [{ d: link('/etc'), etc: { x: '1' } }, { d: { a: '1' } }],
    view: { d: 'dir', 'd/a': 'file:1', etc: 'dir', 'etc/x': 'file:1' },
  },
  {
    name: 'file over a replaced directory, then a directory again: nothing comes back',
    layers: [{ d: { a: '1' } }, { d: 'f' }, { d: { b: '2' } }],
    view: { d: 'dir', 'd/b': 'file:2' },
  },
  {
    name: 'directory whited out in N and re-created in N+1 brings back nothing from below N',
    layers: [{ d: { a: '1', s: { b: '2' } } }, { '.wh.d': WH }, { d: { c: '3' } }],
    view: { d: 'dir', 'd/c': 'file:3' },
  },
  {
    name: 'markers never appear in the view of a one-layer stack',
    layers: [{ '.wh.a': WH, '.wh..wh..opq': empty(), d: { '.wh.x': WH, '.wh..wh..opq': empty(), y: '1' } }],
    view: { d: 'dir', 'd/y': 'file:1' },
  },
  {
    name: 'whiteout of something that does not exist below is a no-op',
    layers: [{ a: '1' }, { '.wh.nothing': WH, d: { '.wh.ghost': WH, b: '2' } }],
    view: { a: 'file:1', d: 'dir', 'd/b': 'file:2' },
  },
  {
    name: 'an executable empty file is a valid marker too',
    layers: [{ a: '1' }, { '.wh.a': { $mode: '100755', content: '' } }],
    view: {},
  },
  {
    name: 'empty directories (git empty tree) are kept',
    layers: [{ e: {}, d: { f: {} } }, { g: {} }],
    view: { d: 'dir', 'd/f': 'dir', e: 'dir', g: 'dir' },
  },
  {
    name: 'an empty directory over a full one merges (it replaces nothing)',
    layers: [{ d: { a: '1' } }, { d: {} }],
    view: { d: 'dir', 'd/a': 'file:1' },
  },
  {
    name: 'a deleted directory leaves its empty parent',
    layers: [{ p: { d: { a: '1' } } }, { p: { '.wh.d': WH } }],
    view: { p: 'dir' },
  },
  {
    name: 'names compare as bytes, not by normalization or case',
    layers: [{ A: '1', a: '2', [toBytes('\u00e9')]: 'nfc', [toBytes('e\u0301')]: 'nfd' }, { '.wh.a': WH }],
    view: { A: 'file:1', [toBytes('e\u0301')]: 'file:nfd', [toBytes('\u00e9')]: 'file:nfc' },
  },
  {
    name: 'names that are prefixes of each other are separate entries (git order vs byte order)',
    layers: [{ a: { b: '1' }, 'a-b': '2', 'a.c': '3', a0: '4' }, { a: { c: '5' }, '.wh.a-b': WH }],
    view: { a: 'dir', 'a/b': 'file:1', 'a/c': 'file:5', 'a.c': 'file:3', a0: 'file:4' },
  },
  {
    name: 'deep stack: each layer edits the one below',
    layers: [
      { etc: { hosts: 'h1', conf: { a: 'a1', b: 'b1' } }, bin: { sh: exe('sh') } },
      { etc: { hosts: 'h2' } },
      { etc: { conf: { '.wh.a': WH, c: 'c3' } } },
      { '.wh.bin': WH },
      { bin: { ls: exe('ls') } },
      { etc: { conf: { ...OPQ, z: 'z6' } } },
      { etc: { conf: { a: 'a7' } }, '.wh.nope': WH },
      { etc: { hosts: link('/proc/hosts') } },
    ],
    view: {
      bin: 'dir', 'bin/ls': 'exe:ls',
      etc: 'dir', 'etc/conf': 'dir', 'etc/conf/a': 'file:a7', 'etc/conf/z': 'file:z6', 'etc/hosts': 'link:/proc/hosts',
    },
  },
];

for (const c of CASES) {
  test(`union: ${c.name}`, () => {
    const { flat } = view(c.layers);
    assert.equal(sorted(flat), sorted(c.view));
  });
}

test('union: a 200-layer stack applies each layer in turn', () => {
  const layers: Spec[] = [];
  for (let k = 0; k < 200; k++) layers.push(k % 10 === 9 ? { '.wh.d': WH } : { d: { [`f${k}`]: String(k) } });
  const { flat } = view(layers);
  assert.equal(sorted(flat), sorted({}));
  layers.push({ d: { last: 'x' } });
  assert.equal(sorted(view(layers).flat), sorted({ d: 'dir', 'd/last': 'file:x' }));
  layers.pop();
  layers.pop();
  const v = view(layers).flat;
  assert.equal(Object.keys(v).length, 9 + 1);
  assert.is(v['d/f198'], 'file:198');
  assert.is(v['d/f189'], undefined);
});

test('union: the empty stack has no tree; an empty layer gives the empty tree', () => {
  const m = new MemTrees();
  assert.is(unionOf(m, []), null);
  assert.is(applyLayer(m, null, EMPTY_TREE, { layer: 'x' }), EMPTY_TREE);
  const low = build(m, { a: '1' });
  assert.is(applyLayer(m, low, EMPTY_TREE, { layer: 'x' }), low);
});

test('union: structural: an untouched lower subtree keeps its oid and is never read', () => {
  const m = new MemTrees();
  const bigSpec: Record<string, Spec> = {};
  for (let k = 0; k < 50; k++) bigSpec[`d${k}`] = { f: String(k), g: { h: 'deep' } };
  const lower = build(m, { big: bigSpec, small: { a: '1' } });
  const bigOid = lookup(m, lower, 'big')!.oid;
  const delta = build(m, { small: { b: '2', '.wh.a': WH } });
  m.reads.clear();
  const out = applyLayer(m, lower, delta, { layer: 'L' });
  const reads = new Map(m.reads);
  assert.is(lookup(m, out, 'big')!.oid, bigOid);
  assert.is(reads.get(bigOid), undefined, 'the big subtree was read');
  assert.is(reads.size, 4);
  for (const [oid] of reads) assert.ok(oid === lower || oid === delta || oid === lookup(m, lower, 'small')!.oid || oid === lookup(m, delta, 'small')!.oid, `read ${oid}`);
  assert.equal(flatten(m, lookup(m, out, 'small')!.oid), { b: 'file:2' });
});

test('union: a clean cache lets an unchanged marker-free layer be reused as is', () => {
  const m = new MemTrees();
  const clean = new Set<string>();
  const t = build(m, { a: '1', d: { b: '2' } });
  assert.is(applyLayer(m, null, t, { layer: 'L', clean }), t);
  assert.ok(clean.has(t));
  const withMarker = build(m, { a: '1', '.wh.x': WH });
  const out = applyLayer(m, null, withMarker, { layer: 'L', clean });
  assert.not.ok(clean.has(withMarker));
  assert.equal(flatten(m, out), { a: 'file:1' });
});

test('union: a layer 20,000 directories deep costs no call stack', () => {
  const m = new MemTrees();
  const chain = (leaf: Spec): string => deepChain(m, leaf);
  const lower = chain({ f: '1', g: '2' });
  const delta = chain({ f: '9', '.wh.g': WH });
  const out = applyLayer(m, lower, delta, { layer: 'deep' });
  assert.is(out, chain({ f: '9' }));
  // And a hostile entry at the bottom is still found and named.
  const bad = chain({ '.git': { x: '1' } });
  assert.throws(() => applyLayer(m, lower, bad, { layer: 'deep' }), (e: unknown) => e instanceof InvalidLayerError && ((e as InvalidLayerError).data.path as string).endsWith('d/d/.git'));
});

// ---- hostile layers ------------------------------------------------------------------------------------------

const HFS_DOTGIT = toBytes('.g\u200cit');
const HOSTILE: Array<{ name: string; layer: Spec; path: string }> = [
  { name: "bare '.wh.'", layer: { '.wh.': WH }, path: '.wh.' },
  { name: "'.wh..'", layer: { '.wh..': WH }, path: '.wh..' },
  { name: "'.wh...'", layer: { d: { '.wh...': WH } }, path: 'd/.wh...' },
  { name: "'.wh..wh.foo'", layer: { '.wh..wh.foo': WH }, path: '.wh..wh.foo' },
  { name: "'.wh..wh..opq' misspelled as '.wh..wh.opq'", layer: { d: { '.wh..wh.opq': WH } }, path: 'd/.wh..wh.opq' },
  { name: 'a marker that is a directory (a marker with children)', layer: { '.wh.a': { x: '1' } }, path: '.wh.a' },
  { name: 'a marker that is an empty directory', layer: { d: { '.wh.a': {} } }, path: 'd/.wh.a' },
  { name: 'a non-empty marker', layer: { '.wh.a': 'not empty' }, path: '.wh.a' },
  { name: 'a marker that is a symlink', layer: { d: { '.wh.a': link('') } }, path: 'd/.wh.a' },
  { name: 'a marker that is a symlink to something', layer: { '.wh.a': link('/etc/passwd') }, path: '.wh.a' },
  { name: 'an opaque marker that is a directory', layer: { d: { '.wh..wh..opq': { x: '1' } } }, path: 'd/.wh..wh..opq' },
  { name: 'an opaque marker that is a symlink', layer: { '.wh..wh..opq': link('x') }, path: '.wh..wh..opq' },
  { name: 'a non-empty opaque marker', layer: { '.wh..wh..opq': 'x' }, path: '.wh..wh..opq' },
  { name: 'a marker that is a submodule', layer: { '.wh.a': sub() }, path: '.wh.a' },
  { name: "an entry named '..'", layer: { '..': '1' }, path: '..' },
  { name: "a directory named '..'", layer: { d: { '..': { etc: { passwd: 'x' } } } }, path: 'd/..' },
  { name: "an entry named '.'", layer: { '.': { x: '1' } }, path: '.' },
  { name: "'.git'", layer: { '.git': { config: 'x' } }, path: '.git' },
  { name: "'.GIT'", layer: { d: { '.GIT': { hooks: {} } } }, path: 'd/.GIT' },
  { name: "'.Git' as a file", layer: { '.Git': 'x' }, path: '.Git' },
  { name: "'.git.' (NTFS trailing dot)", layer: { '.git.': { x: '1' } }, path: '.git.' },
  { name: "'.git ' (NTFS trailing space)", layer: { '.git ': 'x' }, path: '.git ' },
  { name: "'git~1' (NTFS short name)", layer: { 'git~1': { x: '1' } }, path: 'git~1' },
  { name: "'GIT~1'", layer: { d: { 'GIT~1': 'x' } }, path: 'd/GIT~1' },
  { name: "'.g\\u200cit' (HFS ignorable, UTF-8 bytes)", layer: { [HFS_DOTGIT]: { x: '1' } }, path: HFS_DOTGIT },
  { name: "'.git\\ufeff' (HFS BOM)", layer: { [toBytes('.git\ufeff')]: 'x' }, path: toBytes('.git\ufeff') },
  { name: "a name containing '/'", layer: { 'a/b': '1' }, path: 'a/b' },
  { name: "a name containing '/' that climbs out", layer: { d: { '../../etc': 'x' } }, path: 'd/../../etc' },
  { name: 'an empty name in a subdirectory', layer: { d: { '': '1' } }, path: 'd/' },
  { name: 'a submodule entry', layer: { lib: sub() }, path: 'lib' },
  { name: 'a nested submodule entry', layer: { a: { b: { c: sub() } } }, path: 'a/b/c' },
  { name: "a whiteout of '.git'", layer: { '.wh..git': WH }, path: '.wh..git' },
  { name: "a whiteout of a name with '/'", layer: { d: { '.wh.x/y': WH } }, path: 'd/.wh.x/y' },
];

for (const h of HOSTILE) {
  test(`union refuses ${h.name}`, () => {
    const m = new MemTrees();
    const lower = build(m, { a: '1', d: { x: '2' } });
    const delta = build(m, h.layer);
    let err: unknown = null;
    try { applyLayer(m, lower, delta, { layer: 'abc123' }); } catch (e) { err = e; }
    assert.instance(err, InvalidLayerError, `${h.name}: not refused`);
    const e = err as InvalidLayerError;
    assert.is(e.code, 'E_INVALID_LAYER');
    assert.is(e.data.path, Buffer.from(h.path, 'latin1').toString('utf8'));
    assert.ok(e.message.includes('abc123'), e.message);
    assert.ok(e.message.includes(Buffer.from(h.path, 'latin1').toString('utf8')), e.message);
    // Also as a bottom layer (no lower): still refused.
    let err2: unknown = null;
    try { applyLayer(m, null, delta, { layer: 'abc123', clean: new Set() }); } catch (e2) { err2 = e2; }
    assert.instance(err2, InvalidLayerError);
  });
}

test('union refuses an empty name at the root', () => {
  const m = new MemTrees();
  const delta = build(m, { '': '1' });
  assert.throws(() => applyLayer(m, null, delta, { layer: 'L' }), (e: unknown) => e instanceof InvalidLayerError && /empty name/.test((e as Error).message));
});

test('union refuses a hostile entry deep in a layer even under a whited-out directory', () => {
  const m = new MemTrees();
  const lower = build(m, { d: { a: '1' } });
  const delta = build(m, { '.wh.d': WH, d: { e: { '.git': { x: '1' } } } });
  assert.throws(() => applyLayer(m, lower, delta, { layer: 'L' }), (e: unknown) => e instanceof InvalidLayerError && (e as InvalidLayerError).data.path === 'd/e/.git');
});

test('union: valid names near the reserved ones are fine', () => {
  const { flat } = view([{ '.wh': '1', wh: '2', '.wha': '3', '.gitignore': '4', '.git2': '5', 'git~2': '6', '...': '7', 'a.wh.b': '8', d: { '.gitmodules': '9' } }]);
  assert.equal(Object.keys(flat).sort(), ['...', '.git2', '.gitignore', '.wh', '.wha', 'a.wh.b', 'd', 'd/.gitmodules', 'git~2', 'wh']);
});

// ---- random stacks against a reference model -------------------------------------------------------------

/** The spec, path by path, on flat maps: apply a layer's markers to the lower view, then its entries. */
function modelApply(lower: Map<string, string>, layer: Record<string, string>): Map<string, string> {
  const v = new Map(lower);
  const drop = (p: string, self: boolean): void => {
    for (const k of [...v.keys()]) if ((self && k === p) || p === '' || k.startsWith(p + '/')) v.delete(k);
  };
  const entries = Object.entries(layer);
  for (const [p] of entries) {
    const i = p.lastIndexOf('/');
    const dir = i < 0 ? '' : p.slice(0, i);
    const name = p.slice(i + 1);
    if (name === '.wh..wh..opq') drop(dir, false);
    else if (name.startsWith('.wh.')) drop((dir === '' ? '' : dir + '/') + name.slice(4), true);
  }
  for (const [p, d] of entries) {
    if (p.split('/').some((n) => n.startsWith('.wh.'))) continue;
    const cur = v.get(p);
    if (d === 'dir') { if (cur !== undefined && cur !== 'dir') v.delete(p); v.set(p, 'dir'); }
    else { if (cur === 'dir') drop(p, true); v.set(p, d); }
  }
  return v;
}

const NAMES = ['a', 'b', 'c', 'dir', 'e.txt', 'x-y', 'Q'];
function randomLayer(r: ReturnType<typeof prng>, depth: number): Spec {
  const spec: Record<string, string | Spec | Leaf> = {};
  const n = r.int(5);
  for (let k = 0; k < n; k++) {
    const name = r.pick(NAMES);
    const roll = r.next();
    if (depth > 0 && roll < 0.4) spec[name] = randomLayer(r, depth - 1);
    else if (roll < 0.65) spec[name] = r.pick(['1', '2', '']);
    else if (roll < 0.75) spec[name] = exe('x');
    else if (roll < 0.82) spec[name] = link(r.pick(['a', '..']));
    else spec['.wh.' + name] = WH;
  }
  if (r.chance(0.1)) spec['.wh..wh..opq'] = WH;
  return spec;
}

test('union: 300 random stacks agree with the reference model', () => {
  const r = prng(20240601);
  for (let round = 0; round < 300; round++) {
    const m = new MemTrees();
    const clean = new Set<string>();
    let tree: string | null = null;
    let model = new Map<string, string>();
    const layers = 1 + r.int(6);
    for (let k = 0; k < layers; k++) {
      const spec = randomLayer(r, 3);
      const delta = build(m, spec);
      tree = applyLayer(m, tree, delta, { layer: `L${k}`, clean });
      model = modelApply(model, flatten(m, delta));
      const got = sorted(flatten(m, tree));
      const want = sorted(Object.fromEntries(model));
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        assert.equal(got, want, `round ${round} layer ${k}: ${JSON.stringify(spec)}`);
      }
    }
  }
});

function sorted(r: Record<string, string>): Array<[string, string]> {
  return Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

test.run();
