// applyMeta as a process that is not root (asRoot false; the real uid may be root): it applies what such a
// process could (permission bits without setuid/setgid, fifos, hardlinks, mtimes), leaves devices as the empty
// files the tree holds and files owned as they are, and names what it did not apply, once. As root it applies
// everything, and the index then holds the new stat so that a scan sees no edit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { diffTrees } from '../../src/core/changes.js';
import { metaChanges, parseManifest } from '../../src/core/meta.js';
import { applyMeta } from '../../src/fs/apply-meta.js';
import { Index, loadIndex, saveIndex } from '../../src/fs/index-file.js';
import { Materializer, type BlobSource } from '../../src/fs/materialize.js';
import { scanTree } from '../../src/fs/scan.js';
import { observeView } from '../../src/fs/observe-meta.js';
import { MemTrees, build, empty, exe, file } from '../helpers/memtrees.js';
import { tmpdir } from '../helpers/tmp.js';

const ROOT = process.getuid?.() === 0;

async function setup(): Promise<{ m: MemTrees; tree: string; dir: string; index: Index }> {
  const m = new MemTrees();
  const tree = build(m, { bin: { su: exe('su'), su2: exe('su') }, dev: { null: empty(), p: empty() }, etc: { shadow: file('s') } });
  const dir = tmpdir();
  const blobs: BlobSource = {
    readSmall: (oid) => m.blobs.get(oid)!, read: (oid) => m.blobs.get(oid)!,
    writeFile: (oid, dest, mode) => fs.writeFileSync(dest, m.blobs.get(oid)!, { mode, flag: 'wx' }),
  };
  const index = new Index();
  await new Materializer(dir, m, blobs, index).apply(diffTrees(m, null, tree));
  return { m, tree, dir, index };
}

const MANIFEST = parseManifest('# glayer metadata 1\nbin/su mode=4755 mtime=1600000000\nbin/su2 link=bin/su\ndev/null type=char dev=1,3 mode=666\ndev/p type=fifo mode=600\netc/shadow mode=640 gid=42\n');

test('not root: owners, devices and setuid bits are not applied, and said once', async () => {
  const { m, tree, dir, index } = await setup();
  const r = applyMeta(dir, index, metaChanges(m, tree, new Map(), MANIFEST, []), false);
  assert.equal(r.notApplied, ['1 owner', '1 device (left as an empty file)', '1 setuid/setgid bit']);
  const su = fs.lstatSync(join(dir, 'bin/su'));
  assert.is(su.mode & 0o7777, 0o755);
  assert.is(su.mtimeMs, 1600000000000);
  assert.is(fs.lstatSync(join(dir, 'bin/su2')).ino, su.ino, 'hardlinks need no root');
  assert.ok(fs.lstatSync(join(dir, 'dev/null')).isFile());
  assert.ok(fs.lstatSync(join(dir, 'dev/p')).isFIFO(), 'fifos need no root');
  assert.is(fs.lstatSync(join(dir, 'dev/p')).mode & 0o7777, 0o600);
  assert.is(fs.lstatSync(join(dir, 'etc/shadow')).mode & 0o7777, 0o640);
});

test('root: everything is applied, and a scan with the index sees nothing changed', async () => {
  if (!ROOT) { console.log('  (skipped: not root)'); return; }
  const { m, tree, dir, index } = await setup();
  const r = applyMeta(dir, index, metaChanges(m, tree, new Map(), MANIFEST, []));
  assert.equal(r.notApplied, []);
  const n = fs.lstatSync(join(dir, 'dev/null'));
  assert.ok(n.isCharacterDevice());
  assert.is(n.rdev, (1 << 8) | 3);
  assert.is(fs.lstatSync(join(dir, 'bin/su')).mode & 0o7777, 0o4755);
  assert.is(fs.lstatSync(join(dir, 'etc/shadow')).gid, 42);
  // Stats taken now are racy; wait past the racy window so the scan can trust them.
  await new Promise((res) => setTimeout(res, 50));
  const file = join(tmpdir(), 'index');
  saveIndex(file, m, tree, index);
  const s = scanTree(dir, loadIndex(file, m).index, m, { markers: false, meta: true });
  assert.is(s.root, tree);
  assert.is(s.hashed, 0);
  // What it looks at again (directories whose stat changed as files were added) changes no record.
  assert.is(observeView(dir, m, MANIFEST, tree, s.observed, []).changed.size, 0);
});

test.run();
