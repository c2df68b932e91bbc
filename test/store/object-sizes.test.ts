// Objects of every size, both ways, with native git as the oracle. Sizes: a band around each power of two from
// 2^0 to 2^17, every size from 32,500 to 32,770 (where a zlib window of 2^16 was once asked for), the edges of
// the piecewise deflate (256 KiB, 1 MiB pieces, 65,535-byte stored blocks) and seeded random sizes. Contents:
// random bytes (stored), text (deflated) and both in one object. glayer writes them loose and packed and git
// reads them back (cat-file, fsck --strict); git writes them loose and packed with deep delta chains and
// glayer reads them back byte for byte.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import * as zlib from 'node:zlib';
import { ObjectStore, ZlibFramer, hashObject } from '../../src/store/objects.js';
import { GIT_ENV, fsck } from '../helpers/git.js';
import { Rng, testSeed } from '../helpers/prng.js';
import { tmpdir } from '../helpers/tmp.js';

const seed = testSeed();
const rng = new Rng(seed);
const note = (msg: string): string => `${msg} (seed ${seed}: GLAYER_TEST_SEED=${seed} to replay)`;

function sizes(): number[] {
  const s = new Set<number>();
  for (let e = 0; e <= 17; e++) for (let d = -3; d <= 3; d++) if (2 ** e + d >= 0) s.add(2 ** e + d);
  for (let n = 32_500; n <= 32_770; n++) s.add(n);
  for (const n of [65_534, 65_535, 65_536, 3 * 65_535, 3 * 65_535 + 1, 256 * 1024 - 1, 256 * 1024, 256 * 1024 + 1]) s.add(n);
  for (let k = 0; k < 24; k++) s.add(rng.int(0, 1 << 18));
  return [...s].sort((a, b) => a - b);
}

const TEXT = Buffer.from('the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs\n'.repeat(4096));

/** Content of `size` bytes: random, text, or text with a random middle, by `kind`. */
function content(size: number, kind: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  const off = rng.int(0, 1000);
  TEXT.copy(b, 0, off, off + size);
  for (let p = TEXT.length - off; p < size; p += TEXT.length) TEXT.copy(b, p, 0, Math.min(TEXT.length, size - p));
  if (kind === 0) for (let i = 0; i < size; i++) b[i] = Math.floor(rng.next() * 256);
  if (kind === 2) for (let i = size >> 2; i < size - (size >> 2); i++) b[i] = Math.floor(rng.next() * 256);
  if (size > 0) b[0] = size & 0xff; // distinct objects for distinct sizes
  return b;
}

function bareRepo(): string {
  const d = join(tmpdir(), 'sizes.git');
  execFileSync('git', ['init', '-q', '--bare', d], { env: GIT_ENV });
  return d;
}

/** Every object as native git reads it: oid -> content. */
function nativeBlobs(gitdir: string, oids: string[]): Map<string, Buffer> {
  const out = execFileSync('git', ['--git-dir', gitdir, 'cat-file', '--batch'], { env: GIT_ENV, input: oids.join('\n') + '\n', maxBuffer: 1 << 30 });
  const m = new Map<string, Buffer>();
  let p = 0;
  while (p < out.length) {
    const nl = out.indexOf(0x0a, p);
    const [oid, type, size] = out.toString('latin1', p, nl).split(' ');
    assert.is(type, 'blob', `git reads ${oid} as a ${type}`);
    m.set(oid, out.subarray(nl + 1, nl + 1 + Number(size)));
    p = nl + 1 + Number(size) + 1;
  }
  return m;
}

function checkNative(gitdir: string, objs: Buffer[], label: string): void {
  const oids = objs.map((d) => hashObject('blob', d));
  const native = nativeBlobs(gitdir, oids);
  objs.forEach((d, k) => {
    const n = native.get(oids[k]);
    assert.ok(n && n.equals(d), note(`${label}: git reads back the blob of ${d.length} bytes`));
  });
  fsck(gitdir);
}

async function checkGlayer(gitdir: string, objs: Buffer[], label: string): Promise<void> {
  const store = new ObjectStore(gitdir);
  const out = tmpdir();
  let k = 0;
  for (const d of objs) {
    const oid = hashObject('blob', d);
    assert.is(store.sizeOf(oid), d.length, note(`${label}: size of the blob of ${d.length} bytes`));
    const small = store.readSmallBlob(oid);
    if (small) assert.ok(small.equals(d), note(`${label}: glayer reads back the blob of ${d.length} bytes`));
    else {
      // Large and stored whole: streamed to a file.
      const f = join(out, `b${k++}`);
      await store.writeBlobTo(oid, Buffer.from(f), 0o644);
      assert.ok(fs.readFileSync(f).equals(d), note(`${label}: glayer streams back the blob of ${d.length} bytes`));
    }
  }
  store.close();
}

test('glayer writes objects of every size, loose and packed, and git reads them back', async () => {
  const objs = sizes().map((n, k) => content(n, k % 3));
  // Loose: batches under the pack threshold (fewer than 32 objects, and under the 4 MiB a batch keeps in memory).
  const loose = bareRepo();
  const ls = new ObjectStore(loose);
  let w = ls.writer();
  let bytes = 0;
  for (const d of objs) {
    if (w.size === 31 || bytes + d.length > 3 << 20) { w.flush(); w = ls.writer(); bytes = 0; }
    w.add('blob', d);
    bytes += d.length;
  }
  w.flush();
  ls.close();
  assert.is(fs.existsSync(join(loose, 'objects', 'pack')) ? fs.readdirSync(join(loose, 'objects', 'pack')).length : 0, 0, 'all loose');
  checkNative(loose, objs, 'loose');
  await checkGlayer(loose, objs, 'loose');
  // Packed: one batch, once with the count known in advance and once without (header fixed at the end).
  for (const expected of [objs.length, 0]) {
    const packed = bareRepo();
    const ps = new ObjectStore(packed);
    const w = ps.writer(expected);
    for (const d of objs) w.add('blob', d);
    w.add('blob', objs[7]); // a duplicate is written once
    assert.is(w.size, objs.length);
    w.flush();
    ps.close();
    const idx = fs.readdirSync(join(packed, 'objects', 'pack')).filter((n) => n.endsWith('.idx'));
    assert.is(idx.length, 1);
    assert.match(execFileSync('git', ['--git-dir', packed, 'verify-pack', '-v', join(packed, 'objects', 'pack', idx[0])], { env: GIT_ENV }).toString(), /: ok\n?$/);
    checkNative(packed, objs, `packed (expected ${expected})`);
    await checkGlayer(packed, objs, `packed (expected ${expected})`);
  }
});

test('git writes objects of every size, loose and as deep delta chains, and glayer reads them back', async () => {
  const work = tmpdir();
  const gitdir = join(work, '.git');
  execFileSync('git', ['init', '-q', work], { env: GIT_ENV });
  // Families of similar blobs (a base and small edits of it) around each power of two: git deltifies them.
  const objs: Buffer[] = [];
  for (let e = 6; e <= 17; e++) {
    const base = content(2 ** e + rng.int(-3, 3), 1);
    let v = base;
    for (let k = 0; k < 6; k++) {
      v = Buffer.concat([v.subarray(0, rng.int(0, v.length)), Buffer.from(`edit ${e}.${k}\n`), v.subarray(rng.int(0, v.length))]);
      objs.push(v);
    }
    objs.push(base);
  }
  for (const n of [0, 1, 2, 3, 32_507, 32_767, 32_768, (1 << 20) + 3]) objs.push(content(n, n % 2));
  const list = join(work, 'list');
  fs.writeFileSync(list, objs.map((_, k) => join(work, `f${k}`)).join('\n') + '\n');
  objs.forEach((d, k) => fs.writeFileSync(join(work, `f${k}`), d));
  execFileSync('git', ['--git-dir', gitdir, 'hash-object', '-w', '--stdin-paths'], { env: GIT_ENV, input: fs.readFileSync(list) });
  await checkGlayer(gitdir, objs, 'git loose');
  // Reachable from a commit, then packed with deep delta chains.
  execFileSync('git', ['-C', work, 'add', '-A'], { env: GIT_ENV });
  execFileSync('git', ['-C', work, 'commit', '-q', '-m', 'sizes'], { env: GIT_ENV });
  execFileSync('git', ['-C', work, 'repack', '-adf', '-q', '--depth=50', '--window=50'], { env: GIT_ENV });
  const packDir = join(gitdir, 'objects', 'pack');
  const idx = fs.readdirSync(packDir).filter((n) => n.endsWith('.idx'))[0];
  const vp = execFileSync('git', ['verify-pack', '-v', join(packDir, idx)], { env: GIT_ENV }).toString();
  const deltas = vp.split('\n').filter((l) => /^[0-9a-f]{40} blob +\d+ \d+ \d+ \d+ [0-9a-f]{40}$/.test(l)).length;
  assert.ok(deltas >= 30, `git made ${deltas} deltified blobs`);
  await checkGlayer(gitdir, objs, 'git repack -adf --depth=50');
});

test('ZlibFramer writes standard zlib streams (stored and deflated pieces) that zlib and git inflate', () => {
  for (const [size, kind] of [[0, 1], [1, 0], [65_535, 0], [65_536, 0], [(1 << 20) - 1, 2], [(1 << 20) + 1, 0], [(2 << 20) + 77, 2], [(1 << 20) * 3, 1]]) {
    const d = content(size, kind);
    const parts: Buffer[] = [];
    const z = new ZlibFramer((b) => parts.push(Buffer.from(b)));
    // Written in uneven slices, as a file is read (each slice may end a stored block early: 5 bytes each).
    let writes = 0;
    for (let p = 0; p < d.length; writes++) { const n = Math.min(d.length - p, rng.int(1, 700_000)); z.write(d.subarray(p, p + n)); p += n; }
    z.end();
    const stream = Buffer.concat(parts);
    assert.ok(zlib.inflateSync(stream).equals(d), note(`inflate of ${size} bytes (kind ${kind})`));
    if (kind === 0) assert.ok(stream.length <= size + 5 * (Math.ceil(size / 65_535) + writes) + 16, `random data is stored, not expanded (${stream.length} for ${size})`);
    if (kind === 1 && size > 0) assert.ok(stream.length < size / 4, `text is deflated (${stream.length} for ${size})`);
  }
});

test.run();
