/**
 * Tar through tar-stream (a kept library: header parsing, checksums, GNU and pax long names, streaming), with
 * one adjustment each way for glayer's byte-string paths and binary xattrs:
 *
 * - Reading: tar-stream decodes pax records as UTF-8, which garbles a binary value such as
 *   `SCHILY.xattr.security.capability` and a path that is not UTF-8. The extractor's pax decoding is replaced,
 *   per instance, by one that keeps every record as a byte string (latin1), which is what glayer's paths are.
 *   tar-stream is pinned to an exact version for that reason (3.2.2; `_decodeLongHeader` is its hook).
 * - Writing: our own pax header entry (raw bytes) precedes an entry that needs one (long or non-ASCII path or
 *   link target, xattrs, a fractional mtime, large ids); the ustar header then holds an ASCII stand-in.
 */
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';

export type TarType = 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo' | 'contiguous-file';

export interface TarHeader {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: Date;
  linkname: string | null;
  devmajor: number;
  devminor: number;
  /** Every pax record, values as byte strings. */
  pax?: Record<string, string> | null;
}

/** Parse pax records (`LEN KEY=VALUE\n`) keeping keys and values as byte strings. */
export function decodePax(buf: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let p = 0;
  while (p < buf.length) {
    const sp = buf.indexOf(0x20, p);
    if (sp < 0) break;
    const len = Number(buf.toString('latin1', p, sp));
    if (!Number.isInteger(len) || len <= 0 || p + len > buf.length) throw new Error('malformed pax header');
    const rec = buf.toString('latin1', sp + 1, p + len - 1);
    const eq = rec.indexOf('=');
    if (eq <= 0 || buf[p + len - 1] !== 0x0a) throw new Error('malformed pax record');
    out[rec.slice(0, eq)] = rec.slice(eq + 1);
    p += len;
  }
  return out;
}

/** A tar-stream extractor that reads names as bytes and pax records as bytes. */
export function tarExtract(): tarStream.Extract & AsyncIterable<Readable & { header: TarHeader }> {
  const ex = (tarStream.extract as unknown as (o: object) => unknown)({ filenameEncoding: 'latin1' }) as unknown as tarStream.Extract & AsyncIterable<Readable & { header: TarHeader }> & {
    _header: { type: string }; _pax: Record<string, string> | null; _paxGlobal: Record<string, string> | null;
    _decodeLongHeader(buf: Buffer): void;
  };
  const orig = ex._decodeLongHeader;
  if (typeof orig !== 'function') throw new Error('tar-stream changed: _decodeLongHeader is missing (pin tar-stream 3.2.2)');
  ex._decodeLongHeader = function (this: typeof ex, buf: Buffer): void {
    if (this._header.type === 'pax-header') {
      const p = decodePax(buf);
      this._pax = this._paxGlobal ? { ...this._paxGlobal, ...p } : p;
    } else if (this._header.type === 'pax-global-header') {
      this._paxGlobal = decodePax(buf);
    } else {
      orig.call(this, buf);
    }
  };
  return ex;
}

// ---- writing ------------------------------------------------------------------------------------------------

export interface TarEntryOut {
  /** Byte string; directories without the trailing '/'. */
  path: string;
  type: TarType;
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch, as text (`1700000000` or `1700000000.5`). */
  mtime: string;
  size?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Map<string, Buffer>;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'latin1'), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), 'latin1'), body]);
}

/** The ustar header block of a pax extended header ('x') of `size` bytes. */
function paxBlock(size: number, mtime: Date): Buffer {
  const b = Buffer.alloc(512);
  const oct = (v: number, len: number, at: number): void => { b.write(v.toString(8).padStart(len - 1, '0') + '\0', at, 'latin1'); };
  b.write('PaxHeader', 0, 'latin1');
  oct(0o644, 8, 100);
  oct(0, 8, 108);
  oct(0, 8, 116);
  oct(size, 12, 124);
  oct(Math.max(0, Math.floor(mtime.getTime() / 1000)), 12, 136);
  b.fill(0x20, 148, 156);
  b[156] = 0x78; // 'x'
  b.write('ustar\0', 257, 'latin1');
  b.write('00', 263, 'latin1');
  let sum = 0;
  for (const c of b) sum += c;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return b;
}

const plainAscii = (s: string): boolean => /^[\x20-\x7e]*$/.test(s);
const MAX_OCTAL_ID = 0o777777;

/** ASCII stand-in for the ustar name field when the real name is in the pax header. */
function standIn(s: string, max: number): string {
  const a = s.replace(/[^\x20-\x7e]/g, '_');
  return a.length <= max ? a : a.slice(a.length - max);
}

/**
 * A tar writer over tar-stream's pack. `readable` is the tar; `add()` waits while the consumer is slow, so a
 * large entry streams through in bounded memory.
 */
export class TarWriter {
  private readonly pack = tarStream.pack();
  get readable(): Readable { return this.pack as unknown as Readable; }

  constructor() {
    // tar-stream writes pax records as UTF-8 text; ours are bytes. Its per-entry header hook (`_encode`, pinned
    // version) first gets our pax header pushed: one 'x' block and the records, padded to 512 bytes.
    const pack = this.pack as unknown as { _encode(h: Record<string, unknown>): void; push(b: Buffer): boolean };
    const orig = pack._encode;
    if (typeof orig !== 'function') throw new Error('tar-stream changed: _encode is missing (pin tar-stream 3.2.2)');
    pack._encode = function (h: Record<string, unknown>): void {
      const raw = h.rawPax as Buffer | undefined;
      if (raw) {
        delete h.rawPax;
        this.push(paxBlock(raw.length, h.mtime as Date));
        this.push(raw);
        if (raw.length % 512) this.push(Buffer.alloc(512 - (raw.length % 512)));
      }
      orig.call(this, h);
    };
  }

  async add(e: TarEntryOut, body?: Buffer | AsyncIterable<Buffer>): Promise<void> {
    const name = e.type === 'directory' ? e.path + '/' : e.path;
    const [sec, frac] = e.mtime.split('.');
    const pax: Buffer[] = [];
    let hname = name;
    let hlink = e.linkname;
    if (!plainAscii(name) || name.length > 100) { pax.push(paxRecord('path', Buffer.from(name, 'latin1'))); hname = standIn(name, 100); }
    if (e.linkname !== undefined && (!plainAscii(e.linkname) || e.linkname.length > 100)) { pax.push(paxRecord('linkpath', Buffer.from(e.linkname, 'latin1'))); hlink = standIn(e.linkname, 100); }
    if (frac) pax.push(paxRecord('mtime', Buffer.from(e.mtime, 'latin1')));
    if (e.uid > MAX_OCTAL_ID) pax.push(paxRecord('uid', Buffer.from(String(e.uid))));
    if (e.gid > MAX_OCTAL_ID) pax.push(paxRecord('gid', Buffer.from(String(e.gid))));
    for (const [k, v] of [...(e.xattrs ?? new Map<string, Buffer>())].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) pax.push(paxRecord(`SCHILY.xattr.${k}`, v));
    const mtime = new Date(Number(sec) * 1000);
    const header = {
      ...(pax.length ? { rawPax: Buffer.concat(pax) } : {}),
      name: hname, type: e.type, mode: e.mode, uid: e.uid > MAX_OCTAL_ID ? 0 : e.uid, gid: e.gid > MAX_OCTAL_ID ? 0 : e.gid,
      size: e.size ?? 0, mtime, linkname: hlink, uname: '', gname: '', devmajor: e.devmajor ?? 0, devminor: e.devminor ?? 0,
    };
    await this.entry(header, body);
  }

  private entry(header: Record<string, unknown>, body?: Buffer | AsyncIterable<Buffer>): Promise<void> {
    // A non-empty body always goes through the entry stream: its writes wait for the consumer (backpressure).
    if (Buffer.isBuffer(body) && body.length > 0) body = [body] as unknown as AsyncIterable<Buffer>;
    return new Promise<void>((resolve, reject) => {
      if (body === undefined || Buffer.isBuffer(body)) {
        this.pack.entry(header as unknown as tarStream.Header, Buffer.alloc(0), (err?: Error | null) => (err ? reject(err) : resolve()));
        return;
      }
      const s = this.pack.entry(header as unknown as tarStream.Header, (err?: Error | null) => (err ? reject(err) : resolve()));
      void (async () => {
        try {
          for await (const chunk of body as AsyncIterable<Buffer>) {
            if (!s.write(chunk)) await new Promise<void>((r) => s.once('drain', () => r()));
          }
          (s as unknown as { end(): void }).end();
        } catch (err) {
          s.destroy(err as Error);
          reject(err);
        }
      })();
    });
  }

  finalize(): void {
    this.pack.finalize();
  }
}
