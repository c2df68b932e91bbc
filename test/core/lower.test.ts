// lowerForm: a layer tree as an overlay lower directory (plain content + markers by path), the one place where a
// layer's meaning and a lower directory's differ: a whiteout beside its own entry hides only lower layers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { lowerForm } from '../../src/core/lower.js';
import { MemTrees, build, flatten, type Spec } from '../helpers/memtrees.js';

interface Case { name: string; layer: Spec; plain: Record<string, string>; whiteouts?: string[]; opaque?: string[]; rootOpaque?: boolean }

const CASES: Case[] = [
  { name: 'no markers: the tree as it is', layer: { a: '1', d: { b: '2' } }, plain: { a: 'file:1', d: 'dir', 'd/b': 'file:2' } },
  { name: 'a whiteout of a lower name', layer: { a: '1', '.wh.b': '' }, plain: { a: 'file:1' }, whiteouts: ['b'] },
  { name: 'nested whiteout', layer: { d: { '.wh.x': '', y: '1' } }, plain: { d: 'dir', 'd/y': 'file:1' }, whiteouts: ['d/x'] },
  { name: 'whiteout beside its own file: the file replaces by itself, no marker', layer: { '.wh.a': '', a: 'new' }, plain: { a: 'file:new' } },
  { name: 'whiteout beside its own directory: the directory becomes opaque', layer: { '.wh.d': '', d: { n: '1' } }, plain: { d: 'dir', 'd/n': 'file:1' }, opaque: ['d'] },
  { name: 'opaque marker: opaque directory, marker gone', layer: { d: { '.wh..wh..opq': '', n: '1' } }, plain: { d: 'dir', 'd/n': 'file:1' }, opaque: ['d'] },
  { name: 'opaque marker at the root: left to the stack', layer: { '.wh..wh..opq': '', a: '1' }, plain: { a: 'file:1' }, rootOpaque: true },
  { name: 'the metadata manifest at the root never reaches a lower directory', layer: { '.wh..wh..meta': '# glayer metadata 1\n', a: '1' }, plain: { a: 'file:1' } },
  { name: 'a directory holding only markers stays, empty', layer: { d: { '.wh.a': '', '.wh.b': '' } }, plain: { d: 'dir' }, whiteouts: ['d/a', 'd/b'] },
];

for (const c of CASES) {
  test(c.name, () => {
    const m = new MemTrees();
    const f = lowerForm(m, build(m, c.layer));
    assert.equal(flatten(m, f.plain), c.plain);
    assert.equal(f.whiteouts, c.whiteouts ?? []);
    assert.equal(f.opaque, c.opaque ?? []);
    assert.is(f.rootOpaque, c.rootOpaque ?? false);
  });
}

test('an untouched subtree keeps its tree id (no rewrite without markers)', () => {
  const m = new MemTrees();
  const layer = build(m, { a: { b: { c: '1' } } });
  assert.is(lowerForm(m, layer).plain, layer);
});

test.run();
