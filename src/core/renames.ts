/**
 * Rename and copy detection, as git's diffcore-rename does it, so that `glayer diff` pairs the same files with
 * the same similarity index as `git diff -M` / `-C` for the same trees. Pure: blobs come through a callback.
 *
 * - Similarity (diffcore-delta.c): each blob is cut into chunks that end at a '\n' or after 64 bytes (a CR
 *   before LF is skipped in text; an unterminated tail shorter than 64 bytes is dropped), each chunk hashed;
 *   the bytes of the destination's chunks found in the source (per hash, the smaller count) are the copied
 *   bytes; score = copied * 60000 / max(size), on git's scale (MAX_SCORE 60000; the index printed is
 *   score * 100 / 60000, floored). Pairs whose sizes differ by more than the threshold allows are not
 *   compared, and only regular files are compared inexactly.
 * - Matching (diffcore-rename.c): exact renames first (same blob; an unused source and one with the same
 *   basename preferred); then, for renames only, sources and destinations whose basename is unique on both
 *   sides, when they are at least halfway between the threshold and 100% similar; then a matrix keeping the
 *   best 4 sources per destination, all candidates sorted by score (then same basename), taken greedily; with
 *   copies, a second pass lets a source be used again. Sources are the deleted files, and with copies also the
 *   modified ones (their old content). Too many candidates (more than `limit`^2 pairs) skip the inexact steps.
 * - Status: a modified source's every use is a copy; a deleted source used k times gives k-1 copies and, at
 *   its last destination in output order, one rename.
 */

export const MAX_SCORE = 60000;
const HASHBASE = 107927;

export interface RenameFile {
  /** Byte-string path. */
  path: string;
  oid: string;
  /** Regular file (100644/100755); others only match exactly. */
  regular: boolean;
}

export interface RenameOptions {
  /** Minimum score for a rename (git's -M, default 50%: 30000). */
  renameScore?: number;
  /** Detect copies too (git's -C), with this minimum score (default: renameScore). */
  copies?: boolean;
  copyScore?: number;
  /** diff.renameLimit (default 1000). */
  limit?: number;
}

export interface RenamePair { src: number; dst: number; score: number; status: 'R' | 'C' }

export interface BlobAccess {
  read(oid: string): Buffer;
  size(oid: string): number;
}

type Span = Map<number, number>;

/** diffcore-delta's hash of a blob: chunk hash -> bytes. */
export function spanHash(buf: Buffer, isText: boolean): Span {
  const out: Span = new Map();
  let n = 0;
  let a1 = 0;
  let a2 = 0;
  const sz = buf.length;
  const add = (): void => {
    const h = ((a1 >>> 0) + Math.imul(a2 >>> 0, 0x61) >>> 0) % HASHBASE;
    out.set(h, (out.get(h) ?? 0) + n);
  };
  for (let i = 0; i < sz; i++) {
    const c = buf[i];
    if (isText && c === 13 && i + 1 < sz && buf[i + 1] === 10) continue;
    const old1 = a1;
    a1 = ((a1 << 7) ^ (a2 >>> 25)) >>> 0;
    a2 = ((a2 << 7) ^ (old1 >>> 25)) >>> 0;
    a1 = (a1 + c) >>> 0;
    if (++n < 64 && c !== 10) continue;
    add();
    n = 0; a1 = 0; a2 = 0;
  }
  // A last chunk with neither a newline nor 64 bytes is not hashed: git's hash_chars drops it, so a file's
  // unterminated tail never counts as copied (git 2.39 scores 'x\ny\ntail' -> 'X\ny\ntail' by 'y\n' alone).
  return out;
}

/** Bytes of `dst` found in `src` (diffcore_count_changes' src_copied). */
export function copiedBytes(src: Span, dst: Span): number {
  let sc = 0;
  for (const [h, s] of src) {
    const d = dst.get(h);
    if (d !== undefined) sc += Math.min(s, d);
  }
  return sc;
}

/** git's basename_same: the two paths end with the same final component. */
export function basenameSame(a: string, b: string): boolean {
  return basename(a) === basename(b);
}

function basename(p: string): string {
  const k = p.lastIndexOf('/');
  return k < 0 ? p : p.slice(k + 1);
}

const isBinary = (b: Buffer): boolean => b.subarray(0, 8000).includes(0);

/**
 * Pair destinations (added files) with sources (deleted files, then with copies modified files' old sides).
 * `deleted[i]` says whether source i is deleted (a rename candidate) or modified (copy source only).
 */
export function detectRenames(sources: readonly RenameFile[], deleted: readonly boolean[], dests: readonly RenameFile[], blobs: BlobAccess, opts: RenameOptions = {}): RenamePair[] {
  const copies = opts.copies === true;
  const minimum = copies ? (opts.copyScore ?? opts.renameScore ?? MAX_SCORE / 2) : (opts.renameScore ?? MAX_SCORE / 2);
  const limit = opts.limit ?? 1000;
  const used = sources.map((_, i) => (copies && !deleted[i] ? 1 : 0));
  const dstPair = new Array<{ src: number; score: number } | null>(dests.length).fill(null);
  const record = (d: number, s: number, score: number): void => { dstPair[d] = { src: s, score }; used[s]++; };

  const spans = new Map<string, Span>();
  const span = (oid: string): Span => {
    let s = spans.get(oid);
    if (!s) { const b = blobs.read(oid); s = spanHash(b, !isBinary(b)); spans.set(oid, s); }
    return s;
  };
  const similarity = (s: RenameFile, d: RenameFile, min: number): number => {
    if (!s.regular || !d.regular) return 0;
    const ss = blobs.size(s.oid);
    const ds = blobs.size(d.oid);
    const max = Math.max(ss, ds);
    const delta = max - Math.min(ss, ds);
    if (max * (MAX_SCORE - min) < delta * MAX_SCORE) return 0;
    if (max === 0) return 0;
    return Math.floor((copiedBytes(span(s.oid), span(d.oid)) * MAX_SCORE) / max);
  };

  // 1. Exact: same blob.
  const byOid = new Map<string, number[]>();
  sources.forEach((s, i) => { const l = byOid.get(s.oid); if (l) l.push(i); else byOid.set(s.oid, [i]); });
  dests.forEach((d, j) => {
    let best = -1;
    let bestScore = -1;
    for (const i of byOid.get(d.oid) ?? []) {
      if (used[i] && !copies) continue;
      const score = (used[i] ? 0 : 1) + (basenameSame(sources[i].path, d.path) ? 1 : 0);
      if (score > bestScore) { best = i; bestScore = score; }
    }
    if (best >= 0) record(j, best, MAX_SCORE);
  });

  // The sources still available: renames use a source once.
  const live = (i: number): boolean => copies || used[i] === 0;

  // 2. Unique basenames (renames only), at a higher bar.
  if (!copies) {
    const minBase = minimum + Math.floor((MAX_SCORE - minimum) / 2);
    const srcByBase = new Map<string, number>();
    sources.forEach((s, i) => { if (!live(i)) return; const b = basename(s.path); srcByBase.set(b, srcByBase.has(b) ? -1 : i); });
    const dstByBase = new Map<string, number>();
    dests.forEach((d, j) => { if (dstPair[j]) return; const b = basename(d.path); dstByBase.set(b, dstByBase.has(b) ? -1 : j); });
    sources.forEach((s, i) => {
      if (!live(i)) return;
      const b = basename(s.path);
      if (srcByBase.get(b) !== i) return;
      const j = dstByBase.get(b);
      if (j === undefined || j < 0 || dstPair[j]) return;
      const score = similarity(s, dests[j], minBase);
      if (score >= minBase) record(j, i, score);
    });
  }

  // 3. The matrix.
  const srcIdx = sources.map((_, i) => i).filter(live);
  const dstIdx = dests.map((_, j) => j).filter((j) => !dstPair[j]);
  if (srcIdx.length && dstIdx.length && srcIdx.length * dstIdx.length <= limit * limit) {
    type Cand = { src: number; dst: number; score: number; name: number };
    const better = (a: Cand, b: Cand): number => (a.score === b.score ? b.name - a.name : b.score - a.score);
    const mx: Cand[] = [];
    for (const j of dstIdx) {
      const best: Cand[] = [];
      for (const i of srcIdx) {
        const c = { src: i, dst: j, score: similarity(sources[i], dests[j], minimum), name: basenameSame(sources[i].path, dests[j].path) ? 1 : 0 };
        if (best.length < 4) { best.push(c); continue; }
        let worst = 0;
        for (let k = 1; k < 4; k++) if (better(best[k], best[worst]) > 0) worst = k;
        if (better(best[worst], c) > 0) best[worst] = c;
      }
      mx.push(...best);
    }
    const order = mx.map((c, k) => ({ c, k })).sort((x, y) => better(x.c, y.c) || x.k - y.k).map((x) => x.c);
    const pass = (allowReuse: boolean): void => {
      for (const c of order) {
        if (c.score < minimum) break;
        if (dstPair[c.dst]) continue;
        if (!allowReuse && used[c.src]) continue;
        record(c.dst, c.src, c.score);
      }
    };
    pass(false);
    if (copies) pass(true);
  }

  // Status, in output order (destinations sorted by path, as the caller gives them).
  const remaining = [...used];
  const out: RenamePair[] = [];
  dests.forEach((_, j) => {
    const p = dstPair[j];
    if (!p) return;
    remaining[p.src]--;
    out.push({ src: p.src, dst: j, score: p.score, status: remaining[p.src] > 0 ? 'C' : 'R' });
  });
  return out;
}

/** The similarity index git prints for a score. */
export function similarityIndex(score: number): number {
  return Math.floor((score * 100) / MAX_SCORE);
}
