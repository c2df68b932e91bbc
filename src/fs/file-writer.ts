/**
 * Small files created on writer threads while the main thread walks the tree and reads the next blobs: writing a
 * whole tree then costs about max(reading, writing) instead of their sum. A blob stored whole in a pack comes as
 * its compressed bytes and the writer inflates it (and checks its size), so inflating, most of the reading, runs
 * on the writers too. Two writers (lanes) where the machine has two CPUs or more, each directory's files always
 * on the same one: a pool writing into one directory was measured to double the kernel's time (the directory's
 * lock), while two threads writing into different directories create 20,000 files in 0.8x the time of one.
 *
 * Each file is created exactly as on the main thread: O_CREAT|O_EXCL ('wx', so nothing that appeared at the
 * path is written through), its content, a chmod when the umask took bits away, fstat, close. Paths are the
 * confined ones of safe.ts (through a directory fd opened without following symlinks); the caller keeps those
 * fds open until `drain()` says every write handed over is done. Files go in batches, with the contents of a
 * batch in one transferred buffer.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { STOPPABLE, startWorker, stopWorker } from '../sys/workers.js';
import type { Stat } from './index-file.js';

const WORKER = STOPPABLE + `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const zlib = require('node:zlib');
parentPort.on('message', (m) => {
  if (m === null || stopped()) return;
  const { id, pathBytes, data, ends, perms, chmods, sizes } = m;
  const paths = Buffer.from(pathBytes).toString('latin1').split('\\0');
  const stats = new Float64Array(7 * ends.length);
  const errors = [];
  const all = Buffer.from(data);
  let start = 0;
  for (let k = 0; k < ends.length; k++) {
    if (stopped()) return;
    let body = all.subarray(start, ends[k]);
    start = ends[k];
    if (sizes[k] >= 0) {
      // Compressed: inflated here, nothing written when it is not the blob it should be (the caller reads it
      // again its own way and reports the damage).
      try { body = zlib.inflateSync(body, { chunkSize: Math.max(64, sizes[k]) }); } catch { body = null; }
      if (body === null || body.length !== sizes[k]) { errors.push({ code: 'EGLAYERDATA', message: 'bad compressed data' }); continue; }
    }
    try {
      const fd = fs.openSync(Buffer.from(paths[k], 'latin1'), 'wx', perms[k]);
      try {
        let w = 0;
        while (w < body.length) w += fs.writeSync(fd, body, w, body.length - w);
        if (chmods[k]) fs.fchmodSync(fd, perms[k]);
        const st = fs.fstatSync(fd);
        stats[7 * k] = st.mtimeMs; stats[7 * k + 1] = st.ctimeMs; stats[7 * k + 2] = st.size; stats[7 * k + 3] = st.ino;
        stats[7 * k + 4] = st.mode; stats[7 * k + 5] = st.uid; stats[7 * k + 6] = st.gid;
      } finally {
        fs.closeSync(fd);
      }
      errors.push(null);
    } catch (e) {
      errors.push({ code: e.code, message: e.message });
    }
  }
  // The batch's memory goes back to be filled again (fresh memory costs a page fault a page).
  parentPort.postMessage({ id, stats, errors, data }, [stats.buffer, data]);
});
`;

/** Files per batch, and the most bytes of content in one. */
const BATCH_FILES = 64;
const BATCH_BYTES = 4 << 20;
/** Batches in flight per lane before enqueue waits (bounds the memory held for writes). */
const IN_FLIGHT = 4;
/** The code a writer gives a compressed blob that did not inflate to its size. */
export const BAD_DATA = 'EGLAYERDATA';

interface Item { path: Buffer; end: number; perm: number; chmod: boolean; size: number; done(r: Stat | NodeJS.ErrnoException): void }

/** One writer thread and what is queued for it. */
class Lane {
  readonly worker: Worker;
  batch: Item[] = [];
  batchBytes = 0;
  /** The contents of the batch, copied in as files are handed over (a caller's buffer may be reused at once). */
  data: Buffer | null = null;
  /** Batch memory the writer gave back. */
  readonly free: ArrayBuffer[] = [];
  readonly inflight = new Map<number, { items: Item[]; settled: Promise<void>; resolve(): void }>();
  constructor() { this.worker = startWorker(WORKER); }
}

export class FileWriter {
  private readonly lanes: Lane[] = [];
  private nextId = 0;
  private dead: Error | null = null;

  constructor(lanes = Math.min(2, Math.max(1, availableParallelism()))) {
    for (let k = 0; k < lanes; k++) this.lanes.push(this.startLane());
  }

  /** How many writer threads there are: `write` takes a lane number below it. */
  get width(): number { return this.lanes.length; }

  private startLane(): Lane {
    const lane = new Lane();
    lane.worker.on('message', ({ id, stats, errors, data }: { id: number; stats: Float64Array; errors: Array<{ code?: string; message: string } | null>; data: ArrayBuffer }) => {
      if (data.byteLength === BATCH_BYTES) lane.free.push(data);
      const b = lane.inflight.get(id);
      if (!b) return;
      lane.inflight.delete(id);
      b.items.forEach((item, k) => {
        const err = errors[k];
        if (err) item.done(Object.assign(new Error(err.message), { code: err.code }) as NodeJS.ErrnoException);
        else {
          const s = 7 * k;
          item.done({ mtime: stats[s], ctime: stats[s + 1], size: stats[s + 2], ino: stats[s + 3], mode: stats[s + 4], uid: stats[s + 5], gid: stats[s + 6] });
        }
      });
      b.resolve();
    });
    lane.worker.on('error', (e) => this.fail(e));
    lane.worker.on('exit', () => this.fail(new Error('the file writer thread stopped')));
    return lane;
  }

  /**
   * Create `path` holding `data` (`size` >= 0: `data` is that many bytes deflated, zlib format) on writer `lane`
   * (`lane % width`): `done` gets the file's stat, or the system error (BAD_DATA: `data` did not inflate to
   * `size`; no file was made). Waits when enough is in flight on that lane already.
   */
  async write(path: Buffer, data: Buffer, perm: number, chmod: boolean, done: Item['done'], size = -1, lane = 0): Promise<void> {
    if (this.dead) throw this.dead;
    const l = this.lanes[lane % this.lanes.length];
    if (l.batch.length && l.batchBytes + data.length > (l.data?.length ?? 0)) await this.send(l);
    if (!l.data) {
      // A batch's memory: one given back by the writer, else new (larger, for one file that does not fit).
      const ab = data.length <= BATCH_BYTES ? l.free.pop() ?? new ArrayBuffer(BATCH_BYTES) : new ArrayBuffer(data.length);
      l.data = Buffer.from(ab);
    }
    data.copy(l.data, l.batchBytes);
    l.batchBytes += data.length;
    l.batch.push({ path, end: l.batchBytes, perm, chmod, size, done });
    if (l.batch.length >= BATCH_FILES || l.batchBytes >= BATCH_BYTES) await this.send(l);
  }

  /** Hand the lane's batch to its writer; wait while enough is in flight. */
  private async send(l: Lane): Promise<void> {
    this.flush(l);
    while (l.inflight.size >= IN_FLIGHT) await l.inflight.values().next().value!.settled;
  }

  private flush(lane: Lane): void {
    if (lane.batch.length === 0) return;
    const items = lane.batch;
    const data = lane.data!;
    lane.batch = [];
    lane.batchBytes = 0;
    lane.data = null;
    const ends = items.map((i) => i.end);
    const id = this.nextId++;
    let resolve!: () => void;
    const settled = new Promise<void>((r) => { resolve = r; });
    lane.inflight.set(id, { items, settled, resolve });
    // Paths as one latin1 string (a byte a char, NUL-separated: no path holds a NUL), cheaper to send than
    // a Buffer each.
    const pathBytes = Buffer.from(items.map((i) => i.path.toString('latin1')).join('\0'), 'latin1');
    lane.worker.postMessage({
      id, pathBytes, data: data.buffer as ArrayBuffer, ends, perms: items.map((i) => i.perm), chmods: items.map((i) => i.chmod), sizes: items.map((i) => i.size),
    }, [data.buffer as ArrayBuffer]);
  }

  /** Every file handed over is written (or has failed); each `done` has been called. */
  async drain(): Promise<void> {
    for (const l of this.lanes) this.flush(l);
    for (const l of this.lanes) while (l.inflight.size) await l.inflight.values().next().value!.settled;
    if (this.dead) throw this.dead;
  }

  private fail(e: Error): void {
    if (this.dead) return;
    this.dead = e;
    for (const l of this.lanes) {
      for (const b of l.inflight.values()) {
        for (const item of b.items) item.done(Object.assign(new Error(e.message), { code: 'EIO' }) as NodeJS.ErrnoException);
        b.resolve();
      }
      l.inflight.clear();
    }
  }

  async close(): Promise<void> {
    this.dead ??= new Error('closed');
    await Promise.all(this.lanes.map((l) => stopWorker(l.worker)));
  }
}
