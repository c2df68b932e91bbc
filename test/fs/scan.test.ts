// scanTree: a directory as a tree, with native git (add -A; write-tree) as the oracle; the stat cache proves
// unchanged files without reading them; markers are kept for the writable layer and set aside for a view.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { scanTree } from '../../src/fs/scan.js';
import { Index } from '../../src/fs/index-file.js';
import { EMPTY_TREE, lookup } from '../../src/core/tree.js';
import { GIT_ENV } from '../helpers/git.js';
import { MemTrees } from '../helpers/memtrees.js';
import { tmpdir } from '../helpers/tmp.js';

function nativeTree(dir: string): string {
  const g = (args: string[]) => execFileSync('git', ['-C', dir, ...args], { env: GIT_ENV }).toString().trim();
  g(['init', '-q']);
  g(['add', '-A']);
  const t = g(['write-tree']);
  fs.rmSync(join(dir, '.git'), { recursive: true });
  return t;
}

function populate(dir: string): void {
  fs.mkdirSync(join(dir, 'd/e'), { recursive: true });
  fs.writeFileSync(join(dir, 'a'), 'a\n');
  fs.writeFileSync(join(dir, 'a-b'), 'ab\n');
  fs.writeFileSync(join(dir, 'a.b'), 'a.b\n');
  fs.writeFileSync(join(dir, 'd/e/f'), 'deep\n');
  fs.writeFileSync(join(dir, 'd/empty-file'), '');
  fs.writeFileSync(join(dir, 'run'), '#!/bin/sh\n', { mode: 0o755 });
  fs.symlinkSync('d/e/f', join(dir, 'lnk'));
  fs.symlinkSync('/nonexistent/target', join(dir, 'dangling'));
  fs.writeFileSync(Buffer.from(join(dir, 'caf\xc3\xa9'), 'latin1'), 'nfc\n');
  fs.writeFileSync(Buffer.concat([Buffer.from(join(dir, '/')), Buffer.from([0x6c, 0xff, 0xfe])]), 'not utf-8\n');
  const big = Buffer.alloc(3 << 20, 7);
  fs.writeFileSync(join(dir, 'd/big'), big);
}

test('scanTree gives the tree native git writes for the same directory', () => {
  const dir = tmpdir();
  populate(dir);
  const m = new MemTrees();
  const r = scanTree(dir, new Index(), m, { markers: false });
  assert.is(r.root, nativeTree(dir));
  assert.equal(r.unrepresentable, []);
  assert.equal(r.skipped, []);
  assert.is(lookup(m, r.root, 'run')!.mode, '100755');
  assert.is(lookup(m, r.root, 'lnk')!.mode, '120000');
  assert.ok(lookup(m, r.root, 'l\xff\xfe') !== null, 'a non-UTF-8 name survives as bytes');
  assert.is(r.index.get('d/e/f')!.mode, '100644');
  assert.is(r.index.get('d')!.mode, '40000');
});

test('empty directories are git empty trees; a missing root is null', () => {
  const dir = tmpdir();
  fs.mkdirSync(join(dir, 'x/y'), { recursive: true });
  const m = new MemTrees();
  const r = scanTree(dir, new Index(), m, { markers: false });
  assert.equal(m.readTree(lookup(m, r.root, 'x')!.oid).map((e) => [e.name, e.oid]), [['y', EMPTY_TREE]]);
  assert.is(scanTree(join(dir, 'nope'), new Index(), m, { markers: false }).root, null);
  assert.is(scanTree(tmpdir(), new Index(), m, { markers: false }).root, EMPTY_TREE);
});

test('markers: kept for the writable layer, set aside (unrepresentable) for a view; special files skipped', () => {
  const dir = tmpdir();
  fs.mkdirSync(join(dir, 'd'));
  fs.writeFileSync(join(dir, '.wh.gone'), '');
  fs.writeFileSync(join(dir, 'd/.wh..wh..opq'), '');
  fs.writeFileSync(join(dir, 'keep'), 'k');
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  const m = new MemTrees();
  const upper = scanTree(dir, new Index(), m, { markers: true });
  assert.equal(m.readTree(upper.root!).map((e) => e.name), ['.wh.gone', 'd', 'keep']);
  assert.equal(upper.skipped, ['fifo']);
  const view = scanTree(dir, new Index(), m, { markers: false });
  assert.equal(m.readTree(view.root!).map((e) => e.name), ['d', 'keep']);
  assert.equal(view.unrepresentable.sort(), ['.wh.gone', 'd/.wh..wh..opq']);
});

test('the stat cache: an unchanged file is not hashed again; a changed one is', async () => {
  const dir = tmpdir();
  populate(dir);
  const m = new MemTrees();
  const first = scanTree(dir, new Index(), m, { markers: false });
  assert.ok(first.hashed >= 9);
  await new Promise((r) => setTimeout(r, 60)); // past the racy window
  const again = scanTree(dir, first.index, m, { markers: false });
  // Racy entries (written within the racy window of the first scan) are hashed again once; then never.
  const third = scanTree(dir, again.index, m, { markers: false });
  assert.is(third.hashed, 0);
  assert.is(third.root, first.root);
  fs.writeFileSync(join(dir, 'a'), 'A changed, same size? no\n');
  fs.chmodSync(join(dir, 'a-b'), 0o755);
  const fourth = scanTree(dir, third.index, m, { markers: false });
  assert.is(fourth.hashed, 2);
  assert.is(lookup(m, fourth.root, 'a-b')!.mode, '100755');
  assert.is(fourth.root, nativeTree(dir));
});

test('a same-size rewrite within the same second is still seen (ctime / racy rule)', () => {
  const dir = tmpdir();
  fs.writeFileSync(join(dir, 'f'), 'one\n');
  const m = new MemTrees();
  const a = scanTree(dir, new Index(), m, { markers: false });
  fs.writeFileSync(join(dir, 'f'), 'two\n');
  const b = scanTree(dir, a.index, m, { markers: false });
  assert.is.not(b.root, a.root);
  assert.is(b.root, nativeTree(dir));
});

test.run();
