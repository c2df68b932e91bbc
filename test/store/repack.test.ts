// gc's repacking (store/repack.ts) on stores native git wrote, with git as the oracle: deltas git made (OFS_DELTA
// and REF_DELTA) are copied into the new pack with their bases moved, chains deeper than 50 are cut, objects
// both loose and packed go in once, an entry whose CRC does not match is read again and a corrupt one stops gc
// with the store untouched. After every gc: `git fsck --strict`, `git verify-pack`, and every reachable object
// with the content git read before.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import * as zlib from 'node:zlib';
import { GIT_ENV, fsck, git } from '../helpers/git.js';
import { Rng } from '../helpers/prng.js';
import { tmpdir } from '../helpers/tmp.js';
import { Store } from '../../src/store/store.js';
import { collectGarbage, type GcReport } from '../../src/store/gc.js';
import { DeltaIndex, applyDelta, encodeDelta } from '../../src/store/repack.js';
import { ObjectError } from '../../src/errors.js';

/** A repository with `versions` commits of a few text files that delta well against each other. */
function repo(versions: number): { work: string; gitdir: string; g: (args: string[], input?: string | Buffer) => string } {
  const work = join(tmpdir(), 'work');
  fs.mkdirSync(work);
  const g = (args: string[], input?: string | Buffer): string =>
    execFileSync('git', ['-C', work, ...args], { env: GIT_ENV, input, maxBuffer: 1 << 28 }).toString().replace(/\n$/, '');
  g(['init', '-q']);
  g(['config', 'gc.auto', '0']);
  const lines: string[] = [];
  for (let k = 0; k < 400; k++) lines.push(`line ${k}: the quick brown fox jumps over the lazy dog ${(k * 7919) % 1000}`);
  for (let v = 0; v < versions; v++) {
    lines[(v * 131) % lines.length] = `changed in version ${v}`;
    lines.push(`appended ${v}`);
    fs.writeFileSync(join(work, 'big.txt'), lines.join('\n'));
    fs.mkdirSync(join(work, 'dir', `sub${v % 3}`), { recursive: true });
    fs.writeFileSync(join(work, 'dir', `sub${v % 3}`, 'f.txt'), `version ${v}\n`.repeat(40 + v));
    g(['add', '-A']);
    g(['commit', '-q', '-m', `version ${v}`]);
  }
  return { work, gitdir: join(work, '.git'), g };
}

/** Every reachable object's type and content, as native git reads them. */
function reachableObjects(gitdir: string): Map<string, string> {
  const oids = git(gitdir, ['rev-list', '--objects', '--all', '--reflog']).split('\n').map((l) => l.slice(0, 40));
  const out = execFileSync('git', ['--git-dir', gitdir, 'cat-file', '--batch'], { env: GIT_ENV, input: oids.join('\n') + '\n', maxBuffer: 1 << 28 });
  const m = new Map<string, string>();
  let p = 0;
  while (p < out.length) {
    const nl = out.indexOf(0x0a, p);
    const [oid, type, size] = out.toString('latin1', p, nl).split(' ');
    m.set(oid, `${type} ${out.toString('hex', nl + 1, nl + 1 + Number(size))}`);
    p = nl + 1 + Number(size) + 1;
  }
  return m;
}

function packs(gitdir: string): string[] {
  return fs.readdirSync(join(gitdir, 'objects', 'pack')).filter((n) => n.endsWith('.pack')).map((n) => join(gitdir, 'objects', 'pack', n));
}

/** Entry type numbers of a pack (from `git show-index` offsets), counted. */
function entryTypes(pack: string): Record<number, number> {
  const lines = execFileSync('git', ['show-index'], { input: fs.readFileSync(pack.replace(/\.pack$/, '.idx')), env: GIT_ENV }).toString().trim().split('\n');
  const bytes = fs.readFileSync(pack);
  const counts: Record<number, number> = {};
  for (const l of lines) { const t = (bytes[Number(l.split(' ')[0])] >> 4) & 7; counts[t] = (counts[t] ?? 0) + 1; }
  return counts;
}

/** gc with --prune=now, then the oracle's checks; returns the report and `git verify-pack -v`'s output. */
function gcAndCheck(gitdir: string, want: Map<string, string>): { r: GcReport; verify: string } {
  const store = new Store(gitdir);
  const r = collectGarbage(store, { cutoff: Infinity });
  store.objects.close();
  fsck(gitdir);
  const ps = packs(gitdir);
  assert.is(ps.length, 1, 'one pack');
  const verify = git(gitdir, ['verify-pack', '-v', ps[0]]);
  assert.equal(fs.readdirSync(join(gitdir, 'objects')).filter((n) => /^[0-9a-f]{2}$/.test(n)), [], 'no loose objects left');
  const got = reachableObjects(gitdir);
  assert.is(got.size, want.size);
  for (const [oid, v] of want) assert.ok(got.get(oid) === v, `content of ${oid}`);
  assert.is(r.packed, want.size);
  return { r, verify };
}

function maxChain(verify: string): number {
  let max = 0;
  for (const m of verify.matchAll(/^chain length = (\d+):/gm)) max = Math.max(max, Number(m[1]));
  return max;
}

test("git's OFS_DELTA entries are copied, their bases moved; new loose objects are delta'd against them", () => {
  const { gitdir, g } = repo(30);
  g(['gc', '-q']);
  assert.ok((entryTypes(packs(gitdir)[0])[6] ?? 0) > 10, 'git made OFS_DELTA entries');
  // More versions, loose, on top of the packed ones.
  fs.appendFileSync(join(gitdir, '..', 'big.txt'), '\nlater\n');
  g(['commit', '-q', '-am', 'loose one']);
  const want = reachableObjects(gitdir);
  const { r, verify } = gcAndCheck(gitdir, want);
  assert.ok(r.reusedDeltas > 10, `reused ${r.reusedDeltas} deltas`);
  assert.ok(r.reusedWhole > 10, `reused ${r.reusedWhole} whole entries`);
  assert.ok(r.deltas > r.reusedDeltas, `the loose version became a delta too (${r.deltas} > ${r.reusedDeltas})`);
  assert.ok(maxChain(verify) >= 2, 'chains kept');
  assert.is(entryTypes(packs(gitdir)[0])[7] ?? 0, 0, 'no REF_DELTA');
  // A second gc copies everything it wrote (its own deltas included) and gives the same objects.
  const again = gcAndCheck(gitdir, want);
  assert.is(again.r.deltas, r.deltas);
  assert.is(again.r.reusedDeltas, r.deltas);
  assert.is(again.r.reusedWhole, r.packed - r.deltas);
});

test('REF_DELTA entries are copied as OFS_DELTA entries', () => {
  const { work, gitdir, g } = repo(20);
  const list = g(['rev-list', '--objects', '--all']);
  const packDir = join(gitdir, 'objects', 'pack');
  fs.mkdirSync(packDir, { recursive: true });
  // pack-objects without --delta-base-offset writes REF_DELTA entries.
  execFileSync('git', ['-C', work, 'pack-objects', '-q', '--window=20', '--depth=50', join(packDir, 'pack')], { env: GIT_ENV, input: list + '\n' });
  g(['prune-packed']);
  const types = entryTypes(packs(gitdir)[0]);
  assert.ok((types[7] ?? 0) > 10 && !types[6], `want REF_DELTA entries only: ${JSON.stringify(types)}`);
  const want = reachableObjects(gitdir);
  const { r } = gcAndCheck(gitdir, want);
  assert.ok(r.reusedDeltas >= (types[7] ?? 0) - 2, `reused ${r.reusedDeltas} of ${types[7]} REF_DELTA entries`);
  const after = entryTypes(packs(gitdir)[0]);
  assert.is(after[7] ?? 0, 0);
  assert.ok((after[6] ?? 0) >= r.reusedDeltas);
});

test('chains deeper than 50 are cut: deltas past the depth are written whole', () => {
  const { gitdir, g } = repo(90);
  g(['repack', '-adq', '--window=250', '--depth=250']);
  const deep = maxChain(git(gitdir, ['verify-pack', '-v', packs(gitdir)[0]]));
  assert.ok(deep > 50, `git made a chain of ${deep}`);
  const { verify } = gcAndCheck(gitdir, reachableObjects(gitdir));
  assert.ok(maxChain(verify) <= 50, `chains at most 50 (${maxChain(verify)})`);
});

test('objects both loose and packed go in once, from the pack', () => {
  const { gitdir, g } = repo(10);
  g(['gc', '-q']);
  // Loose copies of packed objects (as a writer that did not look in the packs leaves them), and loose-only ones.
  const some = git(gitdir, ['rev-list', '--objects', '--all']).split('\n').map((l) => l.slice(0, 40)).filter((_, i) => i % 3 === 0);
  for (const oid of some) {
    const type = git(gitdir, ['cat-file', '-t', oid]);
    const data = execFileSync('git', ['--git-dir', gitdir, 'cat-file', type, oid], { env: GIT_ENV, maxBuffer: 1 << 28 });
    const file = join(gitdir, 'objects', oid.slice(0, 2), oid.slice(2));
    fs.mkdirSync(join(gitdir, 'objects', oid.slice(0, 2)), { recursive: true });
    fs.writeFileSync(file, zlib.deflateSync(Buffer.concat([Buffer.from(`${type} ${data.length}\0`), data])));
  }
  fs.writeFileSync(join(gitdir, '..', 'new.txt'), 'loose only\n'.repeat(20));
  g(['add', 'new.txt']);
  g(['commit', '-q', '-m', 'loose only']);
  const want = reachableObjects(gitdir);
  const { r } = gcAndCheck(gitdir, want);
  assert.ok(r.looseRemoved >= some.length, `loose copies removed (${r.looseRemoved})`);
  assert.ok(r.reusedWhole + r.reusedDeltas >= some.length, 'the packed copies were the ones copied');
});

test('a CRC mismatch makes gc read the object again; a corrupt entry stops gc with the store as it was', () => {
  const { gitdir, g } = repo(12);
  g(['gc', '-q']);
  const want = reachableObjects(gitdir);
  const pack = packs(gitdir)[0];
  const idxFile = pack.replace(/\.pack$/, '.idx');
  // Change the CRC the index holds for one whole blob (entries 0..n: the CRC table follows the ids).
  const idx = fs.readFileSync(idxFile);
  const n = idx.readUInt32BE(8 + 255 * 4);
  const blob = git(gitdir, ['rev-parse', 'HEAD:dir/sub0/f.txt']);
  let k = 0;
  while (idx.toString('hex', 1032 + k * 20, 1052 + k * 20) !== blob) k++;
  fs.chmodSync(idxFile, 0o644);
  idx.writeUInt32BE((idx.readUInt32BE(1032 + n * 20 + k * 4) ^ 1) >>> 0, 1032 + n * 20 + k * 4);
  fs.writeFileSync(idxFile, idx);
  const { r } = gcAndCheck(gitdir, want);
  assert.ok(r.packed === want.size);

  // Now damage an entry's compressed bytes: gc fails naming it, and leaves the old pack and nothing else.
  const pack2 = packs(gitdir)[0];
  const lines = execFileSync('git', ['show-index'], { input: fs.readFileSync(pack2.replace(/\.pack$/, '.idx')), env: GIT_ENV }).toString().trim().split('\n');
  const line = lines.find((l) => l.split(' ')[1] === blob)!;
  const off = Number(line.split(' ')[0]);
  const bytes = fs.readFileSync(pack2);
  bytes[off + 8] ^= 0xff;
  fs.chmodSync(pack2, 0o644);
  fs.writeFileSync(pack2, bytes);
  const before = fs.readdirSync(join(gitdir, 'objects', 'pack')).sort();
  const store = new Store(gitdir);
  assert.throws(() => collectGarbage(store, { cutoff: Infinity }), (e: unknown) => e instanceof ObjectError && String(e.message).includes(blob));
  store.objects.close();
  assert.equal(fs.readdirSync(join(gitdir, 'objects', 'pack')).sort(), before, 'no new pack, no temporary file');
});

test('young unreachable objects only in a pack are kept loose with their age; old ones go', () => {
  const { gitdir, g } = repo(8);
  const top = git(gitdir, ['rev-parse', 'HEAD']);
  g(['reset', '-q', '--hard', 'HEAD~2']);
  fs.rmSync(join(gitdir, 'logs'), { recursive: true });
  // Everything in one pack, the two dropped commits included.
  const every = git(gitdir, ['cat-file', '--batch-all-objects', '--batch-check=%(objectname)']);
  fs.mkdirSync(join(gitdir, 'objects', 'pack'), { recursive: true });
  git(gitdir, ['pack-objects', '-q', join(gitdir, 'objects', 'pack', 'pack')], every + '\n');
  g(['prune-packed']);
  assert.ok(git(gitdir, ['count-objects', '-v']).includes('count: 0'), 'all packed');
  const packAge = fs.statSync(packs(gitdir)[0]).mtimeMs;
  const want = reachableObjects(gitdir);
  let store = new Store(gitdir);
  let r = collectGarbage(store, { cutoff: packAge - 1000 });
  store.objects.close();
  fsck(gitdir);
  assert.ok(r.keptUnreachable >= 2, `kept ${r.keptUnreachable}`);
  assert.is(git(gitdir, ['cat-file', '-t', top]), 'commit', 'the dropped top survives the removal of its pack');
  const file = join(gitdir, 'objects', top.slice(0, 2), top.slice(2));
  assert.ok(Math.abs(fs.statSync(file).mtimeMs - packAge) < 2000, 'loose, with the age of the pack it came from');
  // Once old enough, they go.
  store = new Store(gitdir);
  r = collectGarbage(store, { cutoff: Infinity });
  store.objects.close();
  assert.ok(r.pruned >= 2, `pruned ${r.pruned}`);
  assert.is(spawnStatus(gitdir, ['cat-file', '-e', top]), 1);
  gcAndCheck(gitdir, want);
});

function spawnStatus(gitdir: string, args: string[]): number {
  try { git(gitdir, args); return 0; } catch (e) { return (e as { status: number }).status; }
}

test('large entries (over 4 MiB) are copied in pieces, and delta search still covers them', () => {
  const { work, gitdir, g } = repo(2);
  const rng = new Rng(5);
  const big = rng.bytes(5 << 20);
  fs.writeFileSync(join(work, 'big.bin'), big);
  g(['add', 'big.bin']);
  g(['commit', '-q', '-m', 'big']);
  big[12345] ^= 1;
  fs.writeFileSync(join(work, 'big.bin'), big);
  g(['commit', '-q', '-am', 'big, one byte changed']);
  const want = reachableObjects(gitdir);
  // Loose: both versions deflated again, one a delta of the other.
  let { r } = gcAndCheck(gitdir, want);
  assert.ok(r.deltas >= 1 && r.packBytes < (6 << 20), `one version is a delta (${r.packBytes} bytes)`);
  // Packed by glayer: the whole one (over 4 MiB) copied in pieces, the delta copied.
  ({ r } = gcAndCheck(gitdir, want));
  assert.is(r.reusedWhole + r.reusedDeltas, r.packed);
});

test('delta encoder: round trips, sampled rejection keeps the deltas worth having', () => {
  const rng = new Rng(11);
  let made = 0;
  for (let k = 0; k < 300; k++) {
    const base = rng.bytes(rng.int(16, 20000));
    // A target that copies `share` of the base in runs, the rest new bytes.
    const share = rng.int(0, 100) / 100;
    const parts: Buffer[] = [];
    let copied = 0, fresh = 0;
    while (copied + fresh < base.length) {
      if (rng.int(0, 99) < share * 100) { const at = rng.int(0, base.length - 1); const n = Math.min(rng.int(32, 400), base.length - at); parts.push(base.subarray(at, at + n)); copied += n; }
      else { const n = rng.int(16, 400); parts.push(rng.bytes(n)); fresh += n; }
    }
    const target = Buffer.concat(parts);
    const d = encodeDelta(base, target);
    const full = new DeltaIndex(base).encode(target, Infinity)!;
    assert.ok(applyDelta(base, full).equals(target), `case ${k}: the unbounded delta round-trips`);
    if (d) { made++; assert.ok(applyDelta(base, d).equals(target), `case ${k}`); assert.ok(d.length <= target.length / 2); }
    // Whatever the sampling rejects would not have been a delta of at most half the target (or barely).
    if (!d && target.length >= 1024) assert.ok(full.length > target.length * 0.4, `case ${k}: rejected a delta of ${full.length} for ${target.length} bytes`);
  }
  assert.ok(made > 50, `${made} deltas`);
});

test.run();
