/**
 * Gzip on other threads, as pigz does: the input is cut into fixed blocks (BLOCK bytes at fixed offsets of
 * the stream, whatever the chunks it came in), each block deflated raw on a worker thread with the last
 * 32 KiB of the block before it as its dictionary, every block but the last ended with a sync flush (so it
 * ends on a byte boundary and the next one continues the same deflate stream), the last with Z_FINISH. The
 * result is one gzip member: a fixed 10-byte header (mtime 0, XFL 4, OS 3: the bytes zlib writes at level 1
 * on Linux), the blocks in order, CRC-32 and ISIZE.
 *
 * The bytes depend only on the input, the level and the block size: not on the number of threads nor on
 * timing (each block is a pure function of its bytes and the 32 KiB before them). Input of one block or less
 * is deflated on this thread and starts no worker. At most IN_FLIGHT blocks are out at a time, so memory
 * stays bounded; a worker's failure is the stream's error; workers end with the stream (finished, failed or
 * destroyed).
 */
import { availableParallelism } from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import type { Worker } from 'node:worker_threads';
import { STOPPABLE, startWorker, stopWorker } from '../sys/workers.js';
import * as zlib from 'node:zlib';

/** Bytes of input per block (as pigz's default 128 KiB, larger: fewer messages, same ratio within 0.1%). */
export const BLOCK = 1 << 20;
const WINDOW = 32 * 1024;
/** Room for one deflated block, whatever its bytes (deflate adds at most 5 bytes per 16 KiB stored). */
const OUT_CHUNK = BLOCK + 64 * 1024;
const HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x04, 0x03]);

/** One deflate thread per CPU, at most 4. */
export const GZIP_THREADS = Math.max(1, Math.min(4, availableParallelism()));

export interface ParallelGzipOptions {
  level: number;
  /** Worker threads (default GZIP_THREADS); the output is the same for any number. */
  threads?: number;
}

interface Job { seq: number; buf: ArrayBuffer; len: number; dict: Uint8Array | null; last: boolean; level: number }
interface Answer { seq: number; out?: ArrayBuffer; len?: number; buf?: ArrayBuffer; error?: string }

function deflateBlock(data: Buffer, dict: Uint8Array | null, last: boolean, level: number): Buffer {
  return zlib.deflateRawSync(data, {
    level,
    ...(dict ? { dictionary: dict } : {}),
    finishFlush: last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
  });
}

/**
 * The worker: plain JavaScript run with `eval` (no file of its own in the bundle); the same deflateBlock as
 * above. The input buffer goes back with the answer, for reuse.
 */
const WORKER = STOPPABLE + `
const OUT_CHUNK = ${OUT_CHUNK};
const { parentPort } = require('node:worker_threads');
const zlib = require('node:zlib');
parentPort.on('message', (m) => {
  if (m === null || stopped()) return;
  try {
    const out = zlib.deflateRawSync(Buffer.from(m.buf, 0, m.len), {
      level: m.level,
      ...(m.dict ? { dictionary: m.dict } : {}),
      finishFlush: m.last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
      chunkSize: OUT_CHUNK,
    });
    // One output chunk (it holds any deflated block): its memory goes to the main thread as it is, no copy and
    // no garbage left here. Otherwise (never expected) a copy.
    let ab = out.buffer;
    if (out.byteOffset !== 0 || ab.byteLength < OUT_CHUNK) { ab = new ArrayBuffer(out.length); new Uint8Array(ab).set(out); }
    parentPort.postMessage({ seq: m.seq, out: ab, len: out.length, buf: m.buf }, [ab, m.buf]);
  } catch (e) {
    parentPort.postMessage({ seq: m.seq, error: String(e && e.message || e) });
  }
});
`;

/** A Transform from bytes to one gzip member of them, deflated on worker threads. */
export class ParallelGzip extends Transform {
  private readonly level: number;
  private readonly threads: number;
  private readonly inFlightMax: number;
  private pending: Buffer = Buffer.allocUnsafeSlow(BLOCK);
  private used = 0;
  private crc = 0;
  private total = 0;
  private seq = 0;
  private dict: Uint8Array | null = null;
  private workers: Worker[] = [];
  /** Blocks out, oldest first, with the answer once it came. */
  private readonly sent: Array<{ seq: number; out: Buffer | null }> = [];
  private readonly spares: ArrayBuffer[] = [];
  private headerDone = false;
  /** Called when there is room again (a block came back) or on failure. */
  private waiter: (() => void) | null = null;
  private failed: Error | null = null;

  constructor(opts: ParallelGzipOptions) {
    super();
    this.level = opts.level;
    this.threads = Math.max(1, opts.threads ?? GZIP_THREADS);
    this.inFlightMax = 2 * this.threads + 1;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.crc = zlib.crc32(chunk, this.crc);
    this.total += chunk.length;
    let off = 0;
    const step = (): void => {
      while (off < chunk.length) {
        if (this.used === BLOCK) {
          // A full block, and more input: it is not the last one.
          if (this.sent.length >= this.inFlightMax) { this.waitRoom(step, cb); return; }
          this.dispatch(false);
        }
        const n = Math.min(chunk.length - off, BLOCK - this.used);
        chunk.copy(this.pending, this.used, off, off + n);
        this.used += n;
        off += n;
      }
      cb();
    };
    step();
  }

  override _flush(cb: TransformCallback): void {
    if (this.failed) { cb(this.failed); return; }
    if (this.seq === 0) {
      // One block or less: here, no worker.
      this.pushHeader();
      this.push(deflateBlock(this.pending.subarray(0, this.used), null, true, this.level));
      this.finish(cb);
      return;
    }
    const drain = (): void => {
      if (this.failed) { cb(this.failed); return; }
      if (this.used >= 0) {
        if (this.sent.length >= this.inFlightMax) { this.waitRoom(drain, cb); return; }
        this.dispatch(true);
        this.used = -1;
      }
      if (this.sent.length) { this.waitRoom(drain, cb); return; }
      this.stopWorkers();
      this.finish(cb);
    };
    drain();
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.stopWorkers();
    const w = this.waiter;
    this.waiter = null;
    w?.();
    cb(err);
  }

  private finish(cb: TransformCallback): void {
    const t = Buffer.alloc(8);
    t.writeUInt32LE(this.crc >>> 0, 0);
    t.writeUInt32LE(this.total % 2 ** 32, 4);
    this.push(t);
    cb();
  }

  private pushHeader(): void {
    if (!this.headerDone) { this.headerDone = true; this.push(HEADER); }
  }

  private waitRoom(then: () => void, cb: TransformCallback): void {
    this.waiter = () => {
      if (this.failed) { cb(this.failed); return; }
      if (this.destroyed) return;
      then();
    };
  }

  private dispatch(last: boolean): void {
    const seq = this.seq++;
    const len = this.used;
    const buf = this.pending.buffer as ArrayBuffer;
    const job: Job = { seq, buf, len, dict: this.dict, last, level: this.level };
    if (!last) {
      // The next block's dictionary: the last 32 KiB of this one (a copy: this buffer goes to the worker).
      this.dict = new Uint8Array(this.pending.subarray(len - WINDOW, len));
      const spare = this.spares.pop();
      this.pending = spare ? Buffer.from(spare) : Buffer.allocUnsafeSlow(BLOCK);
      this.used = 0;
    }
    const w = this.worker(seq % this.threads);
    this.sent.push({ seq, out: null });
    w.postMessage(job, [buf]);
  }

  private worker(k: number): Worker {
    let w = this.workers[k];
    if (!w) {
      w = startWorker(WORKER);
      w.on('message', (m: Answer) => this.received(m));
      w.on('error', (e) => this.fail(new Error(`gzip thread failed (${e.message})`)));
      w.on('exit', () => { if (this.sent.length) this.fail(new Error('gzip thread exited')); });
      this.workers[k] = w;
    }
    return w;
  }

  private received(m: Answer): void {
    if (this.failed || this.destroyed || !this.sent.length) return;
    if (m.error !== undefined) { this.fail(new Error(`gzip thread failed (${m.error})`)); return; }
    const at = m.seq - this.sent[0].seq;
    if (at < 0 || at >= this.sent.length) return;
    this.sent[at].out = Buffer.from(m.out!, 0, m.len!);
    if (m.buf && m.buf.byteLength === BLOCK && this.spares.length < this.inFlightMax) this.spares.push(m.buf);
    while (this.sent.length && this.sent[0].out) {
      this.pushHeader();
      this.push(this.sent.shift()!.out);
    }
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private fail(e: Error): void {
    if (this.failed || this.destroyed) return;
    this.failed = e;
    this.stopWorkers();
    const w = this.waiter;
    this.waiter = null;
    if (w) w(); else this.destroy(e);
  }

  private stopWorkers(): void {
    const ws = this.workers;
    this.workers = [];
    for (const w of ws) void stopWorker(w);
  }
}
