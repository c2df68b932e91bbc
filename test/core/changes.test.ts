// diffTrees reports the top-most differing paths; statusEntries lists them as `docker diff` does: one D for a
// deleted directory, A for an added directory and everything in it, C for content, mode or kind changes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { diffTrees, statusEntries } from '../../src/core/changes.js';
import { lookup } from '../../src/core/tree.js';
import { MemTrees, build, exe, link, type Spec } from '../helpers/memtrees.js';

interface Case { name: string; a: Spec | null; b: Spec | null; diff: string[]; status: string[] }

const CASES: Case[] = [
  { name: 'equal trees', a: { a: '1', d: { b: '2' } }, b: { a: '1', d: { b: '2' } }, diff: [], status: [] },
  { name: 'nothing to nothing', a: null, b: null, diff: [], status: [] },
  { name: 'deleted file', a: { a: '1', b: '2' }, b: { b: '2' }, diff: ['a'], status: ['D a'] },
  { name: 'deleted directory is one D', a: { d: { e: { f: '1' }, g: '2' }, k: '1' }, b: { k: '1' }, diff: ['d'], status: ['D d'] },
  {
    name: 'added directory lists everything in it',
    a: { k: '1' },
    b: { k: '1', d: { e: { f: '1' }, g: '2', h: {} } },
    diff: ['d'],
    status: ['A d', 'A d/e', 'A d/e/f', 'A d/g', 'A d/h'],
  },
  { name: 'content change', a: { d: { f: '1' } }, b: { d: { f: '2' } }, diff: ['d/f'], status: ['C d/f'] },
  { name: 'mode change', a: { f: '1' }, b: { f: exe('1') }, diff: ['f'], status: ['C f'] },
  { name: 'file to symlink', a: { f: '1' }, b: { f: link('1') }, diff: ['f'], status: ['C f'] },
  { name: 'directory to file is one C', a: { d: { x: '1', y: '2' } }, b: { d: 'f' }, diff: ['d'], status: ['C d'] },
  { name: 'file to directory: C, then A for its content', a: { d: 'f' }, b: { d: { x: '1' } }, diff: ['d'], status: ['C d', 'A d/x'] },
  { name: 'from nothing: everything added', a: null, b: { a: '1', d: { b: '2' } }, diff: ['a', 'd'], status: ['A a', 'A d', 'A d/b'] },
  { name: 'to nothing: top-level deletions only', a: { a: '1', d: { b: '2' } }, b: null, diff: ['a', 'd'], status: ['D a', 'D d'] },
  {
    name: 'mixed changes in byte order',
    a: { a: '1', B: '2', d: { x: '1', y: '2' }, e: {} },
    b: { a: '9', d: { y: '2', z: '3' }, e: {}, f: '1' },
    diff: ['B', 'a', 'd/x', 'd/z', 'f'],
    status: ['D B', 'C a', 'D d/x', 'A d/z', 'A f'],
  },
];

for (const c of CASES) {
  test(`changes: ${c.name}`, () => {
    const m = new MemTrees();
    const a = c.a === null ? null : build(m, c.a);
    const b = c.b === null ? null : build(m, c.b);
    const diff = diffTrees(m, a, b);
    assert.equal(diff.map((d) => d.path), c.diff);
    for (const d of diff) {
      assert.equal(d.old, lookup(m, a, d.path), `old of ${d.path}`);
      assert.equal(d.new, lookup(m, b, d.path), `new of ${d.path}`);
    }
    assert.equal(statusEntries(m, diff).map((s) => `${s.change} ${s.path}`), c.status);
  });
}

test('changes: the walk skips equal subtrees', () => {
  const m = new MemTrees();
  const a = build(m, { big: { x: { y: '1' } }, f: '1' });
  const b = build(m, { big: { x: { y: '1' } }, f: '2' });
  m.reads.clear();
  diffTrees(m, a, b);
  assert.equal([...m.reads.keys()].sort(), [a, b].sort());
});

test('changes: a prefix is applied to paths', () => {
  const m = new MemTrees();
  const a = build(m, { x: '1' });
  const b = build(m, { x: '2' });
  assert.equal(diffTrees(m, a, b, 'p/q').map((c) => c.path), ['p/q/x']);
});

test('changes: trees 20,000 directories deep cost no call stack', () => {
  const m = new MemTrees();
  const chain = (leaf: Spec): string => {
    let t = build(m, leaf);
    for (let k = 0; k < 20000; k++) t = m.writeTree([{ name: 'd', mode: '40000', oid: t }]);
    return t;
  };
  const diff = diffTrees(m, chain({ f: '1', g: '2' }), chain({ f: '9' }));
  const base = Array(20000).fill('d').join('/');
  assert.equal(diff.map((c) => c.path), [`${base}/f`, `${base}/g`]);
});

test.run();
