// The index file: what is saved loads back the same (entries, trees, paths); a damaged or foreign file loads as
// absent, never as wrong stats; a scan against a loaded index keeps unchanged entries by position.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Columns, Index, indexPath, loadIndex, saveIndex, type IndexEntry } from '../../src/fs/index-file.js';
import { scanTree } from '../../src/fs/scan.js';
import { walkTree } from '../../src/core/tree.js';
import { MemTrees, build, deepChain, file, exe, link } from '../helpers/memtrees.js';
import { tmpdir } from '../helpers/tmp.js';

/** A tree whose names test the byte order: 'a' is a directory and 'a-b', 'a.b' sort between it and its children in git's order. */
function sample(m: MemTrees): string {
  return build(m, {
    a: { x: file('x'), y: { z: file('z') } },
    'a-b': file('ab'),
    'a.b': exe('#!/bin/sh'),
    lnk: link('a/x'),
    'l\xff\xfe': file('not utf-8'),
    empty: {},
  });
}

function entriesOf(m: MemTrees, root: string): Map<string, IndexEntry> {
  const out = new Map<string, IndexEntry>();
  let ino = 100;
  for (const { path, entry } of walkTree(m, root)) {
    out.set(path, { mode: entry.mode, oid: entry.oid, stat: { mtime: 1.5e12 + ino, ctime: 1.6e12 + ino, size: ino * 3, ino: ino, mode: 0o100600 + (ino % 7), uid: 1000 + ino, gid: ino++ }, racy: false });
  }
  return out;
}

function saved(m: MemTrees, root: string, entries: Map<string, IndexEntry>): string {
  const file = indexPath(tmpdir(), 'view');
  const index = new Index();
  for (const [p, e] of entries) index.set(p, e);
  saveIndex(file, m, root, index);
  return file;
}

test('round trip: every entry, its stat and the trees come back', () => {
  const m = new MemTrees();
  const root = sample(m);
  const want = entriesOf(m, root);
  const file = saved(m, root, want);
  const fresh = new MemTrees();
  const loaded = loadIndex(file, fresh);
  const cols = loaded.index.columns!; // before anything reads by path (that builds the map)
  assert.is(loaded.root, root);
  assert.is(loaded.rootCount, m.readTree(root).length);
  const got = new Map([...loaded.index].map(([p, e]) => [p, { ...e, count: undefined }]));
  assert.equal([...got.keys()].sort(), [...want.keys()].sort());
  for (const [p, e] of want) assert.equal(got.get(p), { ...e, count: undefined }, p);
  // The trees are rebuilt from the index alone: the fresh sink hashes them to the same oids.
  for (const [oid, entries] of cols.trees()!) assert.is(fresh.writeTree(entries), oid);
  assert.equal(cols.paths(), [...walkTree(m, root)].map((w) => w.path));
  assert.is(loaded.index.get('a')!.count, 2);
});

test('an entry with a stale stat or a newer ctime than the save is marked racy', () => {
  const m = new MemTrees();
  const root = sample(m);
  const entries = entriesOf(m, root);
  entries.get('a/x')!.stat.ctime = Date.now();
  entries.delete('a-b'); // no stat at all
  const loaded = loadIndex(saved(m, root, entries), new MemTrees());
  assert.is(loaded.index.get('a/x')!.racy, true);
  assert.is(loaded.index.get('a-b')!.racy, true);
  assert.is(loaded.index.get('a.b')!.racy, false);
});

const damages: Array<[string, (b: Buffer) => Buffer]> = [
  ['one bit flipped in the stats', (b) => { b[60] ^= 1; return b; }],
  ['one bit flipped in a name', (b) => { b[b.length - 25] ^= 1; return b; }],
  ['truncated', (b) => b.subarray(0, b.length - 7)],
  ['extended', (b) => Buffer.concat([b, Buffer.from('x')])],
  ['empty', () => Buffer.alloc(0)],
  ['the old JSON format', () => Buffer.from('{"v":3,"root":null,"rn":0,"p":[]}')],
  ['another version', (b) => { b[4] = 9; return b; }],
];
for (const [name, damage] of damages) {
  test(`a damaged index loads as absent: ${name}`, () => {
    const m = new MemTrees();
    const root = sample(m);
    const file = saved(m, root, entriesOf(m, root));
    fs.writeFileSync(file, damage(fs.readFileSync(file)));
    const loaded = loadIndex(file, new MemTrees());
    assert.is(loaded.root, null);
    assert.is(loaded.index.size, 0);
  });
}

test('a tree 3,000 directories deep saves and loads (no recursion, no quadratic walk)', () => {
  const m = new MemTrees();
  const root = deepChain(m, { leaf: file('bottom') }, 3000);
  const file2 = saved(m, root, entriesOf(m, root));
  const loaded = loadIndex(file2, new MemTrees());
  const paths = loaded.index.columns!.paths();
  assert.is(loaded.index.size, 3001);
  assert.ok(paths[3000].endsWith('/leaf'));
  assert.is(paths[3000].split('/').length, 3001);
});

test('changes by path over a loaded index: set wins over the file, delete hides it, a save keeps both', () => {
  const m = new MemTrees();
  const root = sample(m);
  const want = entriesOf(m, root);
  const loaded = loadIndex(saved(m, root, want), new MemTrees()).index;
  const changed: IndexEntry = { mode: '100644', oid: want.get('a/x')!.oid, stat: { mtime: 1, ctime: 2, size: 3, ino: 4, mode: 0o100644, uid: 5, gid: 6 }, racy: false };
  loaded.set('a/x', changed);
  assert.ok(loaded.delete('a-b'));
  assert.not.ok(loaded.delete('a-b'), 'already gone');
  assert.is(loaded.columns, null, 'changed since it was loaded');
  assert.equal(loaded.get('a/x'), changed);
  assert.is(loaded.get('a-b'), undefined);
  assert.is(loaded.has('a.b'), true);
  const keys = [...loaded.keys()];
  assert.is(keys.filter((k) => k === 'a/x').length, 1, 'a changed path is listed once');
  assert.is(keys.length, want.size - 1);
  // Saved against the tree: a/x keeps its new stat, a-b (no stat now) is racy, the rest as they were.
  const file2 = indexPath(tmpdir(), 'view');
  saveIndex(file2, m, root, loaded);
  const again = loadIndex(file2, new MemTrees()).index;
  assert.equal(again.get('a/x')!.stat, changed.stat);
  assert.is(again.get('a-b')!.racy, true);
  assert.equal(again.get('a.b')!.stat, want.get('a.b')!.stat);
  assert.is(again.get('a.b')!.racy, false);
});

test('Columns.fromEntries orders like the tree walk, directories before their entries', () => {
  const m = new MemTrees();
  const root = sample(m);
  const entries = entriesOf(m, root);
  const shuffled = new Map([...entries].reverse());
  const cols = Columns.fromEntries(shuffled);
  assert.equal(cols.paths(), [...entries.keys()]);
  assert.is(cols.desc[cols.paths().indexOf('a')], 3);
  assert.is(cols.counts[cols.paths().indexOf('a')], 2);
});

test('a scan against a loaded index keeps every unchanged entry and hashes only what changed', async () => {
  const dir = tmpdir();
  fs.mkdirSync(join(dir, 'd/e'), { recursive: true });
  fs.writeFileSync(join(dir, 'd/e/f'), 'f');
  fs.writeFileSync(join(dir, 'd-x'), 'dx');
  fs.writeFileSync(join(dir, 'g'), 'g');
  const m = new MemTrees();
  const racy = scanTree(dir, new Index(), m, { markers: false });
  await new Promise((r) => setTimeout(r, 60)); // past the racy window
  const first = scanTree(dir, racy.index, m, { markers: false }); // hashes the racy entries once more
  const file2 = indexPath(tmpdir(), 'view');
  saveIndex(file2, m, first.root, first.index);
  const loaded = loadIndex(file2, new MemTrees());
  const again = scanTree(dir, loaded.index, m, { markers: false, prevRoot: loaded.root, prevRootCount: loaded.rootCount });
  assert.is(again.hashed, 0);
  assert.is(again.root, first.root);
  assert.equal([...again.index.keys()].sort(), ['d', 'd-x', 'd/e', 'd/e/f', 'g']);
  fs.writeFileSync(join(dir, 'g'), 'changed');
  fs.rmSync(join(dir, 'd-x'));
  fs.writeFileSync(join(dir, 'd/new'), 'n');
  const third = scanTree(dir, loadIndex(file2, new MemTrees()).index, m, { markers: false, prevRoot: loaded.root, prevRootCount: loaded.rootCount });
  assert.is(third.hashed, 2);
  assert.equal([...third.index.keys()].sort(), ['d', 'd/e', 'd/e/f', 'd/new', 'g']);
  assert.is.not(third.root, first.root);
});

test('the metadata manifest and each entry\'s st_mode, uid and gid are saved with the index', () => {
  const m = new MemTrees();
  const root = build(m, { a: { x: '1' }, b: '2' });
  const want = entriesOf(m, root);
  const file = join(tmpdir(), 'meta.index');
  const meta = Buffer.from('# glayer metadata 1\nb mode=600\n');
  saveIndex(file, m, root, new Index(null, null, want), meta);
  const loaded = loadIndex(file, new MemTrees());
  assert.equal(loaded.meta, meta);
  for (const [p, e] of want) assert.equal(loaded.index.get(p)!.stat, e.stat, p);
  saveIndex(file, m, root, new Index(null, null, want));
  assert.is(loadIndex(file, new MemTrees()).meta, null);
});

test.run();
