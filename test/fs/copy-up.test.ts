// Copy-up by sharing (src/fs/copy-up.ts) on real directories: a Materializer with a partner directory makes each
// file the partner holds at the same path a hardlink of it (no second copy of the bytes), keeps the partner's stat
// cache right (a link or an unlink moves the shared inode's ctime: no rehash of everything, and no real change
// missed), and never shares a file it cannot prove holds the blob, nor one of another path.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { diffTrees } from '../../src/core/changes.js';
import { LinkPartner, unshare } from '../../src/fs/copy-up.js';
import { Index, loadIndex, saveIndex } from '../../src/fs/index-file.js';
import { Materializer, type BlobSource } from '../../src/fs/materialize.js';
import { scanTree } from '../../src/fs/scan.js';
import { MemTrees, build, exe, file, link, type Spec } from '../helpers/memtrees.js';
import { tmpdir } from '../helpers/tmp.js';

/** Blobs from memory, counting what is read (a shared file is never read). */
function blobsOf(m: MemTrees, reads: string[] = []): BlobSource {
  const get = (oid: string): Buffer => { reads.push(oid); return m.blobs.get(oid)!; };
  return {
    readSmall: (oid) => get(oid),
    read: get,
    writeFile: (oid, dest, mode) => fs.writeFileSync(dest, get(oid), { mode, flag: 'wx' }),
  };
}

/** Write `spec` into a fresh directory the ordinary way and scan it: the "view" side with its stat cache. */
async function side(m: MemTrees, spec: Spec): Promise<{ dir: string; root: string; index: Index }> {
  const dir = tmpdir();
  const root = build(m, spec);
  await new Materializer(dir, m, blobsOf(m), new Index()).apply(diffTrees(m, null, root));
  // Let the files age past the racy window, then scan: the index proves them by stat.
  await new Promise((r) => setTimeout(r, 30));
  const scan = scanTree(dir, new Index(), m, { markers: false });
  assert.is(scan.root, root);
  return { dir, root, index: scan.index };
}

function bigSpec(n: number): Spec {
  const spec: Record<string, Record<string, unknown>> = {};
  for (let k = 0; k < n; k++) {
    const d = `d${k % 5}`;
    spec[d] ??= {};
    spec[d][`f${k}`] = k % 41 === 0 ? link('../x') : k % 11 === 0 ? exe(`#!/bin/sh\n${k}\n`) : file(`file ${k}\n`);
  }
  return spec as Spec;
}

const ino = (p: string): number => fs.lstatSync(p).ino;

/** An index as the next command sees it: saved with the tree it describes, and loaded back. */
function reloaded(m: MemTrees, index: Index, root: string): Index {
  const file = join(tmpdir(), 'index');
  saveIndex(file, m, root, index);
  return loadIndex(file, m).index;
}

for (const [name, n] of [['main thread', 50], ['writer thread', 3000]] as const) {
  test(`each file the partner holds at the same path is a hardlink of it (${name}); the partner's stat cache stays right`, async () => {
    const m = new MemTrees();
    const v = await side(m, bigSpec(n));
    const upper = tmpdir();
    const partner = new LinkPartner(v.dir, v.index, upper);
    const reads: string[] = [];
    const index = new Index();
    await new Materializer(upper, m, blobsOf(m, reads), index, undefined, partner).apply(diffTrees(m, null, v.root));
    const files = [...v.index.files()].filter(([, , l]) => !l).length;
    assert.is(partner.counts.link, files);
    for (const p of ['d1/f1', 'd0/f0', 'd1/f11']) {
      const a = fs.lstatSync(join(v.dir, p));
      const b = fs.lstatSync(join(upper, p));
      if (a.isSymbolicLink()) { assert.is.not(a.ino, b.ino, `${p}: symlinks are written, not linked`); continue; }
      assert.is(a.ino, b.ino, p);
      assert.is(b.nlink, 2, p);
      // Both indexes hold the shared inode's stat as it is now (the link moved its ctime).
      assert.is(index.get(p)!.stat.ctime, b.ctimeMs, p);
      assert.is(v.index.get(p)!.stat.ctime, b.ctimeMs, p);
    }
    assert.ok(partner.touched);
    assert.ok(reads.every((oid) => m.blobs.get(oid)!.length < 20), 'only symlink targets were read');
    // Both sides scan back without hashing anything.
    await new Promise((r) => setTimeout(r, 30));
    const again = scanTree(v.dir, reloaded(m, v.index, v.root), m, { markers: false });
    assert.is(again.root, v.root);
    assert.is(again.hashed, 0, 'the partner is not rehashed');
    const up = scanTree(upper, reloaded(m, index, v.root), m, { markers: true });
    assert.equal(diffTrees(m, v.root, up.root), []);
    assert.is(up.root, v.root);
    assert.is(up.hashed, 0);
    assert.is(fs.statSync(join(upper, 'd1/f11')).mode & 0o777, 0o755);
  });
}

test('a file not proved to hold the blob, or of another path, or with another mode, is written, not shared', async () => {
  const m = new MemTrees();
  const v = await side(m, { same: file('same\n'), changed: file('old!\n'), exe: exe('x\n'), dir: { twin: file('twin\n') } });
  // Changed after the scan (same size): its stat no longer matches the index.
  fs.writeFileSync(join(v.dir, 'changed'), 'new!\n');
  // The upper should hold: `same` (shareable), `changed` as the indexed blob, `other` with the content of
  // dir/twin (another path: never linked), `exe` as a plain file (mode differs).
  const want = build(m, { same: file('same\n'), changed: file('old!\n'), exe: file('x\n'), other: file('twin\n') });
  const upper = tmpdir();
  const partner = new LinkPartner(v.dir, v.index, upper);
  await new Materializer(upper, m, blobsOf(m), new Index(), undefined, partner).apply(diffTrees(m, null, want));
  assert.is(partner.counts.link, 1);
  assert.is(ino(join(upper, 'same')), ino(join(v.dir, 'same')));
  for (const p of ['changed', 'exe', 'other']) assert.is(fs.lstatSync(join(upper, p)).nlink, 1, p);
  assert.is(fs.readFileSync(join(upper, 'changed'), 'utf8'), 'old!\n');
  assert.is(fs.readFileSync(join(v.dir, 'changed'), 'utf8'), 'new!\n', 'the partner is untouched');
  assert.is(fs.statSync(join(upper, 'exe')).mode & 0o111, 0);
  assert.is(fs.statSync(join(v.dir, 'exe')).mode & 0o111, 0o111);
});

test('a file with two names in the partner (a hardlink in the tree): both are shared, every entry kept right', async () => {
  const m = new MemTrees();
  const v = await side(m, { bin: { perl: exe('perl\n'), tool: file('t\n') }, usr: { 'perl5.36': exe('perl\n') } });
  // Make usr/perl5.36 a second name of bin/perl, as the Debian tar has it, and scan again.
  fs.rmSync(join(v.dir, 'usr/perl5.36'));
  fs.linkSync(join(v.dir, 'bin/perl'), join(v.dir, 'usr/perl5.36'));
  await new Promise((r) => setTimeout(r, 30));
  const index0 = scanTree(v.dir, new Index(), m, { markers: false }).index;
  const upper = tmpdir();
  const partner = new LinkPartner(v.dir, index0, upper);
  const index = new Index();
  await new Materializer(upper, m, blobsOf(m), index, undefined, partner).apply(diffTrees(m, null, v.root));
  assert.is(partner.counts.link, 3);
  const i = ino(join(v.dir, 'bin/perl'));
  for (const p of ['bin/perl', 'usr/perl5.36']) assert.is(ino(join(upper, p)), i, p);
  assert.is(fs.lstatSync(join(upper, 'bin/perl')).nlink, 4);
  const now = fs.lstatSync(join(upper, 'bin/perl')).ctimeMs;
  for (const [side, ix] of [['partner', index0], ['own', index]] as const) {
    for (const p of ['bin/perl', 'usr/perl5.36']) assert.is(ix.get(p)!.stat.ctime, now, `${side} ${p}`);
  }
});

test('a racy partner entry is linked only after its content hashes to the blob', async () => {
  const m = new MemTrees();
  const v = await side(m, { a: file('aaaa\n'), b: file('bbbb\n') });
  // Both entries racy (as a scan marks a file written in the same tick), and b changed in a way its stat cannot
  // show: its entry has the new stat but still the old oid.
  for (const p of ['a', 'b']) v.index.set(p, { ...v.index.get(p)!, racy: true });
  fs.writeFileSync(join(v.dir, 'b'), 'BBBB\n');
  const st = fs.lstatSync(join(v.dir, 'b'));
  v.index.set('b', { ...v.index.get('b')!, stat: { mtime: st.mtimeMs, ctime: st.ctimeMs, size: st.size, ino: st.ino, mode: st.mode, uid: st.uid, gid: st.gid }, racy: true });
  const upper = tmpdir();
  const partner = new LinkPartner(v.dir, v.index, upper);
  const index = new Index();
  await new Materializer(upper, m, blobsOf(m), index, undefined, partner).apply(diffTrees(m, null, v.root));
  assert.is(ino(join(upper, 'a')), ino(join(v.dir, 'a')), 'a hashes to its blob: linked');
  assert.is(index.get('a')!.racy, false, 'proved by the hash (its mtime is older than the racy window)');
  assert.is(v.index.get('a')!.racy, false);
  assert.is(fs.lstatSync(join(upper, 'b')).nlink, 1, 'b does not hold its blob: written from the blob');
  assert.is(fs.readFileSync(join(upper, 'b'), 'utf8'), 'bbbb\n');
});

test('removing shared names brings the partner\'s entries up to date, except for a file that really changed', async () => {
  const m = new MemTrees();
  const v = await side(m, { d: { a: file('a\n'), b: file('b\n'), c: file('c\n') }, top: file('top\n') });
  const upper = tmpdir();
  const index = new Index();
  await new Materializer(upper, m, blobsOf(m), index, undefined, new LinkPartner(v.dir, v.index, upper)).apply(diffTrees(m, null, v.root));
  // The user edits d/b in place through the view (the same inode as upper's d/b), same size.
  await new Promise((r) => setTimeout(r, 30));
  fs.writeFileSync(join(v.dir, 'd/b'), 'B\n');
  const partner = new LinkPartner(v.dir, v.index, upper);
  await new Materializer(upper, m, blobsOf(m), index, undefined, partner).apply(diffTrees(m, v.root, null));
  assert.equal(fs.readdirSync(upper), []);
  assert.is(partner.counts.refreshed, 3, 'd/a, d/c and top (not the edited d/b)');
  for (const p of ['d/a', 'top']) assert.is(v.index.get(p)!.stat.ctime, fs.lstatSync(join(v.dir, p)).ctimeMs, p);
  await new Promise((r) => setTimeout(r, 30));
  const again = scanTree(v.dir, reloaded(m, v.index, v.root), m, { markers: false });
  assert.is(again.hashed, 1, 'only the edited file is hashed');
  assert.equal(diffTrees(m, v.root, again.root).map((c) => c.path), ['d/b']);
});

test('unshare gives every shared file its own copy; the other side keeps its files', async () => {
  const m = new MemTrees();
  const v = await side(m, { a: file('a\n'), s: { b: exe('b\n') }, l: link('a') });
  const upper = tmpdir();
  const index = new Index();
  await new Materializer(upper, m, blobsOf(m), index, undefined, new LinkPartner(v.dir, v.index, upper)).apply(diffTrees(m, null, v.root));
  const state = tmpdir();
  assert.is(unshare(upper, index, v.dir, state), 2);
  assert.equal(fs.readdirSync(state), []);
  for (const p of ['a', 's/b']) {
    assert.is(fs.lstatSync(join(upper, p)).nlink, 1, p);
    assert.is(fs.lstatSync(join(v.dir, p)).nlink, 1, p);
  }
  assert.is(fs.statSync(join(upper, 's/b')).mode & 0o777, 0o755);
  fs.writeFileSync(join(v.dir, 'a'), 'edited in the detached view\n');
  assert.is(fs.readFileSync(join(upper, 'a'), 'utf8'), 'a\n');
  await new Promise((r) => setTimeout(r, 30)); // past the racy window of the files just written
  const up = scanTree(upper, reloaded(m, index, v.root), m, { markers: true });
  assert.equal(diffTrees(m, v.root, up.root), []);
  assert.is(up.root, v.root);
  assert.is(up.hashed, 0, 'the index follows the copies');
});

test('on another file system nothing is linked (the ordinary copy)', async () => {
  const m = new MemTrees();
  const v = await side(m, { a: file('a\n') });
  if (fs.statSync('/dev/shm').dev === fs.statSync(v.dir).dev) { console.log('  (skipped: /dev/shm is on the same file system as the temp dir)'); return; }
  const upper = fs.mkdtempSync('/dev/shm/glayer-test-');
  try {
    const partner = new LinkPartner(v.dir, v.index, upper);
    await new Materializer(upper, m, blobsOf(m), new Index(), undefined, partner).apply(diffTrees(m, null, v.root));
    assert.is(partner.counts.link, 0);
    assert.is(fs.readFileSync(join(upper, 'a'), 'utf8'), 'a\n');
  } finally {
    fs.rmSync(upper, { recursive: true, force: true });
  }
});

test.run();
