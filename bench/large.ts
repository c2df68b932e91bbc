/**
 * Large workloads for rows 8 and 9: a tree of many files and gigabytes (a root file system's mix: three files
 * in four text-like, one in four incompressible, sizes skewed like real files) and one large random file. Both
 * deterministic from a seed; random bytes come from AES-128-CTR over zeros (fast, and not compressible).
 */
import { createCipheriv, createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { pad, prng, textPool, type Manifest } from './workload.js';

/** A deterministic stream of incompressible bytes. */
class RandomBytes {
  private readonly cipher;
  private readonly zeros = Buffer.alloc(1 << 20);
  constructor(seed: number) {
    const key = createHash('sha256').update(`glayer bench ${seed}`).digest();
    this.cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  }
  next(n: number): Buffer {
    const parts: Buffer[] = [];
    for (let left = n; left > 0; left -= this.zeros.length) parts.push(this.cipher.update(this.zeros.subarray(0, Math.min(left, this.zeros.length))));
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }
}

function blobHash(size: number): ReturnType<typeof createHash> {
  return createHash('sha1').update(`blob ${size}\0`);
}

/** `files` files, `bytes` bytes in all, in directories of 40 files; returns path -> "mode oid". */
export function writeLargeTree(dir: string, seed: number, files: number, bytes: number): Manifest {
  const rnd = prng(seed);
  const random = new RandomBytes(seed);
  const pool = textPool(seed ^ 0x7eee, 8 << 20);
  // Sizes: exponential around the mean (many small files, a few large), scaled to the total.
  const raw = Array.from({ length: files }, () => -Math.log(1 - rnd() * 0.999999));
  const sum = raw.reduce((a, b) => a + b, 0);
  const sizes = raw.map((x) => Math.floor((x / sum) * bytes));
  sizes[0] += bytes - sizes.reduce((a, b) => a + b, 0);
  const m: Manifest = new Map();
  for (let i = 0; i < files; i++) {
    const d = `d${pad(Math.floor(i / 1000), 3)}/s${pad(Math.floor(i / 40) % 25, 2)}`;
    if (i % 40 === 0) fs.mkdirSync(join(dir, d), { recursive: true });
    const path = `${d}/f${pad(i, 6)}${i % 4 === 3 ? '.bin' : '.txt'}`;
    const size = sizes[i];
    const h = blobHash(size);
    const fd = fs.openSync(join(dir, path), 'w', 0o644);
    const head = Buffer.from(`${path} ${seed}\n`).subarray(0, size);
    fs.writeSync(fd, head);
    h.update(head);
    for (let left = size - head.length; left > 0;) {
      const n = Math.min(left, 1 << 20);
      let part: Buffer;
      if (i % 4 === 3) part = random.next(n);
      else { const off = Math.floor(rnd() * (pool.length - n)); part = pool.subarray(off, off + n); }
      fs.writeSync(fd, part);
      h.update(part);
      left -= n;
    }
    fs.closeSync(fd);
    m.set(path, `100644 ${h.digest('hex')}`);
  }
  return m;
}

/** One file `random.bin` of `bytes` random bytes in `dir`. */
export function writeRandomFile(dir: string, seed: number, bytes: number): Manifest {
  fs.mkdirSync(dir, { recursive: true });
  const random = new RandomBytes(seed);
  const h = blobHash(bytes);
  const fd = fs.openSync(join(dir, 'random.bin'), 'w', 0o644);
  for (let left = bytes; left > 0;) {
    const part = random.next(Math.min(left, 8 << 20));
    fs.writeSync(fd, part);
    h.update(part);
    left -= part.length;
  }
  fs.closeSync(fd);
  return new Map([['random.bin', `100644 ${h.digest('hex')}`]]);
}
