// Layer gzip on worker threads (src/image/pgzip.ts): fixed blocks deflated with the previous block's last
// 32 KiB as dictionary, one gzip member. The output must gunzip (node's zlib and the real gzip binary) to the
// input exactly, at every size around the block edges, and be the same bytes for 1, 2 and 4 threads and for
// any chunking of the input (export is reproducible). A failing input stops the stream with its error, no hang.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { BLOCK, ParallelGzip } from '../../src/image/pgzip.js';
import { tmpdir } from '../helpers/tmp.js';

let seed = 11;
const rnd = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
function random(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = rnd() >> 7;
  return b;
}
function text(n: number): Buffer {
  const words = ['layer', 'blob', 'tree', 'commit', 'whiteout', 'opaque', 'manifest', '\n', 'sha256'];
  const parts: string[] = [];
  let len = 0;
  while (len < n) { const w = words[rnd() % words.length] + (rnd() % 7 === 0 ? String(rnd() % 1000) : ''); parts.push(w); len += w.length + 1; }
  return Buffer.from(parts.join(' ').slice(0, n));
}

/** Gzip `data` fed in chunks of `chunk` bytes (0: one write). */
async function pgzip(data: Buffer, threads: number, chunk = 0): Promise<Buffer> {
  const parts: Buffer[] = [];
  const pieces = function* (): Generator<Buffer> {
    if (!chunk) { if (data.length) yield data; return; }
    for (let o = 0; o < data.length; o += chunk) yield data.subarray(o, o + chunk);
  };
  await pipeline(Readable.from(pieces()), new ParallelGzip({ level: 1, threads }), new Writable({ write(c: Buffer, _e, cb) { parts.push(c); cb(); } }));
  return Buffer.concat(parts);
}

async function rejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  let err: unknown = null;
  try { await p; } catch (e) { err = e; }
  assert.ok(err instanceof Error, 'rejected');
  assert.match((err as Error).message, re);
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const dir = tmpdir();
const hasGzip = spawnSync('gzip', ['--version']).status === 0;

const cases: Array<[string, () => Buffer]> = [
  ['0 bytes', () => Buffer.alloc(0)],
  ['1 byte', () => Buffer.from('x')],
  ['one block of text', () => text(BLOCK)],
  ['one block + 1 of text', () => text(BLOCK + 1)],
  ['one block - 1 of random', () => random(BLOCK - 1)],
  ['three blocks exactly, text', () => text(3 * BLOCK)],
  ['3.5 blocks of random', () => random(3.5 * BLOCK)],
  ['5 blocks + 777 of text then random', () => Buffer.concat([text(3 * BLOCK), random(2 * BLOCK + 777)])],
];

for (const [name, make] of cases) {
  test(`pgzip: ${name} gunzips to itself, the same bytes for 1, 2 and 4 threads and any chunking`, async () => {
    const data = make();
    const one = await pgzip(data, 1);
    assert.ok(zlib.gunzipSync(one).equals(data), 'node zlib gunzips it to the input');
    assert.equal([...one.subarray(0, 10)], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3], 'fixed header: mtime 0, XFL 4, OS 3');
    assert.is(one.readUInt32LE(one.length - 8), zlib.crc32(data) >>> 0, 'CRC-32 trailer');
    assert.is(one.readUInt32LE(one.length - 4), data.length % 2 ** 32, 'ISIZE trailer');
    for (const threads of [2, 4]) assert.is(sha(await pgzip(data, threads)), sha(one), `${threads} threads: same bytes as 1`);
    assert.is(sha(await pgzip(data, 2, 4093)), sha(one), 'input in 4093-byte chunks: same bytes');
    if (data.length > BLOCK) assert.is(sha(await pgzip(data, 3, 3 * BLOCK - 5)), sha(one), 'input in chunks larger than a block: same bytes');
    if (hasGzip) {
      const f = join(dir, 'out.gz');
      fs.writeFileSync(f, one);
      const t = spawnSync('gzip', ['-t', f]);
      assert.is(t.status, 0, `gzip -t: ${t.stderr}`);
      const d = spawnSync('gzip', ['-dc', f], { maxBuffer: 64 << 20 });
      assert.is(d.status, 0, `gzip -dc: ${d.stderr}`);
      assert.ok(d.stdout.equals(data), 'gzip -dc gives the input');
    }
  });
}

test('pgzip: several blocks compress like one zlib stream (within 1%)', async () => {
  const data = text(6 * BLOCK);
  const ours = await pgzip(data, 2);
  const whole = zlib.gzipSync(data, { level: 1 });
  assert.ok(ours.length <= whole.length * 1.01, `${ours.length} vs ${whole.length}`);
});

test('pgzip: a failing input with blocks at the threads rejects with its error (no hang), and so does a destroy', async () => {
  const data = random(6 * BLOCK);
  const failing = async function* (): AsyncGenerator<Buffer> {
    for (let o = 0; o < 5 * BLOCK; o += 65536) yield data.subarray(o, o + 65536);
    throw new Error('input broke');
  };
  const sink = new Writable({ write(_c: Buffer, _e, cb) { cb(); } });
  await rejects(pipeline(Readable.from(failing()), new ParallelGzip({ level: 1, threads: 2 }), sink), /input broke/);
  const gz = new ParallelGzip({ level: 1, threads: 2 });
  const done = pipeline(Readable.from((function* () { for (let o = 0; o < data.length; o += 65536) yield data.subarray(o, o + 65536); })()), gz, new Writable({
    write(_c: Buffer, _e, cb) { gz.destroy(new Error('stopped')); cb(); },
  }));
  await rejects(done, /stopped/);
});

test.run();
