// The size-only object read (ObjectStore.sizeOf) against `git cat-file -s`: loose objects, whole pack entries
// and ofs and ref deltas made by `git gc` / `git repack -adf`, of sizes from 0 to over 1 MiB (over 64 KiB
// included, whole and as delta results). That it reads only headers is checked by corrupting every pack entry
// past its first bytes: a full read then fails, the size still comes out right.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { ObjectStore } from '../../src/store/objects.js';
import { GIT_ENV } from '../helpers/git.js';
import { Rng, testSeed } from '../helpers/prng.js';
import { tmpdir } from '../helpers/tmp.js';

const seed = testSeed();
const rng = new Rng(seed);
const note = (msg: string): string => `${msg} (seed ${seed}: GLAYER_TEST_SEED=${seed} to replay)`;

const gitc = (gitdir: string, args: string[], input?: string): string =>
  execFileSync('git', ['--git-dir', gitdir, ...args], { env: GIT_ENV, input, maxBuffer: 1 << 30 }).toString();

const WORDS = 'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau'.split(' ');

/** `size` bytes of text (deflates well) or random bytes (stored). */
function content(size: number, random: boolean): Buffer {
  const b = Buffer.allocUnsafe(size);
  if (random) { for (let i = 0; i < size; i++) b[i] = Math.floor(rng.next() * 256); return b; }
  let p = 0;
  while (p < size) p += b.write(WORDS[rng.int(0, WORDS.length - 1)] + (rng.int(0, 9) === 0 ? '\n' : ' '), p);
  return b;
}

/** A work tree with single blobs of many sizes and families of versions (which git deltifies); returns its git dir. */
function repo(): { work: string; gitdir: string; commit: () => void } {
  const work = tmpdir();
  execFileSync('git', ['init', '-q', work], { env: GIT_ENV });
  const gitdir = join(work, '.git');
  gitc(gitdir, ['config', 'gc.auto', '0']);
  let n = 0;
  const commit = (): void => {
    execFileSync('git', ['-C', work, 'add', '-A'], { env: GIT_ENV });
    execFileSync('git', ['-C', work, 'commit', '-q', '-m', `c${n++}`], { env: GIT_ENV });
  };
  const sizes = [0, 1, 2, 15, 16, 17, 127, 128, 4095, 4096, 65_535, 65_536, 65_537, 70_000, 200_000, (1 << 20) + 3];
  sizes.forEach((s, k) => fs.writeFileSync(join(work, `one${k}`), content(s, k % 2 === 1)));
  // Versions of each family file, one commit each: small edits of a text, so git stores most as deltas.
  const families = [300, 5_000, 66_000, 150_000, 700_000].map((s) => content(s, false));
  for (let v = 0; v < 6; v++) {
    families.forEach((f, k) => {
      const at = rng.int(0, f.length);
      // Small cuts only: a cut to a random point could shrink a family under 64 KiB, and the checks below need
      // deltas whose results are over it (CI drew such a seed).
      const cut = Math.min(f.length, at + rng.int(0, 200));
      families[k] = Buffer.concat([f.subarray(0, at), Buffer.from(`edit ${v}.${k} `.repeat(rng.int(1, 40))), f.subarray(cut)]);
      fs.writeFileSync(join(work, `fam${k}`), families[k]);
    });
    commit();
  }
  return { work, gitdir, commit };
}

/** Every object's size as git reads it (`git cat-file -s`, in one batch). */
function nativeSizes(gitdir: string): Map<string, number> {
  const out = gitc(gitdir, ['cat-file', '--batch-all-objects', '--batch-check=%(objectname) %(objecttype) %(objectsize)']);
  const m = new Map<string, number>();
  for (const line of out.trim().split('\n')) { const [oid, , size] = line.split(' '); m.set(oid, Number(size)); }
  return m;
}

function checkSizes(gitdir: string, label: string): Map<string, number> {
  const want = nativeSizes(gitdir);
  assert.ok(want.size > 40, `${label}: ${want.size} objects`);
  const store = new ObjectStore(gitdir);
  for (const [oid, size] of want) assert.is(store.sizeOf(oid), size, note(`${label}: size of ${oid}`));
  // Spot checks with the plain `git cat-file -s`.
  for (const oid of [...want.keys()].slice(0, 5)) assert.is(store.sizeOf(oid), Number(gitc(gitdir, ['cat-file', '-s', oid]).trim()));
  store.close();
  return want;
}

interface Entry { oid: string; type: string; size: number; offset: number; end: number; kind: number }

/** The entries of the one pack, from `git verify-pack -v`, each with its pack entry type number (6 ofs, 7 ref delta). */
function packEntries(gitdir: string): { pack: string; entries: Entry[] } {
  const dir = join(gitdir, 'objects', 'pack');
  const idx = fs.readdirSync(dir).filter((f) => f.endsWith('.idx'));
  assert.is(idx.length, 1, 'one pack');
  const pack = join(dir, idx[0].replace(/\.idx$/, '.pack'));
  const data = fs.readFileSync(pack);
  const entries: Entry[] = [];
  for (const line of gitc(gitdir, ['verify-pack', '-v', join(dir, idx[0])]).split('\n')) {
    const m = /^([0-9a-f]{40}) (\w+) +(\d+) (\d+) (\d+)/.exec(line);
    if (!m) continue;
    const offset = Number(m[5]);
    entries.push({ oid: m[1], type: m[2], size: Number(m[3]), offset, end: offset + Number(m[4]), kind: (data[offset] >> 4) & 7 });
  }
  return { pack, entries };
}

/**
 * Overwrite every pack entry past its first 600 bytes with garbage: whatever must be inflated whole (a large
 * object, a delta's base) no longer can be, while every entry's header and first compressed bytes stay.
 */
function corruptTails(pack: string, entries: Entry[]): Entry[] {
  const data = fs.readFileSync(pack);
  const hit: Entry[] = [];
  for (const e of entries) {
    if (e.end - e.offset <= 700) continue;
    for (let p = e.offset + 600; p < e.end - 8; p++) data[p] = (p * 131) & 0xff;
    hit.push(e);
  }
  fs.writeFileSync(pack, data);
  return hit;
}

function check(label: string, ofs: boolean): void {
  const { gitdir } = repo();
  // Loose: every object as git wrote it.
  assert.is(fs.existsSync(join(gitdir, 'objects', 'pack')) ? fs.readdirSync(join(gitdir, 'objects', 'pack')).length : 0, 0, 'all loose');
  const want = checkSizes(gitdir, 'loose');
  // Packed, with deep delta chains: ofs deltas (git's default), or ref deltas (repack.useDeltaBaseOffset off).
  if (ofs) gitc(gitdir, ['gc', '-q', '--aggressive']);
  else gitc(gitdir, ['-c', 'repack.useDeltaBaseOffset=false', 'repack', '-adf', '-q', '--depth=50', '--window=50']);
  gitc(gitdir, ['prune-packed']);
  const { pack, entries } = packEntries(gitdir);
  const deltas = entries.filter((e) => e.kind === (ofs ? 6 : 7));
  assert.is(entries.filter((e) => e.kind === (ofs ? 7 : 6)).length, 0, `${label}: only ${ofs ? 'ofs' : 'ref'} deltas`);
  assert.ok(deltas.filter((e) => e.type === 'blob').length >= 15, note(`${label}: ${deltas.length} deltified objects`));
  assert.ok(deltas.some((e) => e.type === 'blob' && (want.get(e.oid) ?? 0) > 65_536), note(`${label}: a delta whose result is over 64 KiB`));
  assert.ok(entries.some((e) => e.kind === 3 && e.size > 1 << 20), `${label}: a whole blob over 1 MiB`);
  assert.equal(checkSizes(gitdir, label), want, `${label}: the same objects and sizes as loose`);
  // Only headers are read: with the entries' tails destroyed, full reads fail and sizes do not change.
  const hit = corruptTails(pack, entries);
  const store = new ObjectStore(gitdir);
  const broken = (e: Entry): boolean => { try { store.read(e.oid); return false; } catch { return true; } };
  assert.ok(hit.some((e) => e.kind === 3 && (want.get(e.oid) ?? 0) > 65_536 && broken(e)), `${label}: a large whole blob no longer reads`);
  const brokenDeltas = deltas.filter((e) => e.type === 'blob' && broken(e));
  assert.ok(brokenDeltas.length >= 5, `${label}: ${brokenDeltas.length} deltified blobs no longer read`);
  for (const e of entries) assert.is(store.sizeOf(e.oid), want.get(e.oid), note(`${label}: size of ${e.type} ${e.oid} (entry type ${e.kind}) from its header`));
  store.close();
}

test('sizeOf equals git cat-file -s: loose, then packed by git gc (ofs deltas); only headers are read', () => check('git gc', true));

test('sizeOf equals git cat-file -s: loose, then packed by git repack -adf with ref deltas; only headers are read', () => check('ref deltas', false));

/** A zlib stream of `data` that starts with `empty` empty stored blocks: valid, and its first bytes inflate to nothing. */
function paddedZlib(data: Buffer, empty: number): Buffer {
  const parts: Buffer[] = [Buffer.from([0x78, 0x01])];
  for (let k = 0; k < empty; k++) parts.push(Buffer.from([0x00, 0x00, 0x00, 0xff, 0xff]));
  for (let p = 0; p < data.length || p === 0; p += 65_535) {
    const piece = data.subarray(p, p + 65_535);
    const last = p + 65_535 >= data.length ? 1 : 0;
    const h = Buffer.alloc(5);
    h[0] = last; h.writeUInt16LE(piece.length, 1); h.writeUInt16LE(~piece.length & 0xffff, 3);
    parts.push(h, piece);
  }
  let a = 1, b = 0;
  for (const c of data) { a = (a + c) % 65521; b = (b + a) % 65521; }
  const sum = Buffer.alloc(4);
  sum.writeUInt32BE(((b << 16) | a) >>> 0);
  parts.push(sum);
  return Buffer.concat(parts);
}

const varint = (n: number): number[] => { const out: number[] = []; do { let c = n & 0x7f; n = Math.floor(n / 128); if (n) c |= 0x80; out.push(c); } while (n); return out; };

function entryHeader(type: number, size: number): Buffer {
  const out = [(type << 4) | (size & 15)];
  let n = Math.floor(size / 16);
  if (n) out[0] |= 0x80;
  while (n) { let c = n & 0x7f; n = Math.floor(n / 128); if (n) c |= 0x80; out.push(c); }
  return Buffer.from(out);
}

test('sizeOf when the first compressed bytes hold no header: a loose object and a pack delta (zlib streams that start with empty blocks)', () => {
  const { gitdir } = repo();
  // Loose: a blob of 100,000 bytes whose stream starts with 300 empty blocks (1,500 bytes before its header).
  const data = content(100_000, true);
  const loose = paddedZlib(Buffer.concat([Buffer.from(`blob ${data.length}\0`), data]), 300);
  const blobOid = execFileSync('git', ['--git-dir', gitdir, 'hash-object', '--stdin'], { env: GIT_ENV, input: data }).toString().trim();
  const file = join(gitdir, 'objects', blobOid.slice(0, 2), blobOid.slice(2));
  fs.mkdirSync(join(file, '..'), { recursive: true });
  fs.writeFileSync(file, loose);
  assert.is(gitc(gitdir, ['cat-file', '-s', blobOid]).trim(), '100000', 'git reads the padded loose object');
  const store = new ObjectStore(gitdir);
  assert.is(store.sizeOf(blobOid), 100_000);
  assert.ok(store.read(blobOid).data.equals(data));
  store.close();
  // A pack of a base blob and an ofs delta on it whose compressed data starts with 100 empty blocks.
  const bare = join(tmpdir(), 'hand.git');
  execFileSync('git', ['init', '-q', '--bare', bare], { env: GIT_ENV });
  const base = Buffer.from('the base of the delta\n');
  const result = content(70_000, false);
  const ops: Buffer[] = [];
  for (let p = 0; p < result.length; p += 127) { const piece = result.subarray(p, p + 127); ops.push(Buffer.from([piece.length]), piece); }
  const delta = Buffer.concat([Buffer.from([...varint(base.length), ...varint(result.length)]), ...ops]);
  const header = Buffer.alloc(12);
  header.write('PACK', 0); header.writeUInt32BE(2, 4); header.writeUInt32BE(2, 8);
  const e1 = Buffer.concat([entryHeader(3, base.length), paddedZlib(base, 0)]);
  const ofs = e1.length; // distance back from the delta entry to its base
  const e2 = Buffer.concat([entryHeader(6, delta.length), Buffer.from(ofsVarint(ofs)), paddedZlib(delta, 100)]);
  const body = Buffer.concat([header, e1, e2]);
  const sha = execFileSync('sha1sum', { input: body }).toString().slice(0, 40);
  const packFile = join(bare, 'objects', 'pack', 'pack-hand.pack');
  fs.writeFileSync(packFile, Buffer.concat([body, Buffer.from(sha, 'hex')]));
  execFileSync('git', ['--git-dir', bare, 'index-pack', packFile], { env: GIT_ENV });
  const resultOid = execFileSync('git', ['--git-dir', bare, 'hash-object', '--stdin'], { env: GIT_ENV, input: result }).toString().trim();
  const vp = gitc(bare, ['verify-pack', '-v', packFile.replace(/pack$/, 'idx')]);
  assert.match(vp, new RegExp(`^${resultOid} blob +\\d+ \\d+ \\d+ 1 [0-9a-f]{40}$`, 'm'), `git sees a delta: ${vp}`);
  assert.is(gitc(bare, ['cat-file', '-s', resultOid]).trim(), '70000');
  const hs = new ObjectStore(bare);
  assert.is(hs.sizeOf(resultOid), 70_000);
  assert.ok(hs.read(resultOid).data.equals(result));
  hs.close();
});

/** The offset encoding of an ofs delta's base distance. */
function ofsVarint(n: number): number[] {
  const out = [n & 0x7f];
  n = Math.floor(n / 128);
  while (n) { n--; out.unshift(0x80 | (n & 0x7f)); n = Math.floor(n / 128); }
  return out;
}

test.run();
