/**
 * Object I/O on node's zlib and crypto. isomorphic-git writes loose objects one by one and inflates with a
 * pure-JS zlib, which costs tens of seconds on trees of tens of thousands of files (see README, Performance);
 * this module reads loose objects and packs (v2 index, ofs/ref deltas) synchronously, writes a batch of
 * objects as one packfile with its index (built on disk as objects are added), and streams large blobs in and
 * out, so memory stays bounded whatever the size of the data.
 * One ObjectStore serves a whole command and caches parsed trees.
 */
import { createHash } from 'node:crypto';
import * as fs from '../sys/fs.js';
import { onAbort } from '../sys/abort.js';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import type { Worker } from 'node:worker_threads';
import { STOPPABLE, startWorker, stopWorker } from '../sys/workers.js';
import { availableParallelism } from 'node:os';
import { join as pjoin } from 'node:path';
import { ObjectError, isAbsent, isSystemRefusal, withPath } from '../errors.js';
import { EMPTY_TREE, type Mode, type TreeEntry, type TreeSink } from '../core/tree.js';

import { commonDir } from './layout.js';
import { blobHasher, hashObject, type ObjectType } from '../core/hash.js';
export { hashObject, type ObjectType };
export interface GitObject { type: ObjectType; data: Buffer }

export const TYPE_NUM: Record<ObjectType, number> = { commit: 1, tree: 2, blob: 3, tag: 4 };
const NUM_TYPE: Record<number, ObjectType> = { 1: 'commit', 2: 'tree', 3: 'blob', 4: 'tag' };

/** Files at least this large are streamed into a pack in one read, never held in memory. */
export const LARGE_BLOB = 16 * 1024 * 1024;
const BASE_CACHE_BYTES = 64 * 1024 * 1024;
/** The read window of a pack (Pack.bytes): its size after a jump, and the most it grows to while reads go forward. */
const MIN_WINDOW = 8 * 1024;
const MAX_WINDOW = 4 * 1024 * 1024;
/** The most bytes, and windows, all packs hold together (a store may have a pack per layer): the least recent go. */
const WINDOW_BUDGET = 16 * 1024 * 1024;
const WINDOW_COUNT = 64;
const windows = new Map<Pack, number>();
let windowBytes = 0;

function holdWindow(pack: Pack, bytes: number): void {
  windowBytes -= windows.get(pack) ?? 0;
  windows.delete(pack);
  windows.set(pack, bytes);
  windowBytes += bytes;
  for (const [other, n] of windows) {
    if ((windowBytes <= WINDOW_BUDGET && windows.size <= WINDOW_COUNT) || other === pack) break;
    other.dropWindow();
  }
}

function releaseWindow(pack: Pack): void {
  windowBytes -= windows.get(pack) ?? 0;
  windows.delete(pack);
}
/** Batches with fewer objects than this are written loose; larger ones as one pack. */
const PACK_THRESHOLD = 32;

// ---- trees ------------------------------------------------------------------------------------------------

const MODES = new Set(['100644', '100755', '120000', '40000', '160000']);

/** Git order: a directory sorts as if its name ended with '/'. */
function gitOrderKey(e: TreeEntry): string {
  return e.mode === '40000' ? e.name + '/' : e.name;
}

export function encodeTree(entries: readonly TreeEntry[]): Buffer {
  // Entries come in byte order; git order differs only around directories, so sort only when needed.
  let sorted = entries;
  for (let k = 1; k < entries.length; k++) {
    if (gitOrderKey(entries[k - 1]) > gitOrderKey(entries[k])) {
      sorted = [...entries].sort((a, b) => { const x = gitOrderKey(a), y = gitOrderKey(b); return x < y ? -1 : x > y ? 1 : 0; });
      break;
    }
  }
  let size = 0;
  for (const e of sorted) size += e.mode.length + e.name.length + 22;
  const buf = Buffer.allocUnsafe(size);
  let p = 0;
  for (const e of sorted) {
    p += buf.write(e.mode, p, 'latin1');
    buf[p++] = 0x20;
    p += buf.write(e.name, p, 'latin1');
    buf[p++] = 0;
    p += buf.write(e.oid, p, 'hex');
  }
  return buf;
}

/** Parse a tree object into entries sorted by byte order of names (tree.ts). */
export function parseTree(oid: string, data: Buffer): TreeEntry[] {
  const out: TreeEntry[] = [];
  let i = 0;
  let sorted = true;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    const nul = sp < 0 ? -1 : data.indexOf(0, sp + 1);
    if (sp < 0 || nul < 0 || nul + 21 > data.length) throw new ObjectError(oid, 'corrupt (malformed tree)');
    let mode = data.toString('latin1', i, sp);
    if (mode === '040000') mode = '40000';
    if (!MODES.has(mode)) throw new ObjectError(oid, `corrupt (bad mode ${mode} in tree)`);
    const name = data.toString('latin1', sp + 1, nul);
    const entry = { name, mode: mode as Mode, oid: data.toString('hex', nul + 1, nul + 21) };
    if (out.length && out[out.length - 1].name >= name) sorted = false;
    out.push(entry);
    i = nul + 21;
  }
  if (!sorted) {
    out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (let k = 1; k < out.length; k++) {
      if (out[k - 1].name === out[k].name) throw new ObjectError(oid, `corrupt (duplicate entry in tree)`);
    }
  }
  return out;
}

// ---- packs ------------------------------------------------------------------------------------------------

class Pack {
  readonly n: number;
  private fd = -1;
  private packSize = 0;
  private ends: Float64Array | null = null; // sorted entry offsets, for the end of each entry
  private reads = 0;

  constructor(readonly packPath: string, readonly idx: Buffer) {
    if (idx.readUInt32BE(0) !== 0xff744f63 || idx.readUInt32BE(4) !== 2) throw new ObjectError(packPath, 'not a version 2 pack index');
    this.n = idx.readUInt32BE(8 + 255 * 4);
  }

  find(key: Buffer): number {
    const idx = this.idx;
    const b = key[0];
    let lo = b === 0 ? 0 : idx.readUInt32BE(8 + (b - 1) * 4);
    let hi = idx.readUInt32BE(8 + b * 4);
    const base = 8 + 1024;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = idx.compare(key, 0, 20, base + mid * 20, base + mid * 20 + 20);
      if (c === 0) return this.offsetAt(mid);
      if (c > 0) hi = mid; else lo = mid + 1;
    }
    return -1;
  }

  *oids(): Generator<string> {
    for (let k = 0; k < this.n; k++) yield this.idx.toString('hex', 1032 + k * 20, 1052 + k * 20);
  }

  private offsetAt(k: number): number {
    const offTable = 8 + 1024 + this.n * 24;
    const v = this.idx.readUInt32BE(offTable + k * 4);
    if (v & 0x80000000) {
      const big = offTable + this.n * 4 + (v & 0x7fffffff) * 8;
      return Number(this.idx.readBigUInt64BE(big));
    }
    return v;
  }

  private open(): void {
    if (this.fd >= 0) return;
    try {
      this.fd = fs.openSync(this.packPath, 'r');
      this.packSize = fs.fstatSync(this.fd).size;
    } catch (e) {
      throw new ObjectError(this.packPath, `unreadable (${(e as Error).message})`);
    }
  }

  private entryEnd(offset: number): number {
    if (!this.ends) {
      const a = new Float64Array(this.n);
      for (let k = 0; k < this.n; k++) a[k] = this.offsetAt(k);
      a.sort();
      this.ends = a;
    }
    const a = this.ends;
    let lo = 0, hi = a.length;
    while (lo < hi) { const mid = (lo + hi) >>> 1; if (a[mid] <= offset) lo = mid + 1; else hi = mid; }
    return lo < a.length ? a[lo] : this.packSize - 20;
  }

  // Reads go through a window of the pack: a command that reads many entries mostly reads them in pack order (a
  // layer's blobs as commit wrote them), and one read of a window then serves many entries, instead of a system
  // call for each header and each entry's data (60,000 of them, 0.7 s of 2.4 s of CPU, when a live mount
  // extracted the 20,000-file bench tree). The window doubles while reads go forward past it and falls back to
  // MIN_WINDOW after a jump, so a random read costs one small read. A pack never changes once written.
  private win: Buffer = Buffer.alloc(0);
  private winAt = 0;
  private winSize = MIN_WINDOW;
  /** The memory the window is read into, kept from one window to the next (fresh memory costs a page fault a page). */
  private winBuf: Buffer = Buffer.alloc(0);

  /**
   * Up to `len` bytes of the pack at `offset` (fewer at its end): a view of the window, valid until the next read
   * of this pack (the window's memory is read into again).
   */
  private bytes(offset: number, len: number): Buffer {
    const rel = offset - this.winAt;
    if (rel >= 0 && rel + len <= this.win.length) return this.win.subarray(rel, rel + len);
    const avail = Math.max(0, this.packSize - offset);
    if (len >= MAX_WINDOW) {
      const buf = Buffer.allocUnsafe(Math.min(len, avail));
      return buf.subarray(0, readFully(this.fd, buf, offset));
    }
    this.winSize = rel >= 0 && rel <= this.win.length + this.winSize ? Math.min(this.winSize * 2, MAX_WINDOW) : MIN_WINDOW;
    const want = Math.min(Math.max(len, this.winSize), avail);
    if (this.winBuf.length < want) this.winBuf = Buffer.allocUnsafeSlow(want);
    holdWindow(this, this.winBuf.length);
    this.win = this.winBuf.subarray(0, readFully(this.fd, this.winBuf.subarray(0, want), offset));
    this.winAt = offset;
    return this.win.subarray(0, Math.min(len, this.win.length));
  }

  /** Let the window go (the budget of all packs' windows is spent, or the pack is closed). */
  dropWindow(): void {
    this.win = Buffer.alloc(0);
    this.winBuf = this.win;
    this.winSize = MIN_WINDOW;
    releaseWindow(this);
  }

  /** The entry at `offset`: its type number, content size (of the delta, for a delta) and where its data starts. */
  entryHead(offset: number): { typeNum: number; size: number; start: number } {
    this.open();
    const head = this.bytes(offset, 32);
    const got = head.length;
    let p = 0, c = head[p++], size = c & 15, shift = 4;
    const typeNum = (c >> 4) & 7;
    while (c & 0x80) { if (p >= got) throw new ObjectError(String(offset), 'corrupt (truncated pack entry)'); c = head[p++]; size += (c & 0x7f) * 2 ** shift; shift += 7; }
    return { typeNum, size, start: offset + p };
  }

  /** A whole blob entry under `limit` bytes: its compressed bytes (a view of the window) and size; else null. */
  wholeBlob(offset: number, limit: number): { comp: Buffer; size: number } | null {
    const { typeNum, size, start } = this.entryHead(offset);
    if (typeNum !== 3 || size >= limit) return null;
    const end = this.entryEnd(offset);
    if (end <= start) return null;
    const comp = this.bytes(start, end - start);
    return comp.length === end - start ? { comp, size } : null;
  }

  /** Stream a whole (not deltified) blob entry to a new file `dest`, checking its size and hash. */
  async streamTo(oid: string, offset: number, dest: Buffer, mode: number): Promise<void> {
    const { typeNum, size, start } = this.entryHead(offset);
    if (typeNum !== 3) throw new ObjectError(oid, 'not a whole blob entry');
    const end = this.entryEnd(offset);
    if (end <= start) throw new ObjectError(oid, 'corrupt (truncated pack)');
    await streamInflateTo(oid, fs.createReadStream(this.packPath, { start, end: end - 1 }), dest, mode, `blob ${size}\0`);
  }

  /** A whole (not deltified) blob entry's content as chunks, checked against its size and oid. */
  async *blobChunks(oid: string, offset: number): AsyncGenerator<Buffer> {
    const { typeNum, size, start } = this.entryHead(offset);
    if (typeNum !== 3) throw new ObjectError(oid, 'not a whole blob entry');
    const end = this.entryEnd(offset);
    if (end <= start) throw new ObjectError(oid, 'corrupt (truncated pack)');
    yield* inflateChunks(oid, fs.createReadStream(this.packPath, { start, end: end - 1 }), `blob ${size}\0`);
  }

  /**
   * The content size of the entry at `offset`, without inflating the object: a whole entry's header gives it;
   * a delta's result size is the second number at the start of its delta data, so only the first bytes of that
   * are inflated (never the base, nor the whole delta).
   */
  sizeAt(oid: string, offset: number): number {
    this.open();
    // One read for the entry header and the first compressed bytes; more only if those do not hold the sizes.
    let want = 96;
    for (;;) {
      const len = Math.max(0, Math.min(want, this.packSize - 20 - offset));
      const buf = this.bytes(offset, len);
      const got = buf.length;
      let p = 0, c = buf[p++], size = c & 15, shift = 4;
      const typeNum = (c >> 4) & 7;
      while (c & 0x80) { if (p >= got) throw new ObjectError(oid, 'corrupt (truncated pack entry)'); c = buf[p++]; size += (c & 0x7f) * 2 ** shift; shift += 7; }
      if (typeNum >= 1 && typeNum <= 4) return size;
      if (typeNum === 6) { do { if (p >= got) throw new ObjectError(oid, 'corrupt (truncated pack entry)'); c = buf[p++]; } while (c & 0x80); }
      else if (typeNum === 7) p += 20;
      else throw new ObjectError(oid, `corrupt (bad pack entry type ${typeNum})`);
      if (p > got) throw new ObjectError(oid, 'corrupt (truncated pack entry)');
      const out = inflateHead(buf.subarray(p, got));
      const sizes = out && deltaSizes(out);
      if (sizes) return sizes.result;
      const end = this.entryEnd(offset);
      if (offset + got >= end) throw new ObjectError(oid, 'corrupt (bad delta header)');
      want = want < 4096 ? Math.min(4096, end - offset) : end - offset;
    }
  }

  read(oid: string, offset: number, store: ObjectStore, depth = 0): GitObject {
    this.open();
    if (depth > 5000) throw new ObjectError(oid, 'corrupt (delta chain too deep)');
    const head = this.bytes(offset, 32);
    const got = head.length;
    let p = 0;
    let c = head[p++];
    const typeNum = (c >> 4) & 7;
    let size = c & 15;
    let shift = 4;
    while (c & 0x80) { if (p >= got) throw new ObjectError(oid, 'corrupt (truncated pack entry)'); c = head[p++]; size += (c & 0x7f) * 2 ** shift; shift += 7; }
    let baseOffset = -1;
    let baseOid = '';
    if (typeNum === 6) {
      c = head[p++];
      let off = c & 0x7f;
      while (c & 0x80) { c = head[p++]; off = (off + 1) * 128 + (c & 0x7f); }
      baseOffset = offset - off;
    } else if (typeNum === 7) {
      baseOid = head.toString('hex', p, p + 20);
      p += 20;
    } else if (!NUM_TYPE[typeNum]) {
      throw new ObjectError(oid, `corrupt (bad pack entry type ${typeNum})`);
    }
    const start = offset + p;
    let data: Buffer | null = null;
    // One output chunk of the known size (zlib's default is 16 KiB chunks, concatenated).
    const inflateOpts = { chunkSize: Math.min(Math.max(size, 64), 64 << 20) };
    // Deflate output is at most a little larger than its input (zlib's deflateBound), and inflate stops at the
    // end of the stream, so a read of that bound needs no knowledge of where the next entry starts. A command
    // that reads many entries sorts the pack's offsets once and reads each entry's bytes exactly (about half).
    const exact = ++this.reads > 64 || this.ends !== null;
    const guess = Math.min(exact ? this.entryEnd(offset) - start : size + (size >>> 10) + 64, this.packSize - 20 - start);
    if (guess > 0) {
      try { data = zlib.inflateSync(this.bytes(start, guess), inflateOpts); } catch { data = null; }
    }
    if (data === null) {
      const end = this.entryEnd(offset);
      if (end <= start || end > this.packSize) throw new ObjectError(oid, 'corrupt (truncated pack)');
      const comp = this.bytes(start, end - start);
      if (comp.length !== end - start) throw new ObjectError(oid, 'corrupt (truncated pack)');
      try { data = zlib.inflateSync(comp); } catch { throw new ObjectError(oid, 'corrupt (bad compressed data)'); }
    }
    if (data.length !== size) throw new ObjectError(oid, 'corrupt (size mismatch)');
    if (typeNum <= 4) return { type: NUM_TYPE[typeNum], data };
    const base = typeNum === 6 ? this.readBase(oid, baseOffset, store, depth + 1) : store.read(baseOid);
    return { type: base.type, data: applyDelta(oid, base.data, data) };
  }

  // Delta bases, by offset: packs made by git chain many objects on the same bases, so keep recent ones
  // (up to BASE_CACHE_BYTES) instead of inflating a chain again for every object that uses it.
  private readonly bases = new Map<number, GitObject>();
  private baseBytes = 0;

  private readBase(oid: string, offset: number, store: ObjectStore, depth: number): GitObject {
    const hit = this.bases.get(offset);
    if (hit) { this.bases.delete(offset); this.bases.set(offset, hit); return hit; }
    const obj = this.read(oid, offset, store, depth);
    if (obj.data.length < BASE_CACHE_BYTES / 8) {
      this.bases.set(offset, obj);
      this.baseBytes += obj.data.length;
      for (const [k, v] of this.bases) {
        if (this.baseBytes <= BASE_CACHE_BYTES) break;
        this.bases.delete(k);
        this.baseBytes -= v.data.length;
      }
    }
    return obj;
  }

  close(): void {
    // A read-only descriptor: a close that fails has still released it.
    if (this.fd >= 0) { try { fs.closeSync(this.fd); } catch { /* released all the same */ } }
    this.fd = -1;
    this.dropWindow();
  }
}

/** Read `buf.length` bytes at `offset`, fewer only at the end of the file; returns how many. */
function readFully(fd: number, buf: Buffer, offset: number): number {
  let got = 0;
  while (got < buf.length) {
    const n = fs.readSync(fd, buf, got, buf.length - got, offset + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/** Apply git delta `delta` to `base` (for object `oid`, named in errors). */
export function applyDelta(oid: string, base: Buffer, delta: Buffer): Buffer {
  let p = 0;
  const varint = (): number => {
    let v = 0, s = 0, c;
    do { c = delta[p++]; v += (c & 0x7f) * 2 ** s; s += 7; } while (c & 0x80);
    return v;
  };
  const baseSize = varint();
  const size = varint();
  if (baseSize !== base.length) throw new ObjectError(oid, 'corrupt (delta base size mismatch)');
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  while (p < delta.length) {
    const op = delta[p++];
    if (op & 0x80) {
      let off = 0, len = 0;
      if (op & 1) off |= delta[p++];
      if (op & 2) off |= delta[p++] << 8;
      if (op & 4) off |= delta[p++] << 16;
      if (op & 8) off = (off | (delta[p++] << 24)) >>> 0;
      if (op & 16) len |= delta[p++];
      if (op & 32) len |= delta[p++] << 8;
      if (op & 64) len |= delta[p++] << 16;
      if (len === 0) len = 0x10000;
      if (off + len > base.length || o + len > size) throw new ObjectError(oid, 'corrupt (bad delta)');
      base.copy(out, o, off, off + len);
      o += len;
    } else if (op) {
      if (o + op > size || p + op > delta.length) throw new ObjectError(oid, 'corrupt (bad delta)');
      delta.copy(out, o, p, p + op);
      o += op; p += op;
    } else throw new ObjectError(oid, 'corrupt (bad delta opcode)');
  }
  if (o !== size) throw new ObjectError(oid, 'corrupt (delta size mismatch)');
  return out;
}

/** What a zlib stream's first bytes inflate to (as much as they give), or null when they are not zlib data. */
function inflateHead(comp: Buffer): Buffer | null {
  // Small output chunks: the header is in the first few dozen bytes (zlib's default chunk is 16 KiB, allocated
  // on every call).
  try { return zlib.inflateSync(comp, { finishFlush: zlib.constants.Z_SYNC_FLUSH, chunkSize: 1024 }); } catch { return null; }
}

/** The base and result sizes a delta starts with, or null when `delta` is too short to hold both. */
function deltaSizes(delta: Buffer): { base: number; result: number } | null {
  let p = 0;
  const varint = (): number => {
    let v = 0, s = 0, c;
    do { if (p >= delta.length || s > 49) return -1; c = delta[p++]; v += (c & 0x7f) * 2 ** s; s += 7; } while (c & 0x80);
    return v;
  };
  const base = varint();
  const result = base < 0 ? -1 : varint();
  return result < 0 ? null : { base, result };
}

// ---- the store --------------------------------------------------------------------------------------------

export class ObjectStore implements TreeSink {
  readonly objectsDir: string;
  private packs: Pack[] | null = null;
  private readonly trees = new Map<string, readonly TreeEntry[]>();
  /** Trees made in memory (unions, scans) that may not be in the store: persist() writes what is needed. */
  private readonly memTrees = new Map<string, readonly TreeEntry[]>();

  constructor(readonly gitdir: string) {
    this.objectsDir = pjoin(commonDir(gitdir), 'objects');
  }

  private loadPacks(): Pack[] {
    if (this.packs) return this.packs;
    const dir = pjoin(this.objectsDir, 'pack');
    const packs: Pack[] = [];
    let names: string[] = [];
    try { names = fs.readdirSync(dir); } catch (e) { if (!isAbsent(e)) throw e; /* no packs */ }
    for (const name of names.sort()) {
      if (!name.endsWith('.idx')) continue;
      const packPath = pjoin(dir, name.slice(0, -4) + '.pack');
      try {
        packs.push(new Pack(packPath, fs.readFileSync(pjoin(dir, name))));
      } catch (e) {
        if (e instanceof ObjectError) throw e;
        throw new ObjectError(name, `unreadable (${(e as Error).message})`);
      }
    }
    this.packs = packs;
    return packs;
  }

  /** Forget the list of packs (after another writer added one). */
  rescan(): void {
    for (const p of this.packs ?? []) p.close();
    this.packs = null;
    this.lastPacked = null;
  }

  private loosePath(oid: string): string {
    return pjoin(this.objectsDir, oid.slice(0, 2), oid.slice(2));
  }

  has(oid: string): boolean {
    return this.packed(oid) !== null || this.hasLoose(oid);
  }

  /** Whether `oid` is a loose object. */
  private hasLoose(oid: string): boolean {
    return fs.existsSync(this.loosePath(oid));
  }

  /**
   * has() for many lookups in a row: loose objects are looked for only in the fan-out directories there are now
   * (one readdir, not a file system call per object). An object written since into a new directory counts as
   * absent: fine for a writer, which then writes it again (git allows an object both loose and packed).
   */
  presence(): (oid: string) => boolean {
    const fanout = this.looseFanout();
    return (oid) => this.packed(oid) !== null || (fanout.has(oid.slice(0, 2)) && this.hasLoose(oid));
  }

  /** The fan-out directories of loose objects (`objects/xx`) there are now. */
  private looseFanout(): Set<string> {
    let names: string[] = [];
    try { names = fs.readdirSync(this.objectsDir); } catch (e) { if (!isAbsent(e)) throw e; }
    return new Set(names.filter((n) => /^[0-9a-f]{2}$/.test(n)));
  }

  /** Where a packed object is (packs are searched in memory, before any file system call). */
  private packed(oid: string): { pack: Pack; offset: number } | null {
    // has() then read() of one oid is the usual sequence: the last answer is kept.
    if (this.lastPacked?.oid === oid) return this.lastPacked.at;
    const key = Buffer.from(oid, 'hex');
    let at: { pack: Pack; offset: number } | null = null;
    for (const pack of this.loadPacks()) {
      const offset = pack.find(key);
      if (offset >= 0) { at = { pack, offset }; break; }
    }
    this.lastPacked = { oid, at };
    return at;
  }

  private lastPacked: { oid: string; at: { pack: Pack; offset: number } | null } | null = null;

  read(oid: string, retried = false): GitObject {
    const at = this.packed(oid);
    if (at) {
      try { return at.pack.read(oid, at.offset, this); } catch (e) {
        // A gc (api/gc.ts) may have replaced the pack since we listed them: look again, once.
        if (retried || !(e instanceof ObjectError) || fs.existsSync(at.pack.packPath)) throw e;
        this.rescan();
        return this.read(oid, true);
      }
    }
    let raw: Buffer | null = null;
    try { raw = fs.readFileSync(this.loosePath(oid)); } catch (e) {
      // The system's refusals (EIO, ENOSPC, EACCES) stay what they are: callers undo their partial work on them,
      // and the CLI reports them as I/O errors (exit 74/77), not as a damaged store.
      if (isSystemRefusal(e)) throw withPath(e, this.loosePath(oid));
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new ObjectError(oid, `unreadable (${(e as NodeJS.ErrnoException).code})`);
    }
    if (raw) return parseLoose(oid, raw);
    // git treats the empty tree as always present; so do we, for reading.
    if (oid === EMPTY_TREE) return { type: 'tree', data: Buffer.alloc(0) };
    // Packed by a gc since we listed the packs (its loose copy is gone): look again, once.
    if (!retried && this.packs !== null) { this.rescan(); return this.read(oid, true); }
    throw new ObjectError(oid, 'missing');
  }

  readType(oid: string, type: ObjectType): Buffer {
    const o = this.read(oid);
    if (o.type !== type) throw new ObjectError(oid, `a ${o.type}, not a ${type}`);
    return o.data;
  }

  readTree(oid: string): readonly TreeEntry[] {
    let t = this.trees.get(oid) ?? this.memTrees.get(oid);
    if (!t) {
      const p = this.provided(oid);
      if (p) return p;
      t = parseTree(oid, this.readType(oid, 'tree'));
      this.trees.set(oid, t);
    }
    return t;
  }

  /** Compute a tree's oid and keep it in memory; persist() writes it to disk when it must last. */
  writeTree(entries: readonly TreeEntry[]): string {
    if (entries.length === 0) return EMPTY_TREE;
    const oid = hashObject('tree', encodeTree(entries));
    if (!this.trees.has(oid) && !this.memTrees.has(oid)) this.memTrees.set(oid, entries);
    return oid;
  }

  private readonly providers: Array<(oid: string) => readonly TreeEntry[] | undefined> = [];

  private provided(oid: string): readonly TreeEntry[] | undefined {
    for (const provide of this.providers) {
      const p = provide(oid);
      if (p) { this.memTrees.set(oid, p); return p; }
    }
    return undefined;
  }

  /** Trees whose oids the caller knows (an index built from a tree walk), asked for only when needed. */
  addTreeProvider(provide: (oid: string) => readonly TreeEntry[] | undefined): void {
    this.providers.push(provide);
  }

  /** Add to `w` every in-memory tree reachable from `root` that the store lacks. */
  persistTrees(w: ObjectWriter, root: string): void {
    for (const data of this.missingTrees([root])) w.add('tree', data);
  }

  /**
   * The encoded in-memory trees reachable from `roots` that the store lacks, each once: what persistTrees would
   * write (a caller that wants to know how many objects a batch will hold asks first).
   */
  missingTrees(roots: readonly string[]): Buffer[] {
    // Iterative (a tree can be 10,000 directories deep); a pack may hold its objects in any order.
    const out: Buffer[] = [];
    const seen = new Set<string>();
    const todo = [...roots];
    while (todo.length) {
      const oid = todo.pop()!;
      if (seen.has(oid)) continue;
      seen.add(oid);
      if (oid === EMPTY_TREE) { if (!this.has(oid)) out.push(Buffer.alloc(0)); continue; }
      const mem = this.memTrees.get(oid) ?? (this.trees.has(oid) ? undefined : this.provided(oid));
      if (!mem) continue; // came from the store: already there, with all it names
      for (const e of mem) if (e.mode === '40000') todo.push(e.oid);
      if (!this.has(oid)) out.push(encodeTree(mem));
    }
    return out;
  }


  /** Size of an object's content, reading only its header where it can. */
  sizeOf(oid: string): number {
    const at = this.packed(oid);
    if (at) {
      try { return at.pack.sizeAt(oid, at.offset); } catch (e) {
        // A gc may have replaced the pack since we listed them: read() looks again.
        if (!(e instanceof ObjectError) || fs.existsSync(at.pack.packPath)) throw e;
        return this.read(oid).data.length;
      }
    }
    const head = readLooseHeader(oid, this.loosePath(oid));
    if (head) return head.size;
    return this.read(oid).data.length;
  }

  /** Write blob `oid` to `dest` (a byte path Buffer) with `mode`; streams large loose blobs. Returns bytes. */
  async writeBlobTo(oid: string, dest: Buffer, mode: number): Promise<void> {
    const small = this.readSmallBlob(oid);
    if (small) { fs.writeFileSync(dest, small, { mode, flag: 'wx' }); return; }
    const at = this.packed(oid);
    if (at) await at.pack.streamTo(oid, at.offset, dest, mode);
    else await streamInflateTo(oid, fs.createReadStream(this.loosePath(oid)), dest, mode, null);
  }

  /** A blob's content as a stream of chunks (a large blob, loose or packed whole, is inflated as it is read). */
  async *blobChunks(oid: string): AsyncGenerator<Buffer> {
    const small = this.readSmallBlob(oid);
    if (small) { yield small; return; }
    const at = this.packed(oid);
    if (at) yield* at.pack.blobChunks(oid, at.offset);
    else yield* inflateChunks(oid, fs.createReadStream(this.loosePath(oid)), null);
  }

  /**
   * A blob's content, or null when it is large (1 MiB or more) and stored whole, loose or in a pack, so that it
   * can be streamed (writeBlobTo, blobChunks). A deltified blob is rebuilt in memory (git does not deltify blobs
   * over core.bigFileThreshold, 512 MiB).
   */
  readSmallBlob(oid: string): Buffer | null {
    const at = this.packed(oid);
    if (at) {
      const head = at.pack.entryHead(at.offset);
      if (head.typeNum === 3 && head.size >= STREAMED) return null;
    } else {
      const st = fs.statSync(this.loosePath(oid), { throwIfNoEntry: false });
      if (st && st.size >= STREAMED) return null;
    }
    return this.readType(oid, 'blob');
  }

  /**
   * A blob stored whole in a pack and under 1 MiB: its compressed bytes (a view of the pack's read window, valid
   * until the next read of the store: copy it, do not keep or change it) and its size, for a writer thread to
   * inflate (fs/file-writer.ts); null for anything else (loose, a delta, large, absent), which readSmallBlob reads.
   */
  packedBlobData(oid: string): { comp: Buffer; size: number } | null {
    const at = this.packed(oid);
    return at ? at.pack.wholeBlob(at.offset, STREAMED) : null;
  }

  /** A new batch of objects; `expected`: how many it will hold, when the caller knows (see ObjectWriter). */
  writer(expected = 0): ObjectWriter {
    return new ObjectWriter(this, expected);
  }

  /**
   * Write an object loose whether or not a pack holds it (gc keeps a young unreachable object loose before the
   * pack that holds it goes). Returns its id.
   */
  writeLoose(type: ObjectType, data: Buffer): string {
    const w = new ObjectWriter(this, 0, true);
    const oid = w.add(type, data);
    w.flush();
    return oid;
  }

  /** Called by ObjectWriter once a pack is in place. */
  addedPack(): void {
    this.rescan();
  }

  /** The packs as listed now: each file's path, its objects and its (version 2) index. */
  packList(): Array<{ path: string; oids: () => Iterable<string>; idx: Buffer }> {
    return this.loadPacks().map((p) => ({ path: p.packPath, oids: () => p.oids(), idx: p.idx }));
  }

  /** The loose objects' ids. */
  *looseOids(): Generator<string> {
    let dirs: string[] = [];
    try { dirs = fs.readdirSync(this.objectsDir); } catch { return; }
    for (const d of dirs) {
      if (!/^[0-9a-f]{2}$/.test(d)) continue;
      for (const f of fs.readdirSync(pjoin(this.objectsDir, d))) if (/^[0-9a-f]{38}$/.test(f)) yield d + f;
    }
  }

  /** Where a loose object is (whether or not it exists). */
  looseFile(oid: string): string {
    return this.loosePath(oid);
  }

  *allOids(): Generator<string> {
    for (const p of this.loadPacks()) yield* p.oids();
    let dirs: string[] = [];
    try { dirs = fs.readdirSync(this.objectsDir); } catch (e) { if (isAbsent(e)) return; throw e; }
    for (const d of dirs) {
      if (!/^[0-9a-f]{2}$/.test(d)) continue;
      for (const f of fs.readdirSync(pjoin(this.objectsDir, d))) if (/^[0-9a-f]{38}$/.test(f)) yield d + f;
    }
  }

  close(): void {
    for (const p of this.packs ?? []) p.close();
  }
}

function parseLoose(oid: string, raw: Buffer): GitObject {
  let buf: Buffer;
  try { buf = zlib.inflateSync(raw); } catch { throw new ObjectError(oid, 'corrupt (bad compressed data)'); }
  const nul = buf.indexOf(0);
  const sp = buf.indexOf(0x20);
  if (nul < 0 || sp < 0 || sp > nul) throw new ObjectError(oid, 'corrupt (bad header)');
  const type = buf.toString('latin1', 0, sp) as ObjectType;
  const size = Number(buf.toString('latin1', sp + 1, nul));
  if (!(type in TYPE_NUM)) throw new ObjectError(oid, `corrupt (unknown type ${type})`);
  const data = buf.subarray(nul + 1);
  if (data.length !== size) throw new ObjectError(oid, 'corrupt (size mismatch)');
  if (type !== 'blob' && hashObject(type, data) !== oid) throw new ObjectError(oid, 'corrupt (hash mismatch)');
  return { type, data };
}

/**
 * A loose object's type and size from the first bytes of its file (inflating only those), or null when there is
 * no such file.
 */
function readLooseHeader(oid: string, file: string): { type: string; size: number } | null {
  let fd: number;
  try { fd = fs.openSync(file, 'r'); } catch (e) {
    if (isAbsent(e)) return null;
    throw new ObjectError(oid, `unreadable (${(e as NodeJS.ErrnoException).code})`);
  }
  try {
    // "blob 123\0" comes out of the first few dozen bytes; a large dynamic Huffman table can take more.
    for (let want = 128; ; want *= 8) {
      const buf = Buffer.allocUnsafe(want);
      const n = fs.readSync(fd, buf, 0, want, 0);
      const out = inflateHead(buf.subarray(0, n));
      if (!out) throw new ObjectError(oid, 'corrupt (bad compressed data)');
      const nul = out.indexOf(0);
      if (nul < 0 && n === want && want < 1 << 24) continue;
      const sp = out.indexOf(0x20);
      if (nul < 0 || sp < 0 || sp > nul) throw new ObjectError(oid, 'corrupt (bad header)');
      return { type: out.toString('latin1', 0, sp), size: Number(out.toString('latin1', sp + 1, nul)) };
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Blobs stored whole at least this large are streamed to files, never held in memory. */
const STREAMED = 1024 * 1024;

/**
 * Inflate a zlib stream into a new file `dest`, checking the blob's size and hash. `header`: the object header
 * the stream lacks (a pack entry); null when the stream starts with its own (a loose object).
 */
/** The content of a zlib-compressed blob, checked against its size and oid as it is read. */
async function* inflateChunks(oid: string, source: fs.ReadStream, header: string | null): AsyncGenerator<Buffer> {
  let needHeader = header === null;
  let expected = -1;
  let seen = 0;
  const hash = createHash('sha1');
  if (header !== null) { hash.update(header); expected = Number(header.slice(5, -1)); }
  const inflate = zlib.createInflate();
  source.on('error', (e) => inflate.destroy(e)).pipe(inflate);
  try {
    for await (let chunk of inflate as AsyncIterable<Buffer>) {
      hash.update(chunk);
      if (needHeader) {
        const nul = chunk.indexOf(0);
        if (nul < 0) throw new ObjectError(oid, 'corrupt (bad header)');
        const head = chunk.toString('latin1', 0, nul);
        if (!head.startsWith('blob ')) throw new ObjectError(oid, 'not a blob');
        expected = Number(head.slice(5));
        needHeader = false;
        chunk = chunk.subarray(nul + 1);
      }
      seen += chunk.length;
      if (chunk.length) yield chunk;
    }
  } catch (e) {
    if (e instanceof ObjectError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code && code.startsWith('Z_')) throw new ObjectError(oid, 'corrupt (bad compressed data)');
    throw e;
  } finally {
    source.destroy();
  }
  if (seen !== expected) throw new ObjectError(oid, 'corrupt (size mismatch)');
  if (hash.digest('hex') !== oid) throw new ObjectError(oid, 'corrupt (hash mismatch)');
}

async function streamInflateTo(oid: string, source: fs.ReadStream, dest: Buffer, mode: number, header: string | null): Promise<void> {
  await pipeline(inflateChunks(oid, source, header), fs.createWriteStream(dest, { mode, flags: 'wx' }));
}

// ---- writing ----------------------------------------------------------------------------------------------

/** Raw bytes a batch keeps in memory; past this (or PACK_THRESHOLD objects) it goes to a pack file on disk. */
const SPILL_BYTES = 4 * 1024 * 1024;

/**
 * A batch of new objects, in bounded memory whatever its size. A small batch (fewer than PACK_THRESHOLD objects,
 * under SPILL_BYTES) stays in memory and is written as loose objects; a larger one is written to a temporary pack
 * file as objects are added, keeping only each object's id, offset and CRC (40 bytes) in memory, and its index
 * is made from those. Nothing is visible until `flush()`: the pack is synced and renamed, its index last; loose
 * objects are each written to a temporary name, synced and renamed. `discard()` takes an unflushed batch back.
 *
 * `expected`, when the caller knows how many objects the batch will hold, lets the pack's header (which holds
 * the count, and is covered by the pack's checksum) be right from the start; otherwise the header is rewritten
 * at the end and the checksum computed by reading the pack back once.
 */
export class ObjectWriter {
  private mem: Array<{ oid: string; type: ObjectType; data: Buffer }> = [];
  private memBytes = 0;
  private readonly memOids = new Set<string>();
  private pack: PackWriter | null = null;

  /** `always`: write objects the store has already (in a pack) too. */
  constructor(private readonly store: ObjectStore, private readonly expected = 0, private readonly always = false) {}

  /** Objects in the batch. */
  get size(): number { return this.mem.length + (this.pack?.count ?? 0); }

  /** Whether the batch already holds `oid`. */
  holds(oid: string): boolean {
    return this.memOids.has(oid) || (this.pack !== null && this.pack.has(Buffer.from(oid, 'hex')));
  }

  add(type: ObjectType, data: Buffer): string {
    const oid = hashObject(type, data);
    if (this.holds(oid) || (!this.always && this.inStore(oid))) return oid;
    if (this.pack) { this.pack.add(oid, type, data); return oid; }
    this.mem.push({ oid, type, data });
    this.memOids.add(oid);
    this.memBytes += data.length;
    if (this.mem.length >= PACK_THRESHOLD || this.memBytes > SPILL_BYTES) this.toPack();
    return oid;
  }

  private present: ((oid: string) => boolean) | null = null;

  /** Whether the store has `oid` already (ObjectStore.presence(), from the first call on). */
  private inStore(oid: string): boolean {
    this.present ??= this.store.presence();
    return this.present(oid);
  }

  private parallelOn = false;

  /**
   * Deflate the small blobs addStream() takes on a second thread, once the batch goes to a pack (import: the
   * main thread parses and hashes while the other deflates). settle() must then be awaited before flush().
   */
  parallel(): this {
    this.parallelOn = true;
    return this;
  }

  /** Wait for the blobs being deflated on the second thread to be in the pack. */
  async settle(): Promise<void> {
    await this.pack?.settle();
  }

  private toPack(): PackWriter {
    if (!this.pack) {
      this.pack = new PackWriter(pjoin(this.store.objectsDir, 'pack'), this.expected);
      for (const o of this.mem) this.pack.add(o.oid, o.type, o.data);
      this.mem = [];
      this.memOids.clear();
      this.memBytes = 0;
    }
    return this.pack;
  }

  /**
   * Add a file's content as a blob. A large file is read once, in pieces: each piece is hashed and deflated (or
   * stored, when it does not compress) straight into the pack. `expectOid` (from a scan) skips a blob the store
   * or the batch already has; a caller compares the returned oid with it to catch a file changed under us.
   */
  async addFile(file: Buffer | string, size: number, expectOid?: string): Promise<string> {
    if (expectOid && (this.holds(expectOid) || this.inStore(expectOid))) return expectOid;
    if (size >= LARGE_BLOB) return this.toPack().addFile(file, size, (oid) => this.holds(oid) || this.inStore(oid));
    if (!this.pack) return this.add('blob', fs.readFileSync(file));
    // Going to the pack: read into a scratch buffer kept for the batch (a new buffer per file is garbage that
    // piles up as external memory until the next collection).
    if (!this.scratch || this.scratch.length < size) this.scratch = Buffer.allocUnsafe(Math.max(size, 64 * 1024));
    return this.add('blob', readInto(file, size, this.scratch));
  }

  private scratch: Buffer | null = null;

  /**
   * Add a blob of `size` bytes read from `source` (for example a tar entry): a small one is held like add(), a
   * large one streams into the pack as addFile does, so memory stays bounded. Throws if the source does not give
   * exactly `size` bytes.
   */
  async addStream(size: number, source: AsyncIterable<Buffer>): Promise<string> {
    if (size >= LARGE_BLOB) return this.toPack().addStream(size, source, (oid) => this.holds(oid) || this.inStore(oid));
    const parts: Buffer[] = [];
    let n = 0;
    for await (const c of source) { parts.push(c); n += c.length; }
    if (n !== size) throw new Error(`stream gave ${n} bytes, expected ${size}`);
    if (this.parallelOn && this.pack && n < FRAMED) {
      // Hashed here, copied once into the batch the other thread deflates.
      const h = blobHasher(n);
      for (const p of parts) h.update(p);
      const oid = h.digest('hex');
      if (this.holds(oid) || (!this.always && this.inStore(oid))) return oid;
      this.pack.queue(oid, parts, n);
      await this.pack.room();
      return oid;
    }
    // One copy: a chunk of a stream is often a view of a much larger buffer that must not stay alive with it.
    return this.add('blob', Buffer.concat(parts, n));
  }

  flush(): void {
    if (this.pack?.busy) throw new Error('ObjectWriter.flush() before settle()');
    if (this.pack && this.pack.count === 0) {
      this.discard();
    } else if (this.pack) {
      try { this.pack.finish(); } finally { this.pack = null; }
      this.store.addedPack();
    } else if (this.mem.length >= PACK_THRESHOLD) {
      this.toPack();
      this.flush();
    } else {
      this.writeLoose();
    }
    this.mem = [];
    this.memOids.clear();
    this.memBytes = 0;
  }

  /** Take back everything not flushed (the temporary pack file). */
  discard(): void {
    this.pack?.discard();
    this.pack = null;
    this.mem = [];
    this.memOids.clear();
    this.memBytes = 0;
  }

  private writeLoose(): void {
    const dirs = new Set<string>();
    for (const o of this.mem) {
      const { oid } = o;
      const dir = pjoin(this.store.objectsDir, oid.slice(0, 2));
      if (!dirs.has(dir)) { fs.mkdirSync(dir, { recursive: true }); dirs.add(dir); }
      const final = pjoin(dir, oid.slice(2));
      const tmp = pjoin(dir, `tmp_obj_${process.pid}_${oid.slice(2, 10)}`);
      const raw = Buffer.concat([Buffer.from(`${o.type} ${o.data.length}\0`, 'latin1'), o.data]);
      const parts: Buffer[] = [];
      deflateObject(raw, (b) => parts.push(Buffer.from(b)));
      writeSynced(tmp, Buffer.concat(parts));
      fs.renameSync(tmp, final);
    }
  }
}

const STAGE = 1 << 20;

/**
 * One pack being written: objects are deflated and appended to a temporary file as they come (through a 1 MiB
 * staging buffer), and hashed into the pack checksum on the way. Per object only its id, offset and CRC stay in
 * memory, in typed arrays, with an open-addressing table over the ids to find duplicates.
 * Also used on its own (store/smart-http.ts) for a pack to send: finishUnindexed(), then discard().
 */
export class PackWriter {
  private readonly tag = `${process.pid}_${Date.now()}_${Math.random().toString(36).slice(2)}`;
  private readonly tmpPack: string;
  private readonly tmpIdx: string;
  private fd: number;
  private pos = 0;
  private readonly stage = Buffer.allocUnsafe(STAGE);
  private staged = 0;
  private hash = createHash('sha1');
  count = 0;
  private oids = Buffer.allocUnsafe(20 * 256);
  private offsets = new Float64Array(256);
  private crcs = new Uint32Array(256);
  private slots = new Int32Array(512).fill(-1);
  private crc = 0;
  private readonly dropAbort: () => void;

  constructor(private readonly dir: string, private readonly headerCount: number) {
    fs.mkdirSync(dir, { recursive: true });
    this.tmpPack = pjoin(dir, `tmp_pack_${this.tag}`);
    this.tmpIdx = pjoin(dir, `tmp_idx_${this.tag}`);
    this.fd = fs.openSync(this.tmpPack, 'wx+');
    // A signal (sys/abort.ts) takes the temporary files away before the process exits.
    this.dropAbort = onAbort(() => { fs.rmSync(this.tmpPack, { force: true }); fs.rmSync(this.tmpIdx, { force: true }); });
    this.emit(packHeader(headerCount));
  }

  has(key: Buffer): boolean {
    return this.slots[this.slotOf(key)] >= 0;
  }

  /** The slot holding `key`, or the empty slot where it would go. */
  private slotOf(key: Buffer): number {
    const mask = this.slots.length - 1;
    for (let s = key.readUInt32BE(0) & mask; ; s = (s + 1) & mask) {
      const k = this.slots[s];
      if (k < 0 || this.oids.compare(key, 0, 20, k * 20, k * 20 + 20) === 0) return s;
    }
  }

  private emit(b: Buffer): void {
    this.crc = zlib.crc32(b, this.crc);
    if (this.staged + b.length > STAGE) this.flushStage();
    if (b.length >= STAGE) { this.hash.update(b); this.writeAt(b); return; }
    b.copy(this.stage, this.staged);
    this.staged += b.length;
  }

  private flushStage(): void {
    if (this.staged === 0) return;
    const b = this.stage.subarray(0, this.staged);
    this.hash.update(b);
    this.writeAt(b);
    this.staged = 0;
  }

  private writeAt(b: Buffer): void {
    let w = 0;
    while (w < b.length) w += fs.writeSync(this.fd, b, w, b.length - w, this.pos + w);
    this.pos += b.length;
  }

  /** Where the next entry starts (staged bytes included). */
  private get end(): number { return this.pos + this.staged; }

  add(oid: string, type: ObjectType, data: Buffer): void {
    const start = this.end;
    this.crc = 0;
    this.emit(packEntryHeader(TYPE_NUM[type], data.length));
    deflateObject(data, (b) => this.emit(b));
    this.record(Buffer.from(oid, 'hex'), start);
  }

  // ---- blobs deflated on other threads (ObjectWriter.parallel) ----
  // Blobs are copied into a batch; a full batch goes to a deflate thread (round robin over DEFLATE_THREADS),
  // which returns each blob's pack entry (header and zlib stream) and CRC. An entry is recorded (id, so has()
  // sees it) when queued; its offset and CRC are set when the answer is appended. Answers are appended in the
  // order the batches were sent; at most IN_FLIGHT batches are out at a time, so memory stays bounded. Entries
  // written meanwhile by add() go before them, which is fine: each entry is whole on its own.
  private workers: Worker[] = [];
  private batch: { buf: Buffer; used: number; keys: number[]; sizes: number[] } | null = null;
  /** Batches out, oldest first, with the answer once it came. */
  private readonly sent: Array<{ seq: number; keys: number[]; answer: DeflateAnswer | null }> = [];
  private seq = 0;
  private readonly spares: ArrayBuffer[] = [];
  private failed: Error | null = null;
  private waiters: Array<() => void> = [];

  /** Whether blobs are still with the deflate threads (or waiting to go). */
  get busy(): boolean { return this.batch !== null || this.sent.length > 0; }

  queue(oid: string, parts: Buffer[], n: number): void {
    if (this.failed) throw this.failed;
    if (this.batch && this.batch.used + n > this.batch.buf.length) this.send();
    if (!this.batch) {
      // A batch buffer a thread gave back, else a new one (reused: fresh memory costs a page fault per 4 KiB).
      const spare = n <= BATCH ? this.spares.pop() : undefined;
      this.batch = { buf: spare ? Buffer.from(spare) : Buffer.allocUnsafeSlow(Math.max(BATCH, n)), used: 0, keys: [], sizes: [] };
    }
    const b = this.batch;
    for (const p of parts) { p.copy(b.buf, b.used); b.used += p.length; }
    this.crc = 0;
    b.keys.push(this.record(Buffer.from(oid, 'hex'), -1));
    b.sizes.push(n);
  }

  /** Resolves when fewer than IN_FLIGHT batches are out. */
  async room(): Promise<void> {
    while (this.sent.length >= IN_FLIGHT && !this.failed) await this.wait();
    if (this.failed) throw this.failed;
  }

  /** Resolves when every queued blob is in the pack. */
  async settle(): Promise<void> {
    if (this.batch && !this.failed) this.send();
    while (this.sent.length && !this.failed) await this.wait();
    if (this.failed) throw this.failed;
  }

  private wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private fail(e: Error): void {
    this.failed ??= e;
    this.wake();
  }

  private send(): void {
    const b = this.batch!;
    this.batch = null;
    const seq = this.seq++;
    const k = seq % DEFLATE_THREADS;
    if (!this.workers[k]) {
      const w = startWorker(DEFLATE_WORKER);
      w.on('message', (m: DeflateAnswer) => this.received(m));
      w.on('error', (e) => this.fail(new ObjectError(this.tmpPack, `deflate thread failed (${e.message})`)));
      w.on('exit', () => { if (this.sent.length) this.fail(new ObjectError(this.tmpPack, 'deflate thread exited')); });
      this.workers[k] = w;
    }
    this.sent.push({ seq, keys: b.keys, answer: null });
    for (const w of this.workers) w.ref();
    const sizes = Uint32Array.from(b.sizes);
    const buf = b.buf.buffer as ArrayBuffer;
    this.workers[k].postMessage({ seq, buf, sizes }, [buf, sizes.buffer]);
  }

  private received(m: DeflateAnswer): void {
    if (this.fd < 0 || !this.sent.length) return;
    const at = m.seq - this.sent[0].seq;
    if (at < 0 || at >= this.sent.length) return;
    this.sent[at].answer = m;
    while (this.sent.length && this.sent[0].answer) {
      const { keys, answer } = this.sent.shift()!;
      const a = answer!;
      if (a.buf.byteLength === BATCH && this.spares.length < IN_FLIGHT) this.spares.push(a.buf);
      let off = this.end;
      for (let i = 0; i < keys.length; i++) {
        this.offsets[keys[i]] = off;
        this.crcs[keys[i]] = a.crcs[i];
        off += a.lens[i];
      }
      this.append(Buffer.from(a.out));
    }
    if (!this.sent.length) for (const w of this.workers) w.unref();
    this.wake();
  }

  /** Bytes to the pack (through the staging buffer unless large), outside any entry's CRC. */
  private append(b: Buffer): void {
    if (this.staged + b.length > STAGE || b.length >= 64 * 1024) this.flushStage();
    if (b.length >= 64 * 1024) { this.hash.update(b); this.writeAt(b); return; }
    b.copy(this.stage, this.staged);
    this.staged += b.length;
  }

  private stopWorkers(): void {
    const ws = this.workers;
    this.workers = [];
    for (const w of ws) void stopWorker(w);
  }

  /** Stream a file into the pack as a blob entry; an entry whose oid is `known` already is taken back. */
  addFile(file: Buffer | string, size: number, known: (oid: string) => boolean): string {
    if (this.sent.length) throw new Error('PackWriter.addFile() with blobs at the deflate thread');
    const e = this.beginBlob(size);
    const input = fs.openSync(file, 'r');
    try {
      const buf = Buffer.allocUnsafe(PIECE);
      let seen = 0;
      for (;;) {
        const n = fs.readSync(input, buf, 0, buf.length, seen);
        if (n === 0) break;
        seen += n;
        if (seen > size) break;
        e.write(buf.subarray(0, n));
      }
      if (seen !== size) throw new ObjectError(`blob of ${typeof file === 'string' ? file : file.toString('utf8')}`, `the file changed while it was read (${size} bytes expected)`);
    } catch (err) {
      e.abort();
      throw err;
    } finally {
      fs.closeSync(input);
    }
    return e.end(known);
  }

  /** The same from an async source of chunks (a tar entry): exactly `size` bytes, else an error. */
  async addStream(size: number, source: AsyncIterable<Buffer>, known: (oid: string) => boolean): Promise<string> {
    // Nothing may be appended while the entry streams in (it may be rolled back).
    await this.settle();
    const e = this.beginBlob(size);
    try {
      let seen = 0;
      // Streams give small chunks (16-64 KiB): gathered into 1 MiB pieces, so that the framer's compressibility
      // probe (16 KiB of each piece) is not the whole of every chunk.
      const piece = Buffer.allocUnsafe(Math.min(PIECE, size));
      let held = 0;
      for await (const c of source) {
        seen += c.length;
        if (seen > size) break;
        for (let p = 0; p < c.length;) {
          const n = Math.min(piece.length - held, c.length - p);
          c.copy(piece, held, p, p + n);
          held += n;
          p += n;
          if (held === piece.length) { e.write(piece); held = 0; }
        }
      }
      if (held > 0) e.write(piece.subarray(0, held));
      if (seen !== size) throw new Error(`stream gave ${seen} bytes, expected ${size}`);
    } catch (err) {
      e.abort();
      throw err;
    }
    return e.end(known);
  }

  /** A blob entry of `size` bytes written piece by piece: hashed and deflated (or stored) straight into the pack. */
  private beginBlob(size: number): { write(piece: Buffer): void; end(known: (oid: string) => boolean): string; abort(): void } {
    this.flushStage();
    const start = this.pos;
    const before = this.hash.copy();
    const blobHash = createHash('sha1').update(`blob ${size}\0`);
    this.crc = 0;
    this.emit(packEntryHeader(3, size));
    const z = new ZlibFramer((b) => this.emit(b));
    return {
      write: (piece) => { blobHash.update(piece); z.write(piece); },
      abort: () => this.rollback(start, before),
      end: (known) => {
        z.end();
        const oid = blobHash.digest('hex');
        if (known(oid)) { this.rollback(start, before); return oid; }
        this.record(Buffer.from(oid, 'hex'), start);
        return oid;
      },
    };
  }

  private rollback(start: number, hash: ReturnType<typeof createHash>): void {
    this.staged = 0;
    this.pos = start;
    this.hash = hash;
    fs.ftruncateSync(this.fd, start);
  }

  private record(key: Buffer, offset: number): number {
    const k = this.count++;
    if (k === this.offsets.length) {
      const n = k * 2;
      const oids = Buffer.allocUnsafe(20 * n); this.oids.copy(oids); this.oids = oids;
      const offsets = new Float64Array(n); offsets.set(this.offsets); this.offsets = offsets;
      const crcs = new Uint32Array(n); crcs.set(this.crcs); this.crcs = crcs;
      this.slots = new Int32Array(2 * n).fill(-1);
      for (let j = 0; j < k; j++) this.slots[this.slotOf(this.oids.subarray(j * 20, j * 20 + 20))] = j;
    }
    key.copy(this.oids, k * 20);
    this.offsets[k] = offset;
    this.crcs[k] = this.crc >>> 0;
    this.slots[this.slotOf(key)] = k;
    return k;
  }

  /** Complete the pack (count, checksum) without an index or renaming: its temporary file, to send; discard() after. */
  finishUnindexed(): { path: string; size: number } {
    try {
      const sum = this.complete();
      const fd = this.fd;
      this.fd = -1;
      fs.closeSync(fd);
      return { path: this.tmpPack, size: this.pos + sum.length };
    } catch (e) {
      this.discard();
      throw withPath(e, this.tmpPack);
    }
  }

  /** Write the staged bytes, fix the header's count if it was a guess, and append the checksum (returned). */
  private complete(): Buffer {
    this.flushStage();
    let sum: Buffer;
    if (this.count === this.headerCount) sum = this.hash.digest();
    else {
      // The header's count was a guess: fix it, and hash the pack again from the file.
      const head = packHeader(this.count);
      fs.writeSync(this.fd, head, 0, head.length, 0);
      const h = createHash('sha1');
      const buf = Buffer.allocUnsafe(STAGE);
      for (let p = 0; p < this.pos;) {
        const n = fs.readSync(this.fd, buf, 0, Math.min(buf.length, this.pos - p), p);
        if (n === 0) throw new ObjectError(this.tmpPack, 'corrupt (the pack being written shrank)');
        h.update(buf.subarray(0, n));
        p += n;
      }
      sum = h.digest();
    }
    fs.writeSync(this.fd, sum, 0, 20, this.pos);
    return sum;
  }

  /** Complete the pack (count, checksum), sync it, write its index, and rename both into place. */
  finish(): void {
    /** Files renamed into place that were not there before (removed again if a later step fails). */
    const placed: string[] = [];
    try {
      if (this.busy) throw new Error('PackWriter.finish() before settle()');
      this.stopWorkers();
      const sum = this.complete();
      fs.fsyncSync(this.fd);
      const fd = this.fd;
      this.fd = -1;
      fs.closeSync(fd);
      const name = sum.toString('hex');
      writeSynced(this.tmpIdx, buildIndex(this.oids, this.offsets, this.crcs, this.count, sum));
      for (const [tmp, ext] of [[this.tmpPack, '.pack'], [this.tmpIdx, '.idx']]) {
        const final = pjoin(this.dir, `pack-${name}${ext}`);
        const existed = fs.existsSync(final);
        fs.renameSync(tmp, final);
        if (!existed) placed.push(final);
      }
      syncDir(this.dir);
      this.dropAbort();
    } catch (e) {
      this.discard();
      // Renamed into place before the failure: a pack without its index (or the reverse) is no use to anyone.
      for (const f of placed.reverse()) fs.rmSync(f, { force: true });
      throw withPath(e, this.tmpPack);
    }
  }

  discard(): void {
    this.stopWorkers();
    this.batch = null;
    this.sent.length = 0;
    if (this.fd >= 0) { const fd = this.fd; this.fd = -1; try { fs.closeSync(fd); } catch { /* released all the same */ } }
    fs.rmSync(this.tmpPack, { force: true });
    fs.rmSync(this.tmpIdx, { force: true });
    this.dropAbort();
  }
}

function packHeader(count: number): Buffer {
  const head = Buffer.alloc(12);
  head.write('PACK', 0, 'latin1');
  head.writeUInt32BE(2, 4);
  head.writeUInt32BE(count, 8);
  return head;
}

// ---- deflating --------------------------------------------------------------------------------------------

/** Objects at least this large are deflated piece by piece (ZlibFramer); smaller ones in one zlib call. */
const FRAMED = 256 * 1024;
/** Bytes of blobs sent to the deflate thread at a time, and how many such batches may be out at once. */
const BATCH = 2 * 1024 * 1024;
/** As git's pack.threads: one deflate thread per CPU (the parsing thread mostly waits on them). */
const DEFLATE_THREADS = Math.max(1, Math.min(4, availableParallelism()));
const IN_FLIGHT = 2 * DEFLATE_THREADS + 1;

interface DeflateAnswer { seq: number; out: ArrayBuffer; lens: Uint32Array; crcs: Uint32Array; buf: ArrayBuffer }

/**
 * The deflate thread (PackWriter.queue): plain JavaScript run with `eval`, so that it needs no file of its own
 * in the bundle. Each message is a batch of blobs back to back and their sizes; the answer is their pack entries
 * (header, zlib stream at level 1 with deflateOptions' sizing), each entry's length and CRC-32.
 */
const DEFLATE_WORKER = STOPPABLE + `
const { parentPort } = require('node:worker_threads');
const zlib = require('node:zlib');
function options(size) {
  if (size + 262 > 32768) return { level: 1 };
  const windowBits = Math.max(9, Math.ceil(Math.log2(size + 262)));
  return { level: 1, windowBits, memLevel: Math.max(1, Math.min(8, windowBits - 7)) };
}
function header(size) {
  const bytes = [];
  let c = (3 << 4) | (size & 15);
  size = Math.floor(size / 16);
  while (size > 0) { bytes.push(c | 0x80); c = size & 0x7f; size = Math.floor(size / 128); }
  bytes.push(c);
  return Buffer.from(bytes);
}
parentPort.on('message', (m) => {
  if (m === null || stopped()) return;
  const src = Buffer.from(m.buf);
  const n = m.sizes.length;
  const lens = new Uint32Array(n);
  const crcs = new Uint32Array(n);
  const parts = [];
  let off = 0, total = 0;
  for (let i = 0; i < n; i++) {
    if (stopped()) return;
    const size = m.sizes[i];
    const h = header(size);
    const z = zlib.deflateSync(src.subarray(off, off + size), options(size));
    off += size;
    lens[i] = h.length + z.length;
    crcs[i] = zlib.crc32(z, zlib.crc32(h)) >>> 0;
    parts.push(h, z);
    total += lens[i];
  }
  const out = new Uint8Array(total);
  let p = 0;
  for (const b of parts) { out.set(b, p); p += b.length; }
  parentPort.postMessage({ seq: m.seq, out: out.buffer, lens, crcs, buf: m.buf }, [out.buffer, lens.buffer, crcs.buffer, m.buf]);
});
`;
const PIECE = 1 << 20;
const SAMPLE = 16 * 1024;

/**
 * The zlib stream of `data` (level 1, as git writes loose objects), handed to `out` in one or more buffers that
 * are only valid during the call (copy to keep).
 */
function deflateObject(data: Buffer, out: (b: Buffer) => void): void {
  if (data.length < FRAMED) { out(zlib.deflateSync(data, deflateOptions(data.length))); return; }
  const z = new ZlibFramer(out);
  z.write(data);
  z.end();
}

/** A file's first `size` bytes (fewer if it shrank), read into `buf`. */
function readInto(file: Buffer | string, size: number, buf: Buffer): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    let got = 0;
    while (got < size) { const n = fs.readSync(fd, buf, got, size - got, got); if (n === 0) break; got += n; }
    return buf.subarray(0, got);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Level 1, as git uses for loose objects. Setting up a zlib stream costs more than compressing a small object
 * (about 0.2 ms against 0.03 ms here), and most of it is the window and hash tables: size them to the object.
 */
export function deflateOptions(size: number): zlib.ZlibOptions {
  // zlib's window is at most 2^15: an object of 32,507 bytes or more (size + 262 > 2^15) takes the default.
  if (size + 262 > 32768) return { level: 1 };
  const windowBits = Math.max(9, Math.ceil(Math.log2(size + 262)));
  return { level: 1, windowBits, memLevel: Math.max(1, Math.min(8, windowBits - 7)) };
}

/**
 * A zlib stream written in 1 MiB pieces, each deflated on its own at level 1 (raw deflate ending in a sync flush,
 * so it ends on a byte boundary and the next piece can follow) or, when a 16 KiB sample of it does not shrink
 * by a tenth, kept in stored blocks. Already-compressed data (archives, images, random bytes) then costs a copy
 * instead of deflate's 30-40 MB/s on this machine, and is no larger (deflate expands such data slightly). The
 * stream is a standard one (RFC 1950/1951): zlib header, the pieces, an empty final block, the Adler-32.
 */
export class ZlibFramer {
  private a = 1;
  private b = 0;
  constructor(private readonly out: (b: Buffer) => void) {
    out(Buffer.from([0x78, 0x01]));
  }

  /** More bytes of the stream; a piece is at most 1 MiB (any size works: each piece is complete on its own). */
  write(data: Buffer): void {
    for (let p = 0; p < data.length; p += PIECE) this.piece(data.subarray(p, Math.min(p + PIECE, data.length)));
  }

  end(): void {
    const tail = Buffer.from([0x01, 0x00, 0x00, 0xff, 0xff, 0, 0, 0, 0]);
    tail.writeUInt32BE(((this.b << 16) | this.a) >>> 0, 5);
    this.out(tail);
  }

  private piece(d: Buffer): void {
    this.adler(d);
    const sample = d.length > 2 * SAMPLE ? d.subarray(0, SAMPLE) : d;
    const probe = zlib.deflateRawSync(sample, { level: 1, finishFlush: zlib.constants.Z_SYNC_FLUSH });
    if (probe.length < sample.length * 0.9) {
      this.out(sample === d ? probe : zlib.deflateRawSync(d, { level: 1, finishFlush: zlib.constants.Z_SYNC_FLUSH }));
      return;
    }
    // Stored blocks of at most 65,535 bytes: a byte 0 (not final, stored), LEN and ~LEN little-endian, the bytes.
    for (let p = 0; p < d.length; p += 65535) {
      const len = Math.min(65535, d.length - p);
      const head = Buffer.from([0, len & 0xff, len >> 8, ~len & 0xff, (~len >> 8) & 0xff]);
      this.out(head);
      this.out(d.subarray(p, p + len));
    }
  }

  private adler(d: Buffer): void {
    let a = this.a, b = this.b;
    for (let i = 0; i < d.length;) {
      const end = Math.min(i + 3800, d.length);
      for (; i < end; i++) { a += d[i]; b += a; }
      a %= 65521;
      b %= 65521;
    }
    this.a = a;
    this.b = b;
  }
}

export function packEntryHeader(type: number, size: number): Buffer {
  const bytes: number[] = [];
  let c = (type << 4) | (size & 15);
  size = Math.floor(size / 16);
  while (size > 0) {
    bytes.push(c | 0x80);
    c = size & 0x7f;
    size = Math.floor(size / 128);
  }
  bytes.push(c);
  return Buffer.from(bytes);
}

/** A v2 pack index from the entries' ids (20 bytes each), offsets and CRCs, in the order they were written. */
export function buildIndex(oids: Buffer, offsets: Float64Array, crcs: Uint32Array, n: number, packSum: Buffer): Buffer {
  const order = new Uint32Array(n);
  const first = new Uint32Array(n);
  for (let k = 0; k < n; k++) { order[k] = k; first[k] = oids.readUInt32BE(k * 20); }
  order.sort((x, y) => (first[x] !== first[y] ? (first[x] < first[y] ? -1 : 1) : oids.compare(oids, y * 20, y * 20 + 20, x * 20, x * 20 + 20)));
  let big = 0;
  for (let k = 0; k < n; k++) if (offsets[k] >= 0x80000000) big++;
  const buf = Buffer.alloc(8 + 1024 + n * 28 + big * 8 + 40);
  buf.writeUInt32BE(0xff744f63, 0);
  buf.writeUInt32BE(2, 4);
  const counts = new Uint32Array(256);
  for (let k = 0; k < n; k++) counts[oids[k * 20]]++;
  let acc = 0;
  for (let b = 0; b < 256; b++) { acc += counts[b]; buf.writeUInt32BE(acc, 8 + b * 4); }
  let p = 1032;
  for (const k of order) { oids.copy(buf, p, k * 20, k * 20 + 20); p += 20; }
  for (const k of order) { buf.writeUInt32BE(crcs[k], p); p += 4; }
  let j = 0;
  const bigOffsets: number[] = [];
  for (const k of order) {
    if (offsets[k] >= 0x80000000) { buf.writeUInt32BE((0x80000000 | j++) >>> 0, p); bigOffsets.push(offsets[k]); }
    else buf.writeUInt32BE(offsets[k], p);
    p += 4;
  }
  for (const o of bigOffsets) { buf.writeBigUInt64BE(BigInt(o), p); p += 8; }
  packSum.copy(buf, p); p += 20;
  createHash('sha1').update(buf.subarray(0, p)).digest().copy(buf, p);
  return buf;
}

export function writeSynced(path: string, data: Buffer | string): void {
  const fd = fs.openSync(path, 'w');
  try {
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    fs.rmSync(path, { force: true });
    throw withPath(e, path);
  }
}

export function syncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
  } catch { /* best effort: some filesystems refuse directory fsync */ }
}
