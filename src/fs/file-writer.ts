/**
 * Small files created on a second thread, one after the other, while the main thread reads (inflates) the next
 * blobs: writing a whole tree then costs about max(reading, writing) instead of their sum. One writer only: a
 * pool of concurrent writes into one directory was measured to double the kernel's time (the directory lock).
 *
 * Each file is created exactly as on the main thread: O_CREAT|O_EXCL ('wx', so nothing that appeared at the
 * path is written through), its content, a chmod when the umask took bits away, fstat, close. Paths are the
 * confined ones of safe.ts (through a directory fd opened without following symlinks); the caller keeps those
 * fds open until `drain()` says every write handed over is done. Files go in batches, with the contents of a
 * batch in one transferred buffer.
 */
import { Worker } from 'node:worker_threads';
import type { Stat } from './index-file.js';

const WORKER = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
parentPort.on('message', ({ id, pathBytes, data, ends, perms, chmods }) => {
  const paths = Buffer.from(pathBytes).toString('latin1').split('\\0');
  const stats = new Float64Array(7 * ends.length);
  const errors = [];
  const all = Buffer.from(data);
  let start = 0;
  for (let k = 0; k < ends.length; k++) {
    const body = all.subarray(start, ends[k]);
    start = ends[k];
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
  parentPort.postMessage({ id, stats, errors }, [stats.buffer]);
});
`;

/** Files per batch, and the most bytes of content in one. */
const BATCH_FILES = 64;
const BATCH_BYTES = 4 << 20;
/** Batches in flight before enqueue waits (bounds the memory held for writes). */
const IN_FLIGHT = 4;

interface Item { path: Buffer; data: Buffer; perm: number; chmod: boolean; done(r: Stat | NodeJS.ErrnoException): void }

export class FileWriter {
  private readonly worker: Worker;
  private batch: Item[] = [];
  private batchBytes = 0;
  private readonly inflight = new Map<number, { items: Item[]; settled: Promise<void>; resolve(): void }>();
  private nextId = 0;
  private dead: Error | null = null;

  constructor() {
    this.worker = new Worker(WORKER, { eval: true });
    this.worker.on('message', ({ id, stats, errors }: { id: number; stats: Float64Array; errors: Array<{ code?: string; message: string } | null> }) => {
      const b = this.inflight.get(id);
      if (!b) return;
      this.inflight.delete(id);
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
    this.worker.on('error', (e) => this.fail(e));
    this.worker.on('exit', () => this.fail(new Error('the file writer thread stopped')));
  }

  /**
   * Create `path` holding `data`: `done` gets the file's stat, or the system error. Waits when enough is in
   * flight already.
   */
  async write(path: Buffer, data: Buffer, perm: number, chmod: boolean, done: Item['done']): Promise<void> {
    if (this.dead) throw this.dead;
    this.batch.push({ path, data, perm, chmod, done });
    this.batchBytes += data.length;
    if (this.batch.length >= BATCH_FILES || this.batchBytes >= BATCH_BYTES) {
      this.flush();
      while (this.inflight.size >= IN_FLIGHT) await this.oldest();
    }
  }

  private oldest(): Promise<void> {
    return this.inflight.values().next().value!.settled;
  }

  private flush(): void {
    if (this.batch.length === 0) return;
    const items = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    const data = Buffer.allocUnsafeSlow(items.reduce((n, i) => n + i.data.length, 0));
    const ends: number[] = [];
    let off = 0;
    for (const i of items) { i.data.copy(data, off); off += i.data.length; ends.push(off); }
    const id = this.nextId++;
    let resolve!: () => void;
    const settled = new Promise<void>((r) => { resolve = r; });
    this.inflight.set(id, { items, settled, resolve });
    // Paths as one latin1 string (a byte a char, NUL-separated: no path holds a NUL), cheaper to send than
    // a Buffer each.
    const pathBytes = Buffer.from(items.map((i) => i.path.toString('latin1')).join('\0'), 'latin1');
    this.worker.postMessage({
      id, pathBytes, data: data.buffer, ends, perms: items.map((i) => i.perm), chmods: items.map((i) => i.chmod),
    }, [data.buffer]);
  }

  /** Every file handed over is written (or has failed); each `done` has been called. */
  async drain(): Promise<void> {
    this.flush();
    while (this.inflight.size) await this.oldest();
    if (this.dead) throw this.dead;
  }

  private fail(e: Error): void {
    if (this.dead) return;
    this.dead = e;
    for (const b of this.inflight.values()) {
      for (const item of b.items) item.done(Object.assign(new Error(e.message), { code: 'EIO' }) as NodeJS.ErrnoException);
      b.resolve();
    }
    this.inflight.clear();
  }

  async close(): Promise<void> {
    this.dead ??= new Error('closed');
    await this.worker.terminate();
  }
}
