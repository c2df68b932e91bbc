/**
 * Writing one pack with deltas (for `gc`): git's pack format version 2, with OFS_DELTA entries whose base comes
 * earlier in the same pack, and git's delta encoding (copy and insert instructions). The index is the store's
 * own (objects.ts: buildIndex), and the pack appears as the store's do: written to a temporary name, synced,
 * renamed, index last, so a reader sees the whole pack or none.
 *
 * What git's pack-objects does, in small (`repack`):
 *
 * - Reuse: an object already in a pack is copied as its compressed bytes, never inflated and deflated again
 *   (git's reuse-object); one stored there as a delta whose base also goes into the new pack stays that delta,
 *   only its base's offset rewritten (OFS_DELTA) or its base id turned into one (REF_DELTA; git's reuse-delta).
 *   Copied bytes are checked against the CRC the old pack's index holds; on a mismatch the object is read and
 *   written again, and a corrupt one stops gc before anything is removed.
 * - Delta search, only over objects that are not deltas already (as git): trees and blobs grouped by path, each
 *   group sorted by size, largest first; each object is tried against the (up to) WINDOW previous ones of its
 *   group, after git's cheap rejections (size ratio, chain depth at most 50), and the smallest delta under half
 *   the object's size wins.
 * - Order: a delta's base is always written before it (a base not yet written is written first).
 *
 * The delta encoder is git's idea too: the base is cut into 16-byte blocks whose rolling hashes go into a hash
 * table (typed arrays, chained, a few candidates tried per position); the target is scanned with the same
 * rolling hash, a hit is checked and extended both ways, and runs of at least 16 equal bytes become copies, the
 * rest inserts. The encoder gives up as soon as its output passes the size wanted.
 */
import * as fs from '../sys/fs.js';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { ObjectError } from '../errors.js';
import { hashObject, TYPE_NUM, buildIndex, packEntryHeader, syncDir, type GitObject, type ObjectStore, type ObjectType } from './objects.js';

// ---- the delta encoder ------------------------------------------------------------------------------------

const BLOCK = 16;
const MAX_COPY = 0x10000;
const MULT = 0x01000193;
const GOLDEN = 0x9e3779b1 | 0;
/** Candidates tried at one position of the target (git keeps up to 64 per bucket; the longest match wins). */
const CHAIN = 8;
/** A match at least this long is taken without looking at other candidates. */
const GOOD_MATCH = 4096;
/** Targets at least this large are sampled at SAMPLES places before a delta is tried (DeltaIndex.encode). */
const SAMPLE_FROM = 1024;
const SAMPLES = 24;
/** How far below the share of copies a delta needs the share of samples that find one may fall. */
const SAMPLE_SLACK = 0.2;
let POW = 1;
for (let k = 1; k < BLOCK; k++) POW = Math.imul(POW, MULT);

function hash16(b: Buffer, at: number): number {
  let h = 0;
  for (let k = 0; k < BLOCK; k++) h = (Math.imul(h, MULT) + b[at + k]) | 0;
  return h;
}

function varint(n: number, out: Buffer, o: number): number {
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out[o++] = b;
  } while (n > 0);
  return o;
}

/** A base's block index, built once and used for every target tried against it. */
export class DeltaIndex {
  private readonly heads: Int32Array;
  private readonly next: Int32Array;
  private readonly hashes: Int32Array;
  private readonly shift: number;

  constructor(readonly base: Buffer) {
    const nb = Math.floor(base.length / BLOCK);
    let bits = 4;
    while (1 << bits < nb && bits < 30) bits++;
    this.shift = 32 - bits;
    this.heads = new Int32Array(1 << bits).fill(-1);
    this.next = new Int32Array(nb);
    this.hashes = new Int32Array(nb);
    // From the last block to the first, so that each chain lists earlier blocks first.
    for (let b = nb - 1; b >= 0; b--) {
      const h = hash16(base, b * BLOCK);
      const slot = Math.imul(h, GOLDEN) >>> this.shift;
      this.hashes[b] = h;
      this.next[b] = this.heads[slot];
      this.heads[slot] = b;
    }
  }

  /** Whether an aligned block of the base occurs among the 16 positions from `at` of `target`. */
  private hitNear(target: Buffer, at: number): boolean {
    const { heads, next, hashes, shift, base } = this;
    let h = hash16(target, at);
    for (let i = at; ; i++) {
      for (let b = heads[Math.imul(h, GOLDEN) >>> shift], tries = 0; b >= 0 && tries < CHAIN; b = next[b], tries++) {
        if (hashes[b] === h && base.compare(target, i, i + BLOCK, b * BLOCK, b * BLOCK + BLOCK) === 0) return true;
      }
      if (i === at + BLOCK - 1 || i + BLOCK >= target.length) return false;
      h = (Math.imul(h - Math.imul(target[i], POW), MULT) + target[i + BLOCK]) | 0;
    }
  }

  /**
   * The delta from the base to `target`, or null when it would be larger than `maxSize` bytes. A target of
   * 1 KiB or more is first sampled at 24 evenly spaced places, for blocks of the base (the encoder finds copies
   * only where such blocks occur): when too few places have one for a delta of at most `maxSize` bytes, it is
   * not tried (git's cheap rejections are by size only; this one costs a few hundred of the target's bytes).
   */
  encode(target: Buffer, maxSize: number): Buffer | null {
    const base = this.base;
    const tlen = target.length;
    if (base.length < BLOCK || tlen < BLOCK || base.length >= 0x80000000) return null;
    const cap = Math.floor(Math.min(maxSize, tlen + Math.ceil(tlen / 127) + 20));
    if (cap < 4) return null;
    if (tlen >= SAMPLE_FROM) {
      // Inserts cost a byte each, copies next to nothing: a delta of at most `cap` bytes copies at least
      // 1 - cap/tlen of the target, and about that share of evenly spaced samples must find a block.
      const need = Math.ceil(SAMPLES * (1 - cap / tlen - SAMPLE_SLACK));
      let hits = 0;
      for (let s = 0; s < SAMPLES && hits < need; s++) {
        if (hits + (SAMPLES - s) < need) return null;
        if (this.hitNear(target, Math.floor(((tlen - 2 * BLOCK) * s) / (SAMPLES - 1)))) hits++;
      }
      if (hits < need) return null;
    }
    const out = Buffer.allocUnsafe(cap + 24);
    let o = varint(base.length, out, 0);
    o = varint(tlen, out, o);
    const { heads, next, hashes, shift } = this;
    const limit = tlen - BLOCK;
    const blen = base.length;
    let lit = 0;
    let i = 0;
    let h = hash16(target, 0);
    for (;;) {
      let bestLen = 0, bestAt = 0;
      if (i <= limit) {
        if (o + (i - lit) > cap) return null;
        for (let b = heads[Math.imul(h, GOLDEN) >>> shift], tries = 0; b >= 0 && tries < CHAIN; b = next[b], tries++) {
          if (hashes[b] !== h) continue;
          const at = b * BLOCK;
          const max = Math.min(tlen - i, blen - at);
          let n = 0;
          while (n < max && target[i + n] === base[at + n]) n++;
          if (n >= BLOCK && n > bestLen) { bestLen = n; bestAt = at; if (n >= GOOD_MATCH) break; }
        }
        if (bestLen < BLOCK) {
          if (i < limit) h = (Math.imul(h - Math.imul(target[i], POW), MULT) + target[i + BLOCK]) | 0;
          i++;
          continue;
        }
      }
      // A copy at i (extended backwards into the pending inserts), or the end: the inserts first.
      let s = i, bs = bestAt;
      if (bestLen) while (s > lit && bs > 0 && target[s - 1] === base[bs - 1]) { s--; bs--; }
      else s = tlen;
      while (lit < s) {
        const n = Math.min(127, s - lit);
        if (o + n + 1 > cap) return null;
        out[o++] = n;
        if (n > 16) target.copy(out, o, lit, lit + n);
        else for (let k = 0; k < n; k++) out[o + k] = target[lit + k];
        o += n;
        lit += n;
      }
      if (!bestLen) break;
      let len = i + bestLen - s;
      let off = bs;
      while (len > 0) {
        const n = Math.min(len, MAX_COPY);
        if (o + 8 > cap) return null;
        const opAt = o++;
        let op = 0x80;
        if (off & 0xff) { out[o++] = off & 0xff; op |= 1; }
        if ((off >>> 8) & 0xff) { out[o++] = (off >>> 8) & 0xff; op |= 2; }
        if ((off >>> 16) & 0xff) { out[o++] = (off >>> 16) & 0xff; op |= 4; }
        if ((off >>> 24) & 0xff) { out[o++] = (off >>> 24) & 0xff; op |= 8; }
        if (n !== MAX_COPY) {
          if (n & 0xff) { out[o++] = n & 0xff; op |= 0x10; }
          if ((n >>> 8) & 0xff) { out[o++] = (n >>> 8) & 0xff; op |= 0x20; }
        }
        out[opAt] = op;
        off += n;
        len -= n;
      }
      i += bestLen;
      lit = i;
      if (i <= limit) h = hash16(target, i);
    }
    if (o > maxSize) return null;
    return out.subarray(0, o);
  }
}

/** git's delta from `base` to `target`, or null when it would be larger than `maxSize` (half the target). */
export function encodeDelta(base: Buffer, target: Buffer, maxSize = target.length / 2): Buffer | null {
  if (base.length < BLOCK || target.length < BLOCK) return null;
  return new DeltaIndex(base).encode(target, maxSize);
}

/** Apply a git delta (for tests and checks). */
export function applyDelta(base: Buffer, delta: Buffer): Buffer {
  let p = 0;
  const read = (): number => { let n = 0, shift = 0, b; do { b = delta[p++]; n += (b & 0x7f) * 2 ** shift; shift += 7; } while (b & 0x80); return n; };
  if (read() !== base.length) throw new Error('delta base size mismatch');
  const out = Buffer.alloc(read());
  let o = 0;
  while (p < delta.length) {
    const op = delta[p++];
    if (op & 0x80) {
      let off = 0, size = 0;
      for (let k = 0; k < 4; k++) if (op & (1 << k)) off += delta[p++] * 2 ** (8 * k);
      for (let k = 0; k < 3; k++) if (op & (0x10 << k)) size |= delta[p++] << (8 * k);
      if (size === 0) size = MAX_COPY;
      base.copy(out, o, off, off + size);
      o += size;
    } else if (op) { delta.copy(out, o, p, p + op); o += op; p += op; }
    else throw new Error('bad delta opcode 0');
  }
  if (o !== out.length) throw new Error('delta result size mismatch');
  return out;
}

// ---- the pack writer --------------------------------------------------------------------------------------

const OUT_BUFFER = 1 << 20;

/** An OFS_DELTA entry's header: type 6, the delta's size, then the distance back to the base. */
function ofsHeader(deltaSize: number, distance: number): Buffer {
  const head = packEntryHeader(6, deltaSize);
  const bytes = [distance & 127];
  while ((distance = Math.floor(distance / 128)) > 0) { distance--; bytes.unshift(128 | (distance & 127)); }
  return Buffer.concat([head, Buffer.from(bytes)]);
}

/** One pack written straight to disk, entry by entry, through a buffer (memory: one entry at a time). */
export class PackFileWriter {
  private readonly fd: number;
  private readonly tmpPack: string;
  private readonly tmpIdx: string;
  private readonly hash = createHash('sha1');
  private readonly buf = Buffer.allocUnsafe(OUT_BUFFER);
  private pos = 0;
  private flushed = 0;
  private count = 0;
  private readonly oids: Buffer;
  private readonly offs: Float64Array;
  private readonly crcs: Uint32Array;
  /** Offsets of the entries, by oid (for delta bases). */
  readonly offsets = new Map<string, number>();

  constructor(private readonly packDir: string, private readonly total: number) {
    fs.mkdirSync(packDir, { recursive: true });
    const tag = `${process.pid}_${Date.now()}_${Math.random().toString(36).slice(2)}`;
    this.tmpPack = join(packDir, `tmp_pack_${tag}`);
    this.tmpIdx = join(packDir, `tmp_idx_${tag}`);
    this.oids = Buffer.alloc(total * 20);
    this.offs = new Float64Array(total);
    this.crcs = new Uint32Array(total);
    this.fd = fs.openSync(this.tmpPack, 'w');
    const head = Buffer.alloc(12);
    head.write('PACK', 0, 'latin1');
    head.writeUInt32BE(2, 4);
    head.writeUInt32BE(total, 8);
    this.put(head);
  }

  /** Where the next byte goes. */
  get offset(): number { return this.flushed + this.pos; }

  has(oid: string): boolean { return this.offsets.has(oid); }

  private flush(): void {
    if (this.pos === 0) return;
    this.writeOut(this.buf.subarray(0, this.pos));
    this.pos = 0;
  }

  private writeOut(b: Buffer): void {
    this.hash.update(b);
    let w = 0;
    while (w < b.length) w += fs.writeSync(this.fd, b, w, b.length - w, this.flushed + w);
    this.flushed += b.length;
  }

  private put(b: Buffer): void {
    if (b.length > OUT_BUFFER - this.pos) {
      this.flush();
      if (b.length >= OUT_BUFFER) { this.writeOut(b); return; }
    }
    b.copy(this.buf, this.pos);
    this.pos += b.length;
  }

  private begin(oid: string): number {
    if (this.count >= this.total) throw new Error(`pack writer: more than the ${this.total} entries announced`);
    if (this.offsets.has(oid)) throw new Error(`pack writer: ${oid} written twice`);
    return this.offset;
  }

  private end(oid: string, start: number, crc: number): void {
    const k = this.count++;
    this.oids.write(oid, k * 20, 'hex');
    this.offs[k] = start;
    this.crcs[k] = crc >>> 0;
    this.offsets.set(oid, start);
  }

  private entry(oid: string, hdr: Buffer, body: Buffer): void {
    const start = this.begin(oid);
    this.put(hdr);
    this.put(body);
    this.end(oid, start, zlib.crc32(body, zlib.crc32(hdr)));
  }

  add(oid: string, type: ObjectType, data: Buffer): void {
    this.entry(oid, packEntryHeader(TYPE_NUM[type], data.length), zlib.deflateSync(data, { level: 6 }));
  }

  /** An OFS_DELTA entry against `base`, which must already be in this pack. */
  addDelta(oid: string, base: string, delta: Buffer): void {
    this.addCompressedDelta(oid, base, delta.length, zlib.deflateSync(delta, { level: 6 }));
  }

  /** An OFS_DELTA entry from a delta already compressed (`size`: its inflated size). */
  addCompressedDelta(oid: string, base: string, size: number, compressed: Buffer): void {
    const baseAt = this.offsets.get(base);
    if (baseAt === undefined) throw new Error(`delta base ${base} is not in the pack yet`);
    this.entry(oid, ofsHeader(size, this.offset - baseAt), compressed);
  }

  /** A whole entry copied as it is (header and compressed data), with its CRC. */
  addRaw(oid: string, raw: Buffer, crc: number): void {
    const start = this.begin(oid);
    this.put(raw);
    this.end(oid, start, crc);
  }

  /** A whole entry copied in pieces (a large one): `pieces` yields its bytes; returns their CRC. */
  addRawPieces(oid: string, pieces: Iterable<Buffer>): number {
    const start = this.begin(oid);
    let crc = 0;
    for (const p of pieces) { crc = zlib.crc32(p, crc); this.put(p); }
    this.end(oid, start, crc);
    return crc >>> 0;
  }

  /** Trailer, sync, index, renames; returns the pack's name (`pack-<sha>`) and its size. */
  finish(): { name: string; bytes: number } {
    if (this.count !== this.total) throw new Error(`pack writer: ${this.count} entries written, ${this.total} announced`);
    this.flush();
    const sum = this.hash.digest();
    fs.writeSync(this.fd, sum, 0, 20, this.flushed);
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    const name = `pack-${sum.toString('hex')}`;
    const n = this.count;
    const idx = buildIndex(this.oids, this.offs, this.crcs, n, sum);
    const fd = fs.openSync(this.tmpIdx, 'w');
    try { fs.writeFileSync(fd, idx); fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
    fs.renameSync(this.tmpPack, join(this.packDir, `${name}.pack`));
    fs.renameSync(this.tmpIdx, join(this.packDir, `${name}.idx`));
    syncDir(this.packDir);
    return { name, bytes: this.flushed + 20 + idx.length };
  }

  abort(): void {
    try { fs.closeSync(this.fd); } catch { /* closed */ }
    fs.rmSync(this.tmpPack, { force: true });
    fs.rmSync(this.tmpIdx, { force: true });
  }
}

// ---- the packs objects are copied from --------------------------------------------------------------------

/** Entries at most this large are read in one piece; larger ones are copied in pieces of this size. */
const RAW_PIECE = 4 << 20;
/** Headers are read in pieces of this size, the pack from start to end (not one read per entry). */
const SCAN_PIECE = 8 << 20;
/** Entries of commits and trees read for the walk and kept, compressed, for the copy (all together). */
const RAW_CACHE_BYTES = 32 << 20;
/** Entries up to this size are kept while headers are read (SourcePack.scan). */
const KEEP_MAX = 4096;

/** A pack entry's header. */
export interface EntryHead {
  typeNum: number;
  /** The size field: the object's size, or the delta's for a delta. */
  size: number;
  /** Bytes before the compressed data (the base's offset or id included). */
  hdrLen: number;
  /** A delta's base: its id (REF_DELTA, or OFS_DELTA resolved through the index); null for a whole object. */
  baseOid: string | null;
}

const BAD = 0; // typeNum of an entry whose header cannot be read
/** The buffer headers are read through (one, whatever the number of packs; dropped by PackSources.close). */
let scanBuffer: Buffer | null = null;

class SourcePack {
  readonly n: number;
  private fd = -1;
  private size = 0;
  private sorted: Float64Array | null = null;
  private sortedK: Uint32Array | null = null;
  // Headers, by position in the index (scan()).
  private typeNums: Uint8Array | null = null;
  private sizes: Float64Array | null = null;
  private hdrLens: Uint8Array | null = null;
  /** A delta's base: its position in this pack (OFS_DELTA), -2 for a REF_DELTA (refBases), -1 for none. */
  private baseKs: Int32Array | null = null;
  private readonly refBases = new Map<number, string>();

  /** `keep`: shown, while the headers are read, each whole commit, tree or tag entry up to 4 KiB (its bytes). */
  constructor(readonly path: string, readonly idx: Buffer, private readonly keep: (k: number, entry: Buffer) => void = () => {}) {
    if (idx.readUInt32BE(0) !== 0xff744f63 || idx.readUInt32BE(4) !== 2) throw new ObjectError(path, 'not a version 2 pack index');
    this.n = idx.readUInt32BE(8 + 255 * 4);
  }

  oidAt(k: number): string { return this.idx.toString('hex', 1032 + k * 20, 1052 + k * 20); }

  crcAt(k: number): number { return this.idx.readUInt32BE(1032 + this.n * 20 + k * 4); }

  offsetAt(k: number): number {
    const offTable = 1032 + this.n * 24;
    const v = this.idx.readUInt32BE(offTable + k * 4);
    if (v & 0x80000000) return Number(this.idx.readBigUInt64BE(offTable + this.n * 4 + (v & 0x7fffffff) * 8));
    return v;
  }

  private open(): void {
    if (this.fd >= 0) return;
    try {
      this.fd = fs.openSync(this.path, 'r');
      this.size = fs.fstatSync(this.fd).size;
    } catch (e) {
      throw new ObjectError(this.path, `unreadable (${(e as Error).message})`);
    }
  }

  private sort(): void {
    if (this.sorted) return;
    const offs = new Float64Array(this.n);
    const order = new Uint32Array(this.n);
    for (let k = 0; k < this.n; k++) { offs[k] = this.offsetAt(k); order[k] = k; }
    order.sort((a, b) => offs[a] - offs[b]);
    this.sorted = Float64Array.from(order, (k) => offs[k]);
    this.sortedK = order;
  }

  /** Where the entry at `offset` ends (the next entry's offset, or the trailer's). */
  endOf(offset: number): number {
    this.open();
    this.sort();
    const a = this.sorted!;
    let lo = 0, hi = a.length;
    while (lo < hi) { const mid = (lo + hi) >>> 1; if (a[mid] <= offset) lo = mid + 1; else hi = mid; }
    return lo < a.length ? a[lo] : this.size - 20;
  }

  /** The index position of the entry at `offset`, or -1. */
  private kAtOffset(offset: number): number {
    const a = this.sorted!;
    let lo = 0, hi = a.length;
    while (lo < hi) { const mid = (lo + hi) >>> 1; if (a[mid] < offset) lo = mid + 1; else hi = mid; }
    return lo < a.length && a[lo] === offset ? this.sortedK![lo] : -1;
  }

  /** Read every entry's header, the pack from start to end in large pieces. */
  private scan(): void {
    this.open();
    this.sort();
    const n = this.n;
    const typeNums = new Uint8Array(n), sizes = new Float64Array(n), hdrLens = new Uint8Array(n), baseKs = new Int32Array(n);
    if (!scanBuffer || scanBuffer.length < Math.min(SCAN_PIECE, Math.max(64, this.size))) scanBuffer = Buffer.allocUnsafe(Math.min(SCAN_PIECE, Math.max(64, this.size)));
    const buf = scanBuffer;
    let cs = 0, cl = 0;
    const sorted = this.sorted!, sortedK = this.sortedK!;
    for (let j = 0; j < n; j++) {
      const off = sorted[j], k = sortedK[j];
      const end = j + 1 < n ? sorted[j + 1] : this.size - 20;
      if (off < cs || Math.min(Math.max(end, off + 32), off + KEEP_MAX) > cs + cl) {
        cs = off;
        cl = 0;
        for (let r = -1; r !== 0 && cl < buf.length;) { r = fs.readSync(this.fd, buf, cl, buf.length - cl, cs + cl); cl += r; }
      }
      const lim = Math.min(cl, off - cs + 32);
      let p = off - cs;
      let c = buf[p++];
      let t = (c >> 4) & 7;
      let size = c & 15, shift = 4;
      while (c & 0x80 && p < lim) { c = buf[p++]; size += (c & 0x7f) * 2 ** shift; shift += 7; }
      let baseK = -1;
      if (c & 0x80 || p > lim) t = BAD;
      else if (t === 6) {
        c = buf[p++];
        let d = c & 0x7f;
        while (c & 0x80 && p < lim) { c = buf[p++]; d = (d + 1) * 128 + (c & 0x7f); }
        baseK = c & 0x80 || d <= 0 || d > off ? -1 : this.kAtOffset(off - d);
        if (baseK < 0) t = BAD;
      } else if (t === 7) {
        if (p + 20 > lim) t = BAD;
        else { baseK = -2; this.refBases.set(k, buf.toString('hex', p, p + 20)); p += 20; }
      } else if (t < 1 || t > 4) t = BAD;
      if ((t === 1 || t === 2 || t === 4) && end - off <= KEEP_MAX && end <= cs + cl) this.keep(k, buf.subarray(off - cs, end - cs));
      typeNums[k] = t;
      sizes[k] = size;
      hdrLens[k] = p - (off - cs);
      baseKs[k] = baseK;
    }
    this.typeNums = typeNums;
    this.sizes = sizes;
    this.hdrLens = hdrLens;
    this.baseKs = baseKs;
  }

  head(oid: string, k: number): EntryHead {
    if (!this.typeNums) this.scan();
    const typeNum = this.typeNums![k];
    if (typeNum === BAD) throw new ObjectError(oid, 'corrupt (unreadable pack entry header)');
    const bk = this.baseKs![k];
    return { typeNum, size: this.sizes![k], hdrLen: this.hdrLens![k], baseOid: bk === -1 ? null : bk === -2 ? this.refBases.get(k)! : this.oidAt(bk) };
  }

  /** `len` bytes at `at`. */
  read(oid: string, at: number, len: number): Buffer {
    this.open();
    const buf = Buffer.allocUnsafe(len);
    let got = 0;
    while (got < len) {
      const n = fs.readSync(this.fd, buf, got, len - got, at + got);
      if (n === 0) throw new ObjectError(oid, 'corrupt (truncated pack)');
      got += n;
    }
    return buf;
  }

  close(): void {
    if (this.fd >= 0) { try { fs.closeSync(this.fd); } catch { /* released all the same */ } }
    this.fd = -1;
  }
}

/**
 * The store's packs, where each object is in them (the first pack that has it), and a cache of the compressed
 * entries of commits and trees read for the walk (so that copying them reads nothing again).
 */
export class PackSources {
  readonly packs: SourcePack[];
  /** oid -> where: pack index + entry position * number of packs. */
  private readonly where = new Map<string, number>();
  private readonly cache = new Map<string, Buffer>();
  private cacheBytes = 0;

  constructor(private readonly objects: ObjectStore, list: ReadonlyArray<{ path: string; idx: Buffer }>) {
    this.packs = list.map((p, i) => new SourcePack(p.path, p.idx, (k, entry) => {
      // Kept when this is the entry the object is read from, while the cache has room.
      if (this.cacheBytes + entry.length > RAW_CACHE_BYTES) return;
      const oid = this.packs[i].oidAt(k);
      if (this.where.get(oid) !== i + k * this.packs.length) return;
      this.cache.set(oid, Buffer.from(entry));
      this.cacheBytes += entry.length;
    }));
  }

  /** Record that pack `p`'s entry `k` is `oid`; the first record of an oid wins (returns its pack, else -1). */
  add(oid: string, p: number, k: number): number {
    const had = this.where.get(oid);
    if (had !== undefined) return had % this.packs.length;
    this.where.set(oid, p + k * this.packs.length);
    return -1;
  }

  /** The pack (index) that holds `oid`, or -1. */
  packOf(oid: string): number {
    const v = this.where.get(oid);
    return v === undefined ? -1 : v % this.packs.length;
  }

  get count(): number { return this.where.size; }

  oids(): IterableIterator<string> { return this.where.keys(); }

  private packAt(v: number): SourcePack { return this.packs[v % this.packs.length]; }
  private kAt(v: number): number { return Math.floor(v / this.packs.length); }

  /** The header of `oid`'s entry, or null for an object not in a pack. */
  head(oid: string): EntryHead | null {
    const v = this.where.get(oid);
    return v === undefined ? null : this.packAt(v).head(oid, this.kAt(v));
  }

  /** The CRC of `oid`'s entry, from its pack's index. */
  crc(oid: string): number {
    const v = this.where.get(oid)!;
    return this.packAt(v).crcAt(this.kAt(v));
  }

  /** Bytes of `oid`'s entry, header included. */
  entryBytes(oid: string): number {
    const v = this.where.get(oid)!;
    const pack = this.packAt(v);
    const off = pack.offsetAt(this.kAt(v));
    return pack.endOf(off) - off;
  }

  /** `oid`'s whole entry (header and compressed data), read or taken from the cache. */
  raw(oid: string): Buffer {
    const hit = this.cache.get(oid);
    if (hit) { this.cache.delete(oid); this.cacheBytes -= hit.length; return hit; }
    const v = this.where.get(oid)!;
    const pack = this.packAt(v);
    const off = pack.offsetAt(this.kAt(v));
    return pack.read(oid, off, pack.endOf(off) - off);
  }

  /** A large entry's bytes, in pieces. */
  *pieces(oid: string): Generator<Buffer> {
    const v = this.where.get(oid)!;
    const pack = this.packAt(v);
    const off = pack.offsetAt(this.kAt(v));
    const end = pack.endOf(off);
    for (let p = off; p < end; p += RAW_PIECE) yield pack.read(oid, p, Math.min(RAW_PIECE, end - p));
  }

  /** An object, for the walk: a whole packed commit or tree is read in one piece and its entry kept. */
  read(oid: string): GitObject {
    const h = this.head(oid);
    if (h && h.baseOid === null && h.typeNum !== 3 && this.entryBytes(oid) <= RAW_PIECE) {
      const raw = this.raw(oid);
      let data: Buffer | null = null;
      try { data = zlib.inflateSync(raw.subarray(h.hdrLen), { chunkSize: Math.max(64, Math.min(h.size, 64 << 20)) }); } catch { /* read below */ }
      if (data && data.length === h.size) {
        if (this.cacheBytes + raw.length <= RAW_CACHE_BYTES) { this.cache.set(oid, raw); this.cacheBytes += raw.length; }
        return { type: TYPE_NAME[h.typeNum], data };
      }
    }
    return this.objects.read(oid);
  }

  close(): void {
    for (const p of this.packs) p.close();
    this.cache.clear();
    scanBuffer = null;
  }
}

const TYPE_NAME: Record<number, ObjectType> = { 1: 'commit', 2: 'tree', 3: 'blob', 4: 'tag' };

// ---- repacking --------------------------------------------------------------------------------------------

/** Objects tried as bases for each candidate (git's pack.window). */
const WINDOW = 10;
/** Content the window may hold, all bases together (git's pack.windowMemory). */
const WINDOW_BYTES = 32 << 20;
/** Objects larger than this are neither bases nor deltas (they are copied). */
const DELTA_MAX = 16 << 20;
/** Objects smaller than this are not tried (git: 50 bytes). */
const DELTA_MIN = 50;
/** git's pack.depth. */
const MAX_DEPTH = 50;

export interface RepackInput {
  /** Every object going into the pack, with its type. */
  types: ReadonlyMap<string, ObjectType>;
  /** Objects written first, in this order, never tried as deltas (commits, tags). */
  first: readonly string[];
  /** Trees and blobs by group (objects of one path), in the order to write the groups. */
  groups: ReadonlyArray<readonly string[]>;
}

export interface RepackReport {
  name: string;
  /** Bytes of the new pack and its index. */
  bytes: number;
  /** Entries stored as deltas: found now, and copied from the old packs. */
  deltas: number;
  newDeltas: number;
  reusedDeltas: number;
  /** Whole entries copied from the old packs as they were. */
  reusedWhole: number;
}

interface Candidate { oid: string; size: number; data: Buffer; depth: number; index: DeltaIndex | null }

/**
 * Write every object of `input` into one new pack in `packDir`, reusing what the old packs hold (see the top
 * of this file). `tick` is called once per object written.
 */
export function repack(objects: ObjectStore, sources: PackSources, input: RepackInput, packDir: string, tick: () => void = () => {}): RepackReport {
  const { types } = input;
  const w = new PackFileWriter(packDir, types.size);
  const depth = new Map<string, number>();
  let newDeltas = 0, reusedDeltas = 0, reusedWhole = 0;

  /** An entry's bytes, checked against the CRC its index holds; null when they do not match. */
  const rawOf = (oid: string): Buffer | null => {
    const raw = sources.raw(oid);
    return (zlib.crc32(raw) >>> 0) === sources.crc(oid) ? raw : null;
  };
  /** An object's content read the slow way (through the store), checked against its id. */
  const contentOf = (oid: string): Buffer => {
    const o = objects.read(oid);
    if (o.type !== types.get(oid) || hashObject(o.type, o.data) !== oid) throw new ObjectError(oid, 'corrupt (hash mismatch)');
    return o.data;
  };
  const writeWhole = (oid: string, data = contentOf(oid)): void => { w.add(oid, types.get(oid)!, data); tick(); };

  /** Write one object as its old pack holds it (a copy), or whole when that cannot be. */
  const writeFromSource = (oid: string, h: EntryHead | null): void => {
    if (h === null) return writeWhole(oid);
    const bytes = sources.entryBytes(oid);
    if (h.baseOid !== null) {
      const d = (depth.get(h.baseOid) ?? 0) + 1;
      if (!w.has(h.baseOid) || d > MAX_DEPTH || bytes > RAW_PIECE) return writeWhole(oid);
      const raw = rawOf(oid);
      if (!raw) return writeWhole(oid);
      w.addCompressedDelta(oid, h.baseOid, h.size, raw.subarray(h.hdrLen));
      depth.set(oid, d);
      reusedDeltas++;
    } else if (bytes <= RAW_PIECE) {
      const raw = rawOf(oid);
      if (!raw) return writeWhole(oid);
      w.addRaw(oid, raw, sources.crc(oid));
      reusedWhole++;
    } else {
      // A large entry: its CRC checked first, then copied in pieces (read twice, never held whole).
      let crc = 0;
      for (const p of sources.pieces(oid)) crc = zlib.crc32(p, crc);
      if ((crc >>> 0) !== sources.crc(oid)) return writeWhole(oid);
      w.addRawPieces(oid, sources.pieces(oid));
      reusedWhole++;
    }
    tick();
  };

  /** Write `oid` as its old pack holds it, its delta base (and that one's) first. */
  const ensure = (oid: string): void => {
    if (w.has(oid)) return;
    const stack = [oid];
    const onStack = new Set(stack);
    while (stack.length) {
      const cur = stack[stack.length - 1];
      if (w.has(cur)) { stack.pop(); continue; }
      const h = sources.head(cur);
      const b = h?.baseOid;
      if (b && types.has(b) && !w.has(b) && !onStack.has(b)) { stack.push(b); onStack.add(b); continue; }
      stack.pop();
      writeFromSource(cur, h); // a base on the stack (a cycle between packs): written whole
    }
  };

  try {
    for (const oid of input.first) ensure(oid);
    for (const group of input.groups) {
      if (group.length === 1) { ensure(group[0]); continue; }
      // Candidates: objects stored whole (or loose); a delta whose base goes into the pack stays as it is.
      const cands: Array<{ oid: string; size: number; h: EntryHead | null }> = [];
      for (const oid of group) {
        const h = sources.head(oid);
        if (h && h.baseOid !== null && types.has(h.baseOid)) { ensure(oid); continue; }
        const size = h && h.baseOid === null ? h.size : objects.sizeOf(oid);
        if (size < DELTA_MIN || size > DELTA_MAX) { ensure(oid); continue; }
        cands.push({ oid, size, h });
      }
      cands.sort((a, b) => b.size - a.size || (a.oid < b.oid ? -1 : 1));
      const window: Candidate[] = [];
      let windowBytes = 0;
      for (const c of cands) {
        let data: Buffer;
        if (w.has(c.oid)) {
          data = contentOf(c.oid); // written already, as a base of a copied delta: a base for the others still
        } else {
          let raw = c.h && c.h.baseOid === null && sources.entryBytes(c.oid) <= RAW_PIECE ? rawOf(c.oid) : null;
          let inflated: Buffer | null = null;
          if (raw) {
            try { inflated = zlib.inflateSync(raw.subarray(c.h!.hdrLen), { chunkSize: Math.max(64, Math.min(c.size, 64 << 20)) }); } catch { /* read below */ }
            if (!inflated || inflated.length !== c.size) { raw = null; inflated = null; }
          }
          data = inflated ?? contentOf(c.oid);
          // git's rejections first: a base much larger or smaller than the target, a chain too deep.
          let best: Buffer | null = null;
          let bestBase: Candidate | null = null;
          const maxSize = Math.floor(c.size / 2) - 20;
          for (let k = window.length - 1; k >= 0 && maxSize > 0; k--) {
            const b = window[k];
            if (b.depth >= MAX_DEPTH || c.size < b.size / 32) continue;
            const limit = best ? best.length - 1 : maxSize;
            if (b.size < c.size && c.size - b.size >= limit) continue;
            b.index ??= new DeltaIndex(b.data);
            const d = b.index.encode(data, limit);
            if (d) { best = d; bestBase = b; }
          }
          if (best && bestBase) {
            w.addDelta(c.oid, bestBase.oid, best);
            depth.set(c.oid, bestBase.depth + 1);
            newDeltas++;
            tick();
          } else if (raw) {
            w.addRaw(c.oid, raw, sources.crc(c.oid));
            reusedWhole++;
            tick();
          } else if (c.h && c.h.baseOid === null) writeFromSource(c.oid, c.h); // a large entry: copied in pieces
          else writeWhole(c.oid, data);
        }
        window.push({ oid: c.oid, size: c.size, data, depth: depth.get(c.oid) ?? 0, index: null });
        windowBytes += data.length;
        while (window.length > WINDOW || (windowBytes > WINDOW_BYTES && window.length > 1)) windowBytes -= window.shift()!.data.length;
      }
    }
    const { name, bytes } = w.finish();
    return { name, bytes, deltas: newDeltas + reusedDeltas, newDeltas, reusedDeltas, reusedWhole };
  } catch (e) {
    w.abort();
    throw e;
  }
}
