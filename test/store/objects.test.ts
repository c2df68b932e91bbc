// Object I/O on node's zlib and crypto, with native git as the oracle both ways: what ObjectWriter writes
// (a pack, loose objects, a streamed large blob) native git reads identically and fsck --strict accepts;
// what native git writes (loose, packs from gc / repack with OFS_DELTA and REF_DELTA) ObjectStore reads
// byte for byte. Corruption is an ObjectError naming the oid.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import * as zlibMod from 'node:zlib';
import { ObjectStore, encodeTree, hashObject, parseTree, LARGE_BLOB, type ObjectType } from '../../src/store/objects.js';
import { EMPTY_BLOB, EMPTY_TREE, type TreeEntry } from '../../src/core/tree.js';
import { formatCommit } from '../../src/store/commits.js';
import { ObjectError } from '../../src/errors.js';
import { GIT_ENV, fsck, git } from '../helpers/git.js';
import { tmpdir } from '../helpers/tmp.js';

function bareRepo(): string {
  const d = join(tmpdir(), 'store.git');
  execFileSync('git', ['init', '-q', '--bare', d], { env: GIT_ENV });
  return d;
}

/** Every object of a repository, read by native git: oid -> {type, data}. */
function nativeObjects(gitdir: string): Map<string, { type: string; data: Buffer }> {
  const out = execFileSync('git', ['--git-dir', gitdir, 'cat-file', '--batch-all-objects', '--batch', '--unordered'], { env: GIT_ENV, maxBuffer: 1 << 30 });
  const m = new Map<string, { type: string; data: Buffer }>();
  let p = 0;
  while (p < out.length) {
    const nl = out.indexOf(0x0a, p);
    const [oid, type, size] = out.toString('latin1', p, nl).split(' ');
    const start = nl + 1;
    m.set(oid, { type, data: out.subarray(start, start + Number(size)) });
    p = start + Number(size) + 1;
  }
  return m;
}

function packFiles(gitdir: string): string[] {
  try { return fs.readdirSync(join(gitdir, 'objects', 'pack')).filter((n) => n.endsWith('.pack')); } catch { return []; }
}

function looseCount(gitdir: string): number {
  let n = 0;
  for (const d of fs.readdirSync(join(gitdir, 'objects'))) if (/^[0-9a-f]{2}$/.test(d)) n += fs.readdirSync(join(gitdir, 'objects', d)).length;
  return n;
}

/** Types of a pack's entries by reading each entry's header at the offsets `git show-index` gives. */
function packEntryTypes(packPath: string): Record<number, number> {
  const idx = packPath.replace(/\.pack$/, '.idx');
  const lines = execFileSync('git', ['show-index'], { input: fs.readFileSync(idx), env: GIT_ENV }).toString().trim().split('\n');
  const pack = fs.readFileSync(packPath);
  const counts: Record<number, number> = {};
  for (const l of lines) {
    const off = Number(l.split(' ')[0]);
    const t = (pack[off] >> 4) & 7;
    counts[t] = (counts[t] ?? 0) + 1;
  }
  return counts;
}

/** A batch of varied objects: blobs, trees in tricky git order, a commit. */
function sampleObjects(nBlobs: number): Array<{ type: ObjectType; data: Buffer }> {
  const objs: Array<{ type: ObjectType; data: Buffer }> = [];
  const entries: TreeEntry[] = [];
  for (let k = 0; k < nBlobs; k++) {
    const data = Buffer.from(k === 0 ? '' : `blob number ${k}\n${'x'.repeat(k * 37)}\n`);
    objs.push({ type: 'blob', data });
    entries.push({ name: `f${k}`, mode: k % 3 === 0 ? '100755' : '100644', oid: hashObject('blob', data) });
  }
  const linkData = Buffer.from('../target');
  objs.push({ type: 'blob', data: linkData });
  entries.push({ name: 'link', mode: '120000', oid: hashObject('blob', linkData) });
  // 'a' is a directory: git sorts it as 'a/', after 'a-b' and 'a.b' but before 'a0'.
  const subEntries: TreeEntry[] = [{ name: 'inner', mode: '100644', oid: hashObject('blob', objs[1].data) }, { name: 'empty', mode: '40000', oid: EMPTY_TREE }];
  const sub = encodeTree(subEntries);
  objs.push({ type: 'tree', data: Buffer.alloc(0) });
  objs.push({ type: 'tree', data: sub });
  entries.push({ name: 'a', mode: '40000', oid: hashObject('tree', sub) });
  for (const n of ['a-b', 'a.b', 'a0', '\xc3\xa9']) entries.push({ name: n, mode: '100644', oid: EMPTY_BLOB });
  entries.sort((x, y) => (x.name < y.name ? -1 : 1));
  const root = encodeTree(entries);
  objs.push({ type: 'tree', data: root });
  const sig = { name: 'T', email: 't@e', timestamp: 1700000000, tz: '+0100' };
  objs.push({ type: 'commit', data: formatCommit({ tree: hashObject('tree', root), parents: [], author: sig, committer: sig, message: 'layer\n\nbody\n' }) });
  return objs;
}

function checkAgainstNative(gitdir: string, objs: Array<{ type: ObjectType; data: Buffer }>): void {
  const native = nativeObjects(gitdir);
  const want = new Map(objs.map((o) => [hashObject(o.type, o.data), o]));
  assert.is(native.size, want.size, 'object count');
  for (const [oid, o] of want) {
    const n = native.get(oid);
    assert.ok(n, `git does not see ${oid}`);
    assert.is(n!.type, o.type);
    assert.ok(n!.data.equals(o.data), `content of ${oid}`);
    assert.is(git(gitdir, ['cat-file', '-t', oid]), o.type);
    assert.is(git(gitdir, ['cat-file', '-s', oid]), String(o.data.length));
  }
  // -p of the root tree shows git's order.
  const commit = [...want].find(([, o]) => o.type === 'commit')![0];
  const ls = git(gitdir, ['cat-file', '-p', `${commit}^{tree}`]).split('\n').map((l) => l.split('\t')[1]);
  assert.equal(ls.slice(0, 5), ['a-b', 'a.b', 'a', 'a0', 'f0']);
  fsck(gitdir);
}

test('ObjectWriter: 32 or more objects go to one pack that native git reads and verifies', () => {
  const gitdir = bareRepo();
  const store = new ObjectStore(gitdir);
  const w = store.writer();
  const objs = sampleObjects(40);
  for (const o of objs) w.add(o.type, o.data);
  w.add('blob', objs[3].data); // duplicates are written once
  assert.is(w.size, objs.length);
  w.flush();
  assert.is(packFiles(gitdir).length, 1);
  assert.is(looseCount(gitdir), 0);
  const pack = join(gitdir, 'objects', 'pack', packFiles(gitdir)[0]);
  const vp = git(gitdir, ['verify-pack', '-v', pack.replace(/\.pack$/, '.idx')]);
  assert.match(vp, /: ok$/);
  checkAgainstNative(gitdir, objs);
  // And glayer reads them back (a fresh store, nothing cached).
  const again = new ObjectStore(gitdir);
  for (const o of objs) {
    const oid = hashObject(o.type, o.data);
    const r = again.read(oid);
    assert.is(r.type, o.type);
    assert.ok(r.data.equals(o.data));
    assert.is(again.sizeOf(oid), o.data.length);
    assert.ok(again.has(oid));
  }
  again.close();
  store.close();
});

test('ObjectWriter: fewer than 32 objects are written loose', () => {
  const gitdir = bareRepo();
  const store = new ObjectStore(gitdir);
  const w = store.writer();
  const objs = sampleObjects(10);
  assert.ok(objs.length < 32);
  for (const o of objs) w.add(o.type, o.data);
  w.flush();
  assert.is(packFiles(gitdir).length, 0);
  assert.is(looseCount(gitdir), objs.length);
  checkAgainstNative(gitdir, objs);
  // Objects already in the store are not written again.
  const w2 = store.writer();
  for (const o of objs) w2.add(o.type, o.data);
  assert.is(w2.size, 0);
  store.close();
});

test('ObjectWriter: a pack and loose objects side by side, then git repacks them', () => {
  const gitdir = bareRepo();
  const store = new ObjectStore(gitdir);
  const big = sampleObjects(40);
  let w = store.writer();
  for (const o of big) w.add(o.type, o.data);
  w.flush();
  w = store.writer();
  const extra = [{ type: 'blob' as const, data: Buffer.from('one more\n') }];
  for (const o of extra) w.add(o.type, o.data);
  w.flush();
  checkAgainstNative(gitdir, [...big, ...extra]);
  store.close();
});

test('ObjectStore reads loose objects and packs written by native git (OFS_DELTA, REF_DELTA) byte for byte', () => {
  const base = tmpdir();
  const work = join(base, 'work');
  fs.mkdirSync(work);
  const g = (args: string[], input?: string) => execFileSync('git', ['-C', work, ...args], { env: GIT_ENV, input, maxBuffer: 1 << 28 }).toString();
  g(['init', '-q']);
  // Many versions of one big text file, which delta well against each other.
  const lines: string[] = [];
  for (let k = 0; k < 3000; k++) lines.push(`line ${k}: the quick brown fox jumps over the lazy dog ${k * 7919 % 1000}`);
  for (let v = 0; v < 25; v++) {
    lines[(v * 131) % lines.length] = `changed in version ${v}`;
    lines.push(`appended ${v}`);
    fs.writeFileSync(join(work, 'big.txt'), lines.join('\n'));
    fs.mkdirSync(join(work, 'dir', `sub${v % 4}`), { recursive: true });
    fs.writeFileSync(join(work, 'dir', `sub${v % 4}`, 'f.txt'), `version ${v}\n`.repeat(50));
    if (v % 5 === 0) fs.symlinkSync(`big.txt`, join(work, `link${v}`));
    g(['add', '-A']);
    g(['commit', '-q', '-m', `version ${v}`]);
  }
  g(['tag', '-a', 'v1', '-m', 'an annotated tag']);
  const gitdir = join(work, '.git');
  const check = (label: string) => {
    const native = nativeObjects(gitdir);
    assert.ok(native.size > 100, label);
    const store = new ObjectStore(gitdir);
    for (const [oid, n] of native) {
      const o = store.read(oid);
      assert.is(o.type, n.type, `${label}: type of ${oid}`);
      assert.ok(o.data.equals(n.data), `${label}: content of ${oid}`);
      assert.is(store.sizeOf(oid), n.data.length, `${label}: size of ${oid}`);
      if (n.type === 'tree') assert.ok(store.readTree(oid).length > 0 || oid === EMPTY_TREE);
    }
    assert.equal(new Set(store.allOids()), new Set(native.keys()), `${label}: allOids`);
    store.close();
    return native.size;
  };
  check('loose');
  g(['gc', '-q']);
  let types = packEntryTypes(join(gitdir, 'objects', 'pack', packFiles(gitdir)[0]));
  assert.ok((types[6] ?? 0) > 10, `gc made ${JSON.stringify(types)}: want OFS_DELTA entries`);
  check('gc');
  g(['repack', '-adf', '--depth=50', '--window=50']);
  assert.is(packFiles(gitdir).length, 1);
  types = packEntryTypes(join(gitdir, 'objects', 'pack', packFiles(gitdir)[0]));
  assert.ok((types[6] ?? 0) > 10, `repack made ${JSON.stringify(types)}`);
  check('repack -adf');
  // REF_DELTA: pack-objects without --delta-base-offset.
  const list = g(['rev-list', '--objects', '--all']);
  const packDir = join(gitdir, 'objects', 'pack');
  const tmpPacks = join(base, 'packs');
  fs.mkdirSync(tmpPacks);
  const name = execFileSync('git', ['-C', work, 'pack-objects', '-q', '--window=50', '--depth=50', '--no-reuse-delta', join(tmpPacks, 'pack')], { env: GIT_ENV, input: list }).toString().trim();
  for (const f of fs.readdirSync(packDir)) fs.rmSync(join(packDir, f));
  for (const f of fs.readdirSync(tmpPacks)) fs.renameSync(join(tmpPacks, f), join(packDir, f));
  types = packEntryTypes(join(packDir, `pack-${name}.pack`));
  assert.ok((types[7] ?? 0) > 10 && !types[6], `pack-objects made ${JSON.stringify(types)}: want REF_DELTA entries only`);
  check('REF_DELTA');
  fsck(gitdir);
});

test('pack reads through the read window: every order, entries larger than the window, more packs than the windows kept', () => {
  // Pack.bytes serves reads from a window of the pack that grows while reads go forward and is dropped when the
  // budget of all packs' windows (16 MiB, 64 packs) is spent: reading must give the same bytes in any order.
  const base = tmpdir();
  const work = join(base, 'work');
  fs.mkdirSync(work);
  const g = (args: string[]) => execFileSync('git', ['-C', work, '-c', 'gc.auto=0', ...args], { env: GIT_ENV, maxBuffer: 1 << 28 }).toString();
  g(['init', '-q']);
  let seed = 7;
  const rnd = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
  // 70 packs (more than the windows kept): small files, one of 5 MiB of random bytes (larger than MAX_WINDOW,
  // stored whole), and text versions that delta.
  const text: string[] = [];
  for (let k = 0; k < 400; k++) text.push(`line ${k} ${k * 31 % 97}`);
  for (let v = 0; v < 70; v++) {
    for (let f = 0; f < 12; f++) {
      const size = [0, 5, 700, 9000, 70000][rnd() % 5];
      const buf = Buffer.alloc(size);
      for (let i = 0; i < size; i++) buf[i] = 97 + (rnd() % 20);
      fs.writeFileSync(join(work, `f${f}`), buf);
    }
    text[(v * 37) % text.length] = `version ${v}`;
    fs.writeFileSync(join(work, 'text'), text.join('\n'));
    if (v === 35) {
      const big = Buffer.alloc(5 << 20);
      for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(rnd(), i);
      fs.writeFileSync(join(work, 'big'), big);
    }
    g(['add', '-A']);
    g(['commit', '-q', '-m', `v${v}`]);
    g(['repack', '-q', '-d']);
  }
  const gitdir = join(work, '.git');
  assert.ok(packFiles(gitdir).length >= 70, `${packFiles(gitdir).length} packs`);
  const native = nativeObjects(gitdir);
  const oids = [...native.keys()].sort();
  const orders: Record<string, string[]> = {
    sorted: oids,
    reversed: [...oids].reverse(),
    shuffled: [...oids].sort(() => (rnd() % 3) - 1),
    'each twice, interleaved': oids.flatMap((o, i) => [o, oids[(i * 7919) % oids.length]]),
  };
  for (const [label, order] of Object.entries(orders)) {
    const store = new ObjectStore(gitdir);
    for (const oid of order) {
      const o = store.read(oid);
      const n = native.get(oid)!;
      assert.is(o.type, n.type, `${label}: type of ${oid}`);
      assert.ok(o.data.equals(n.data), `${label}: content of ${oid}`);
      assert.is(store.sizeOf(oid), n.data.length, `${label}: size of ${oid}`);
    }
    store.close();
  }
  // Two stores reading the same packs at once (each pack object has its own window).
  const a = new ObjectStore(gitdir);
  const b = new ObjectStore(gitdir);
  for (let i = 0; i < oids.length; i++) {
    assert.ok(a.read(oids[i]).data.equals(native.get(oids[i])!.data));
    const j = oids.length - 1 - i;
    assert.ok(b.read(oids[j]).data.equals(native.get(oids[j])!.data));
  }
  a.close();
  b.close();
});

test('a large blob (> 16 MiB) streams into a pack through addFile and out through writeBlobTo', async () => {
  const gitdir = bareRepo();
  const dir = tmpdir();
  const src = join(dir, 'big.bin');
  const size = LARGE_BLOB + 1234567;
  const chunk = Buffer.alloc(1 << 20);
  for (let k = 0; k < chunk.length; k++) chunk[k] = (k * 2654435761) >>> 24;
  const fd = fs.openSync(src, 'w');
  for (let written = 0, k = 0; written < size; k++) {
    const n = Math.min(chunk.length, size - written);
    chunk[0] = k & 0xff;
    fs.writeSync(fd, chunk, 0, n);
    written += n;
  }
  fs.closeSync(fd);
  const store = new ObjectStore(gitdir);
  const w = store.writer();
  const oid = await w.addFile(Buffer.from(src), size);
  assert.is(oid, execFileSync('git', ['hash-object', src], { env: GIT_ENV }).toString().trim());
  assert.is(w.size, 1, 'the blob is in the batch (on disk, in the pack being written)');
  w.flush();
  assert.is(packFiles(gitdir).length, 1, 'written to a pack');
  assert.is(looseCount(gitdir), 0);
  assert.is(git(gitdir, ['cat-file', '-t', oid]), 'blob');
  assert.is(git(gitdir, ['cat-file', '-s', oid]), String(size));
  assert.is(store.sizeOf(oid), size);
  assert.is(store.readSmallBlob(oid), null, 'a large packed blob is streamed, not read whole');
  const out = join(dir, 'out.bin');
  await store.writeBlobTo(oid, Buffer.from(out), 0o644);
  assert.is(fs.statSync(out).size, size);
  assert.is(execFileSync('git', ['hash-object', out], { env: GIT_ENV }).toString().trim(), oid);
  // writeBlobTo never overwrites.
  let err: unknown = null;
  try { await store.writeBlobTo(oid, Buffer.from(out), 0o644); } catch (e) { err = e; }
  assert.ok(err && (err as NodeJS.ErrnoException).code === 'EEXIST', String(err));
  // Adding it again (known oid) writes nothing new, with or without the oid given.
  assert.is(await store.writer().addFile(Buffer.from(src), size, oid), oid);
  const again = store.writer();
  assert.is(await again.addFile(Buffer.from(src), size), oid);
  assert.is(again.size, 0, 'a blob the store has is taken back out of the pack being written');
  again.flush();
  assert.is(packFiles(gitdir).length, 1);
  // A file that is not the size it was said to be (changed while read) is refused, and leaves nothing behind.
  const bad = store.writer();
  let refused: unknown = null;
  try { await bad.addFile(Buffer.from(src), size - 1); } catch (e) { refused = e; }
  assert.ok(refused instanceof ObjectError && /changed while it was read/.test((refused as Error).message), String(refused));
  bad.discard();
  assert.equal(fs.readdirSync(join(gitdir, 'objects', 'pack')).filter((n) => n.startsWith('tmp_')), []);
  // The same blob written loose by git streams out too.
  const loose = bareRepo();
  execFileSync('git', ['--git-dir', loose, 'hash-object', '-w', src], { env: GIT_ENV });
  const looseStore = new ObjectStore(loose);
  assert.is(looseStore.readSmallBlob(oid), null, 'a large loose blob is streamed, not read whole');
  const out2 = join(dir, 'out2.bin');
  await looseStore.writeBlobTo(oid, Buffer.from(out2), 0o644);
  assert.is(execFileSync('git', ['hash-object', out2], { env: GIT_ENV }).toString().trim(), oid);
  looseStore.close();
  fsck(gitdir);
  store.close();
});

test('a corrupt loose object is an ObjectError naming its oid', () => {
  const gitdir = bareRepo();
  const store = new ObjectStore(gitdir);
  const w = store.writer();
  const blob = w.add('blob', Buffer.from('some content that will be damaged\n'.repeat(20)));
  const tree = w.add('tree', encodeTree([{ name: 'f', mode: '100644', oid: blob }]));
  const good = w.add('blob', Buffer.from('fine\n'));
  w.flush();
  const flip = (oid: string, at: (n: number) => number) => {
    const p = join(gitdir, 'objects', oid.slice(0, 2), oid.slice(2));
    fs.chmodSync(p, 0o644);
    const b = fs.readFileSync(p);
    b[at(b.length)] ^= 0xff;
    fs.writeFileSync(p, b);
  };
  flip(blob, (n) => Math.floor(n / 2));
  const fresh = new ObjectStore(gitdir);
  assert.throws(() => fresh.read(blob), (e: unknown) => e instanceof ObjectError && e.message.includes(blob) && (e as ObjectError).data.oid === blob);
  // A tree whose content was replaced (valid zlib, wrong content): hash mismatch.
  const p = join(gitdir, 'objects', tree.slice(0, 2), tree.slice(2));
  const other = encodeTree([{ name: 'g', mode: '100644', oid: blob }]);
  fs.chmodSync(p, 0o644);
  fs.writeFileSync(p, zlibMod.deflateSync(Buffer.concat([Buffer.from(`tree ${other.length}\0`), other])));
  assert.throws(() => fresh.readTree(tree), (e: unknown) => e instanceof ObjectError && e.message.includes(tree) && /hash mismatch/.test(e.message));
  // A missing object.
  const missing = '0123456789012345678901234567890123456789';
  assert.throws(() => fresh.read(missing), (e: unknown) => e instanceof ObjectError && e.message.includes(missing) && /missing/.test(e.message));
  // Asking for the wrong type.
  assert.throws(() => fresh.readType(good, 'tree'), (e: unknown) => e instanceof ObjectError && e.message.includes(good) && /a blob, not a tree/.test(e.message));
  assert.is(fresh.readType(good, 'blob').toString(), 'fine\n');
  fresh.close();
  store.close();
});

test('a corrupt pack entry is an ObjectError naming the oid', () => {
  const gitdir = bareRepo();
  const store = new ObjectStore(gitdir);
  const w = store.writer();
  const objs = sampleObjects(40);
  for (const o of objs) w.add(o.type, o.data);
  w.flush();
  const pack = join(gitdir, 'objects', 'pack', packFiles(gitdir)[0]);
  const victim = hashObject(objs[20].type, objs[20].data);
  const line = execFileSync('git', ['show-index'], { input: fs.readFileSync(pack.replace(/\.pack$/, '.idx')) }).toString().split('\n').find((l) => l.includes(victim))!;
  const off = Number(line.split(' ')[0]);
  fs.chmodSync(pack, 0o644);
  const b = fs.readFileSync(pack);
  b[off + 6] ^= 0x55;
  fs.writeFileSync(pack, b);
  const fresh = new ObjectStore(gitdir);
  assert.throws(() => fresh.read(victim), (e: unknown) => e instanceof ObjectError && e.message.includes(victim));
  // The other entries still read.
  const ok = hashObject(objs[21].type, objs[21].data);
  assert.ok(fresh.read(ok).data.equals(objs[21].data));
  fresh.close();
  store.close();
});

test('parseTree reads what encodeTree writes, in byte order; rejects garbage', () => {
  const entries: TreeEntry[] = [
    { name: 'a', mode: '40000', oid: EMPTY_TREE },
    { name: 'a-b', mode: '100644', oid: EMPTY_BLOB },
    { name: 'a.b', mode: '100755', oid: EMPTY_BLOB },
    { name: 'a0', mode: '120000', oid: EMPTY_BLOB },
  ];
  const data = encodeTree(entries);
  const oid = hashObject('tree', data);
  assert.equal(parseTree(oid, data), [...entries].sort((x, y) => (x.name < y.name ? -1 : 1)));
  assert.throws(() => parseTree(oid, data.subarray(0, data.length - 3)), (e: unknown) => e instanceof ObjectError && e.message.includes(oid));
  assert.throws(() => parseTree(oid, Buffer.from('100645 x\0' + 'a'.repeat(20), 'latin1')), /bad mode/);
});

test.run();
