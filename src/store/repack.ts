/**
 * Writing one pack with deltas (for `gc`): git's pack format version 2, with OFS_DELTA entries whose base comes
 * earlier in the same pack, and git's delta encoding (copy and insert instructions). The index is the store's
 * own (objects.ts: buildIndex), and the pack appears as the store's do: written to a temporary name, synced,
 * renamed, index last, so a reader sees the whole pack or none.
 *
 * The delta search is git's idea in small: the base is cut into 16-byte blocks, each block's hash remembered;
 * the target is scanned with a rolling hash of 16 bytes, a hit is checked and extended both ways, and runs of
 * at least 16 equal bytes become copies, the rest inserts.
 */
import * as fs from '../sys/fs.js';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { TYPE_NUM, buildIndex, packEntryHeader, syncDir, type ObjectType } from './objects.js';

const BLOCK = 16;
const MAX_COPY = 0x10000;
const BASE = 0x01000193;

function varint(n: number, out: number[]): void {
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
}

/** git's delta from `base` to `target`, or null when it would not be much smaller than `target`. */
export function encodeDelta(base: Buffer, target: Buffer, maxSize = target.length / 2): Buffer | null {
  if (base.length < BLOCK || target.length < BLOCK) return null;
  // Block hashes of the base (the first block with a hash wins).
  const table = new Map<number, number>();
  let pow = 1;
  for (let k = 1; k < BLOCK; k++) pow = Math.imul(pow, BASE);
  const hashAt = (b: Buffer, at: number): number => {
    let h = 0;
    for (let k = 0; k < BLOCK; k++) h = (Math.imul(h, BASE) + b[at + k]) | 0;
    return h;
  };
  for (let at = 0; at + BLOCK <= base.length; at += BLOCK) {
    const h = hashAt(base, at);
    if (!table.has(h)) table.set(h, at);
  }
  const out: number[] = [];
  varint(base.length, out);
  varint(target.length, out);
  let lit = 0; // start of the pending literal bytes
  const flushLiteral = (end: number): void => {
    for (let p = lit; p < end; ) {
      const n = Math.min(127, end - p);
      out.push(n);
      for (let k = 0; k < n; k++) out.push(target[p + k]);
      p += n;
    }
  };
  const copy = (off: number, len: number): void => {
    while (len > 0) {
      const n = Math.min(len, MAX_COPY);
      let op = 0x80;
      const bytes: number[] = [];
      for (let k = 0; k < 4; k++) { const v = Math.floor(off / 2 ** (8 * k)) & 0xff; if (v) { op |= 1 << k; bytes.push(v); } }
      const sz = n === MAX_COPY ? 0 : n;
      for (let k = 0; k < 3; k++) { const v = (sz >> (8 * k)) & 0xff; if (v) { op |= 0x10 << k; bytes.push(v); } }
      out.push(op, ...bytes);
      off += n;
      len -= n;
    }
  };
  let i = 0;
  let h = target.length >= BLOCK ? hashAt(target, 0) : 0;
  while (i + BLOCK <= target.length) {
    if (out.length > maxSize) return null;
    const cand = table.get(h);
    if (cand !== undefined && base.compare(target, i, i + BLOCK, cand, cand + BLOCK) === 0) {
      // Extend backwards into the pending literal, then forwards.
      let s = i, b = cand;
      while (s > lit && b > 0 && target[s - 1] === base[b - 1]) { s--; b--; }
      let e = i + BLOCK, be = cand + BLOCK;
      while (e < target.length && be < base.length && target[e] === base[be]) { e++; be++; }
      flushLiteral(s);
      copy(b, e - s);
      i = e;
      lit = e;
      if (i + BLOCK <= target.length) h = hashAt(target, i);
      continue;
    }
    if (i + BLOCK < target.length) h = (Math.imul(h - Math.imul(target[i], pow), BASE) + target[i + BLOCK]) | 0;
    i++;
  }
  flushLiteral(target.length);
  if (out.length > maxSize) return null;
  return Buffer.from(out);
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

/** One pack written straight to disk, entry by entry (memory: one entry at a time). */
export class PackFileWriter {
  private readonly fd: number;
  private readonly tmpPack: string;
  private readonly tmpIdx: string;
  private readonly hash = createHash('sha1');
  private offset = 0;
  private count = 0;
  readonly entries: Array<{ oid: Buffer; offset: number; crc: number }> = [];
  /** Offsets of the entries, by oid (for delta bases). */
  readonly offsets = new Map<string, number>();

  constructor(private readonly packDir: string, private readonly total: number) {
    fs.mkdirSync(packDir, { recursive: true });
    const tag = `${process.pid}_${Date.now()}_${Math.random().toString(36).slice(2)}`;
    this.tmpPack = join(packDir, `tmp_pack_${tag}`);
    this.tmpIdx = join(packDir, `tmp_idx_${tag}`);
    this.fd = fs.openSync(this.tmpPack, 'w');
    const head = Buffer.alloc(12);
    head.write('PACK', 0, 'latin1');
    head.writeUInt32BE(2, 4);
    head.writeUInt32BE(total, 8);
    this.out(head);
  }

  private out(b: Buffer): void {
    this.hash.update(b);
    let w = 0;
    while (w < b.length) w += fs.writeSync(this.fd, b, w, b.length - w, this.offset + w);
    this.offset += b.length;
  }

  private entry(oid: string, hdr: Buffer, body: Buffer): void {
    const start = this.offset;
    this.out(hdr);
    this.out(body);
    this.entries.push({ oid: Buffer.from(oid, 'hex'), offset: start, crc: zlib.crc32(body, zlib.crc32(hdr)) });
    this.offsets.set(oid, start);
    this.count++;
  }

  add(oid: string, type: ObjectType, data: Buffer): void {
    this.entry(oid, packEntryHeader(TYPE_NUM[type], data.length), zlib.deflateSync(data, { level: 6 }));
  }

  /** An OFS_DELTA entry against `base`, which must already be in this pack. */
  addDelta(oid: string, base: string, delta: Buffer): void {
    const baseAt = this.offsets.get(base);
    if (baseAt === undefined) throw new Error(`delta base ${base} is not in the pack yet`);
    let ofs = this.offset - baseAt;
    const bytes = [ofs & 127];
    while ((ofs = Math.floor(ofs / 128)) > 0) { ofs--; bytes.unshift(128 | (ofs & 127)); }
    this.entry(oid, Buffer.concat([packEntryHeader(6, delta.length), Buffer.from(bytes)]), zlib.deflateSync(delta, { level: 6 }));
  }

  /** Trailer, sync, index, renames; returns the pack's name (`pack-<sha>`) and its size. */
  finish(): { name: string; bytes: number } {
    if (this.count !== this.total) throw new Error(`pack writer: ${this.count} entries written, ${this.total} announced`);
    const sum = this.hash.digest();
    fs.writeSync(this.fd, sum, 0, 20, this.offset);
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    const name = `pack-${sum.toString('hex')}`;
    const n = this.entries.length;
    const oids = Buffer.concat(this.entries.map((e) => e.oid));
    const idx = buildIndex(oids, Float64Array.from(this.entries, (e) => e.offset), Uint32Array.from(this.entries, (e) => e.crc), n, sum);
    const fd = fs.openSync(this.tmpIdx, 'w');
    try { fs.writeFileSync(fd, idx); fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
    fs.renameSync(this.tmpPack, join(this.packDir, `${name}.pack`));
    fs.renameSync(this.tmpIdx, join(this.packDir, `${name}.idx`));
    syncDir(this.packDir);
    return { name, bytes: this.offset + 20 + idx.length };
  }

  abort(): void {
    try { fs.closeSync(this.fd); } catch { /* closed */ }
    fs.rmSync(this.tmpPack, { force: true });
    fs.rmSync(this.tmpIdx, { force: true });
  }
}
