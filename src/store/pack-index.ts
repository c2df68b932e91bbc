/**
 * Indexing a received pack from disk, in bounded memory (what `git index-pack` does for a fetch).
 *
 * Pass 1 walks the entries in file order, reading through a window: a small entry is inflated in one zlib call
 * (which also says how many compressed bytes it used, so where the next entry starts); a large one is inflated
 * as a stream from the file, hashed as it goes, never held whole. Whole objects get their id there; per entry
 * only its offset, CRC, header length, type and base (an ofs-delta's base entry, a ref-delta's base id) stay in
 * memory, in typed arrays sized from the pack's header.
 * Deltas are resolved on the way: an ofs-delta's base comes before it, and is taken from a byte-bounded cache of
 * recent objects or rebuilt from the file (recursively along its chain) when it was evicted. What cannot be
 * resolved then (a large delta, a ref-delta whose base comes later) is resolved by a second pass the same way.
 * Then the v2 index is made from the offsets (objects.ts: buildIndex), the pack synced, and both renamed into
 * place, the index last. A pack whose objects need bases it does not hold (a thin pack) is refused.
 */
import { createHash } from 'node:crypto';
import * as zlib from 'node:zlib';
import { join } from 'node:path';
import * as fs from '../sys/fs.js';
import { ObjectError } from '../errors.js';
import { applyDelta, buildIndex, syncDir, writeSynced } from './objects.js';

const TYPE_NAMES = ['', 'commit', 'tree', 'blob', 'tag'];
/** Entries whose content (or delta) is at most this large are inflated in one call; larger ones as a stream. */
const SMALL = 4 << 20;
/** Bytes of rebuilt delta bases kept in memory. */
const BASE_CACHE = 32 << 20;
const WINDOW = 8 << 20;

export interface IndexProgress { (phase: string, done: number, total: number): void }

/**
 * Index the complete pack in `tmpPack` (a temporary file inside `packDir`, its trailing checksum already checked
 * by the caller) and move it into place as pack-SUM.pack with pack-SUM.idx. Returns SUM, or null for a pack with
 * no objects (removed). On any error the temporary files are removed and nothing is placed.
 */
export async function indexPackFile(packDir: string, tmpPack: string, onProgress?: IndexProgress): Promise<string | null> {
  const tmpIdx = `${tmpPack}.idx`;
  let fd = -1;
  const placed: string[] = [];
  try {
    fd = fs.openSync(tmpPack, 'r');
    const fileSize = fs.fstatSync(fd).size;
    if (fileSize < 32) throw new ObjectError(tmpPack, 'corrupt (truncated pack)');
    const head = Buffer.alloc(12);
    fs.readSync(fd, head, 0, 12, 0);
    const version = head.readUInt32BE(4);
    if (head.toString('latin1', 0, 4) !== 'PACK' || (version !== 2 && version !== 3)) throw new ObjectError(tmpPack, 'not a pack (bad header)');
    const n = head.readUInt32BE(8);
    const dataEnd = fileSize - 20;
    if (n > (dataEnd - 12) / 2) throw new ObjectError(tmpPack, 'corrupt (more objects than bytes)');
    const sum = Buffer.alloc(20);
    fs.readSync(fd, sum, 0, 20, dataEnd);
    if (n === 0) {
      fs.closeSync(fd); fd = -1;
      fs.rmSync(tmpPack, { force: true });
      return null;
    }
    const ix = newEntries(n);
    const r = new Resolver(fd, tmpPack, ix, dataEnd);
    await scan(fd, tmpPack, ix, r, dataEnd, onProgress);
    r.resolveRest(onProgress);
    fs.fsyncSync(fd);
    const closing = fd; fd = -1;
    fs.closeSync(closing);
    writeSynced(tmpIdx, buildIndex(ix.oids, ix.offsets, ix.crcs, n, sum));
    const name = sum.toString('hex');
    for (const [tmp, ext] of [[tmpPack, '.pack'], [tmpIdx, '.idx']]) {
      const final = join(packDir, `pack-${name}${ext}`);
      const existed = fs.existsSync(final);
      fs.renameSync(tmp, final);
      if (!existed) placed.push(final);
    }
    syncDir(packDir);
    return name;
  } catch (e) {
    if (fd >= 0) { try { fs.closeSync(fd); } catch { /* released all the same */ } }
    fs.rmSync(tmpPack, { force: true });
    fs.rmSync(tmpIdx, { force: true });
    for (const f of placed.reverse()) fs.rmSync(f, { force: true });
    throw e;
  }
}

interface Entries {
  n: number;
  oids: Buffer;
  offsets: Float64Array;
  crcs: Uint32Array;
  /** Bytes of each entry's header (type, size, delta base). */
  hdr: Uint8Array;
  /** 1-4: a whole object of that type; 6: ofs-delta; 7: ref-delta. */
  kind: Uint8Array;
  /** An ofs-delta's base entry. */
  base: Int32Array;
  /** A ref-delta's base id, by entry. */
  refBase: Map<number, string>;
  /** Whether the entry's id is known. */
  resolved: Uint8Array;
}

function newEntries(n: number): Entries {
  return {
    n, oids: Buffer.alloc(20 * n), offsets: new Float64Array(n), crcs: new Uint32Array(n), hdr: new Uint8Array(n),
    kind: new Uint8Array(n), base: new Int32Array(n).fill(-1), refBase: new Map(), resolved: new Uint8Array(n),
  };
}

interface Obj { t: number; data: Buffer }

/** Rebuilding entries' contents: through a byte-bounded LRU cache, else from the file. */
class Resolver {
  private readonly cache = new Map<number, Obj>();
  private cached = 0;
  /** Entries scanned so far (an entry's end is known once the next one is scanned). */
  scanned = 0;
  private sorted: Uint32Array | null = null;
  private refsReady = false;
  deltas = 0;
  done = 0;

  constructor(private readonly fd: number, private readonly path: string, private readonly ix: Entries, private readonly dataEnd: number) {}

  remember(k: number, o: Obj): void {
    if (o.data.length > BASE_CACHE / 8) return;
    this.cache.set(k, o);
    this.cached += o.data.length;
    if (this.cached <= BASE_CACHE) return;
    for (const [key, v] of this.cache) {
      if (this.cached <= BASE_CACHE) break;
      this.cache.delete(key);
      this.cached -= v.data.length;
    }
  }

  /** The compressed data of entry k, inflated. */
  private inflateAt(k: number): Buffer {
    const ix = this.ix;
    const start = ix.offsets[k] + ix.hdr[k];
    const end = k + 1 < this.scanned ? ix.offsets[k + 1] : this.dataEnd;
    const comp = Buffer.allocUnsafe(end - start);
    let got = 0;
    while (got < comp.length) { const r = fs.readSync(this.fd, comp, got, comp.length - got, start + got); if (r === 0) break; got += r; }
    try { return zlib.inflateSync(comp.subarray(0, got)); } catch { throw new ObjectError(this.path, `corrupt (bad compressed data at ${ix.offsets[k]})`); }
  }

  /**
   * A ref-delta's base entry among the entries resolved when the round began, or -1 (always in pass 1: a
   * ref-delta waits for pass 2, whose rounds each sort the resolved ids once).
   */
  private refBaseOf(k: number): number {
    const ix = this.ix;
    if (!this.refsReady) return -1;
    if (!this.sorted) {
      let m = 0;
      for (let j = 0; j < ix.n; j++) if (ix.resolved[j]) m++;
      const order = new Uint32Array(m);
      m = 0;
      for (let j = 0; j < ix.n; j++) if (ix.resolved[j]) order[m++] = j;
      const o = ix.oids;
      order.sort((x, y) => o.compare(o, y * 20, y * 20 + 20, x * 20, x * 20 + 20));
      this.sorted = order;
    }
    const key = Buffer.from(ix.refBase.get(k)!, 'hex');
    const order = this.sorted;
    let lo = 0, hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = ix.oids.compare(key, 0, 20, order[mid] * 20, order[mid] * 20 + 20);
      if (c === 0) return order[mid];
      if (c > 0) hi = mid; else lo = mid + 1;
    }
    return -1;
  }

  /** Entry k's type and content; null when a ref-delta's base is not resolved yet. */
  load(k: number, depth = 0): Obj | null {
    if (depth > 10000) throw new ObjectError(this.path, 'corrupt (delta chain too deep)');
    const hit = this.cache.get(k);
    if (hit) { this.cache.delete(k); this.cache.set(k, hit); return hit; }
    const ix = this.ix;
    let o: Obj;
    if (ix.kind[k] <= 4) o = { t: ix.kind[k], data: this.inflateAt(k) };
    else {
      const delta = this.inflateAt(k);
      const base = this.baseOf(k, depth);
      if (!base) return null;
      o = { t: base.t, data: applyDelta(this.oidOf(k), base.data, delta) };
    }
    this.remember(k, o);
    return o;
  }

  /** The content of delta k's base, or null when it is a ref-delta's not resolved yet. */
  baseOf(k: number, depth = 0): Obj | null {
    const b = this.ix.kind[k] === 6 ? this.ix.base[k] : this.refBaseOf(k);
    return b < 0 ? null : this.load(b, depth + 1);
  }

  private oidOf(k: number): string {
    return this.ix.resolved[k] ? this.ix.oids.toString('hex', k * 20, k * 20 + 20) : `the object at ${this.ix.offsets[k]}`;
  }

  /** Record delta k's rebuilt content: its id. */
  resolvedDelta(k: number, o: Obj): void {
    const h = createHash('sha1').update(`${TYPE_NAMES[o.t]} ${o.data.length}\0`).update(o.data).digest();
    h.copy(this.ix.oids, k * 20);
    this.ix.resolved[k] = 1;
    this.done++;
  }

  /** Pass 2: the deltas pass 1 could not resolve, in rounds (a ref-delta's base may itself be such a delta). */
  resolveRest(onProgress?: IndexProgress): void {
    const ix = this.ix;
    let tick = 0;
    this.refsReady = true;
    for (let round = 0; ; round++) {
      this.sorted = null;
      let progress = false;
      let left = 0;
      for (let k = 0; k < ix.n; k++) {
        if (ix.resolved[k]) continue;
        const o = this.load(k);
        if (!o) { left++; continue; }
        this.resolvedDelta(k, o);
        progress = true;
        if (onProgress && (++tick & 255) === 0) onProgress('Resolving deltas', this.done, this.deltas);
      }
      if (left === 0) break;
      if (!progress) throw new ObjectError(this.path, `pack has ${left} unresolved deltas (their bases are not in the pack)`);
    }
    if (this.deltas) onProgress?.('Resolving deltas', this.deltas, this.deltas);
  }
}

/** Pass 1: every entry's offset, CRC, kind and base; whole objects hashed, deltas resolved where they can be. */
async function scan(fd: number, path: string, ix: Entries, r: Resolver, dataEnd: number, onProgress?: IndexProgress): Promise<void> {
  const n = ix.n;
  let win = Buffer.allocUnsafe(WINDOW);
  let winStart = 0;
  let winLen = 0;
  /** The file's bytes from `pos`, at least `need` of them (fewer at the end of the data). */
  const view = (pos: number, need: number): Buffer => {
    need = Math.min(need, dataEnd - pos);
    if (pos >= winStart && pos + need <= winStart + winLen) return win.subarray(pos - winStart, winLen);
    if (need > win.length) win = Buffer.allocUnsafe(need);
    const want = Math.min(win.length, dataEnd - pos);
    let got = 0;
    while (got < want) { const g = fs.readSync(fd, win, got, want - got, pos + got); if (g === 0) break; got += g; }
    winStart = pos;
    winLen = got;
    return win.subarray(0, got);
  };
  let pos = 12;
  let tick = 0;
  for (let k = 0; k < n; k++) {
    if (pos >= dataEnd) throw new ObjectError(path, `corrupt (truncated pack: ${k} of ${n} objects)`);
    ix.offsets[k] = pos;
    r.scanned = k + 1;
    const h = view(pos, 64);
    let p = 0;
    let c = h[p++];
    const kind = (c >> 4) & 7;
    let size = c & 15;
    let shift = 4;
    while (c & 0x80) { if (p >= h.length || p > 12) throw new ObjectError(path, 'corrupt (bad pack entry header)'); c = h[p++]; size += (c & 0x7f) * 2 ** shift; shift += 7; }
    if (kind === 6) {
      c = h[p++];
      let off = c & 0x7f;
      while (c & 0x80) { if (p >= h.length || p > 24) throw new ObjectError(path, 'corrupt (bad delta offset)'); c = h[p++]; off = (off + 1) * 128 + (c & 0x7f); }
      const b = findOffset(ix.offsets, k, pos - off);
      if (b < 0) throw new ObjectError(path, `corrupt (delta at ${pos} names no entry as its base)`);
      ix.base[k] = b;
    } else if (kind === 7) {
      if (p + 20 > h.length) throw new ObjectError(path, 'corrupt (truncated pack entry)');
      ix.refBase.set(k, h.toString('hex', p, p + 20));
      p += 20;
    } else if (kind < 1 || kind > 4) {
      throw new ObjectError(path, `corrupt (bad pack entry type ${kind})`);
    }
    if (kind > 4) r.deltas++;
    ix.kind[k] = kind;
    ix.hdr[k] = p;
    const start = pos + p;
    let used = -1;
    if (size <= SMALL) {
      const bound = size + (size >>> 9) + 64;
      const v = view(pos, p + bound);
      const comp = v.subarray(p, Math.min(v.length, p + bound));
      let data: Buffer | null = null;
      try {
        const res = zlib.inflateSync(comp, { info: true, chunkSize: size + 64 }) as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
        data = res.buffer;
        used = res.engine.bytesWritten;
      } catch { /* an unusual encoding longer than the bound, or corrupt: stream it below */ }
      if (data) {
        if (data.length !== size) throw new ObjectError(path, `corrupt (size mismatch at ${pos})`);
        ix.crcs[k] = zlib.crc32(v.subarray(0, p + used)) >>> 0;
        if (kind <= 4) {
          hashInto(ix.oids, k, kind, data);
          ix.resolved[k] = 1;
          r.remember(k, { t: kind, data });
        } else if (kind === 6) {
          const base = r.baseOf(k);
          if (base) {
            const o = { t: base.t, data: applyDelta(`the object at ${pos}`, base.data, data) };
            r.resolvedDelta(k, o);
            r.remember(k, o);
          }
        }
      }
    }
    if (used < 0) {
      const hash = kind <= 4 ? createHash('sha1').update(`${TYPE_NAMES[kind]} ${size}\0`) : null;
      let seen = 0;
      used = await inflateStream(path, start, dataEnd, (chunk) => { seen += chunk.length; hash?.update(chunk); });
      if (seen !== size) throw new ObjectError(path, `corrupt (size mismatch at ${pos})`);
      if (hash) { hash.digest().copy(ix.oids, k * 20); ix.resolved[k] = 1; }
      ix.crcs[k] = crcRange(fd, pos, start + used);
    }
    pos = start + used;
    if (onProgress && (++tick & 1023) === 0) onProgress('Indexing objects', k + 1, n);
  }
  r.scanned = n;
  if (pos !== dataEnd) throw new ObjectError(path, 'corrupt (bytes after the last object)');
  onProgress?.('Indexing objects', n, n);
}

function hashInto(oids: Buffer, k: number, kind: number, data: Buffer): void {
  createHash('sha1').update(`${TYPE_NAMES[kind]} ${data.length}\0`).update(data).digest().copy(oids, k * 20);
}

/** The entry (among the first `count`) at `offset`, or -1. */
function findOffset(offsets: Float64Array, count: number, offset: number): number {
  let lo = 0, hi = count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (offsets[mid] === offset) return mid;
    if (offsets[mid] < offset) lo = mid + 1; else hi = mid;
  }
  return -1;
}

/** CRC-32 of the file's bytes [from, to), read in pieces. */
function crcRange(fd: number, from: number, to: number): number {
  const buf = Buffer.allocUnsafe(Math.min(1 << 20, to - from));
  let crc = 0;
  for (let p = from; p < to;) {
    const r = fs.readSync(fd, buf, 0, Math.min(buf.length, to - p), p);
    if (r === 0) throw new ObjectError(String(from), 'corrupt (truncated pack)');
    crc = zlib.crc32(buf.subarray(0, r), crc);
    p += r;
  }
  return crc >>> 0;
}

/** Inflate the zlib stream that starts at `start`, handing out its output; returns how many bytes it used. */
function inflateStream(path: string, start: number, end: number, onChunk: (b: Buffer) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const inflate = zlib.createInflate({ chunkSize: 1 << 20 });
    const input = fs.createReadStream(path, { start, end: end - 1, highWaterMark: 1 << 20 });
    let finished = false;
    const fail = (e: Error): void => {
      if (finished) return;
      finished = true;
      input.destroy();
      inflate.destroy();
      const code = (e as NodeJS.ErrnoException).code;
      reject(code && code.startsWith('Z_') ? new ObjectError(path, `corrupt (bad compressed data at ${start})`) : e);
    };
    inflate.on('data', (b: Buffer) => { try { onChunk(b); } catch (e) { fail(e as Error); } });
    inflate.on('end', () => {
      if (finished) return;
      finished = true;
      input.destroy();
      resolve(inflate.bytesWritten);
    });
    inflate.on('error', fail);
    input.on('error', fail);
    input.on('data', (c) => {
      if (finished) return;
      if (!inflate.write(c)) { input.pause(); inflate.once('drain', () => input.resume()); }
    });
    input.on('end', () => { if (!finished) inflate.end(); });
  });
}
