// Materializer: a tree written into a directory holds exactly the tree, whichever way it is written (a large
// subtree's small files go through the writer thread of file-writer.ts, a small one's on the main thread), and
// the index it fills has each file's real stat. Something that appears at a path while the tree is written is
// never written through: the write fails with one error naming that path, and nothing is left unhandled.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { diffTrees } from '../../src/core/changes.js';
import { Index } from '../../src/fs/index-file.js';
import { Materializer, type BlobSource } from '../../src/fs/materialize.js';
import { scanTree } from '../../src/fs/scan.js';
import { GlayerError, ObjectError } from '../../src/errors.js';
import * as zlib from 'node:zlib';
import { MemTrees, build, exe, file, flatten, link, type Spec } from '../helpers/memtrees.js';
import { tmpdir } from '../helpers/tmp.js';

function blobsOf(m: MemTrees, onRead?: (oid: string) => void): BlobSource {
  const get = (oid: string): Buffer => {
    const b = m.blobs.get(oid);
    if (!b) throw new Error(`no blob ${oid}`);
    onRead?.(oid);
    return b;
  };
  return {
    readSmall: (oid) => (get(oid).length >= 1 << 20 ? null : get(oid)),
    read: get,
    writeFile: (oid, dest, mode) => fs.writeFileSync(dest, get(oid), { mode, flag: 'wx' }),
  };
}

/** `n` entries in a few directories: regular, executable, empty and large files, symlinks, empty directories. */
function bigSpec(n: number): Spec {
  const spec: Record<string, Record<string, unknown>> = {};
  for (let k = 0; k < n; k++) {
    const dir = `d${k % 7}`;
    spec[dir] ??= {};
    const name = `f${String(k).padStart(5, '0')}`;
    spec[dir][name] = k % 97 === 0 ? link(`../d0/${name}`) : k % 13 === 0 ? exe(`#!/bin/sh\necho ${k}\n`) : k % 50 === 0 ? file('') : file(`file ${k}\n`.repeat(k % 40));
  }
  spec.d0.empty = {};
  spec.d1.big = file('x'.repeat((1 << 20) + 5)); // read through writeFile, not readSmall
  return spec as Spec;
}

async function materialize(m: MemTrees, root: string, dir: string, blobs = blobsOf(m)): Promise<{ index: Index; written: number }> {
  const index = new Index();
  const w = new Materializer(dir, m, blobs, index);
  await w.apply(diffTrees(m, null, root));
  return { index, written: w.written };
}

for (const [name, n] of [['small subtrees, main thread', 300], ['large subtrees, writer thread', 9000]] as const) {
  test(`a written tree scans back to the same tree: ${name}`, async () => {
    const m = new MemTrees();
    const root = build(m, bigSpec(n));
    const dir = tmpdir();
    const { index, written } = await materialize(m, root, dir);
    const files = Object.values(flatten(m, root)).filter((d) => d !== 'dir').length;
    assert.is(written, files);
    const scanned = scanTree(dir, new Index(), m, { markers: true });
    assert.is(scanned.root, root);
    // The index holds each file's own stat.
    for (const rel of ['d3/f00003', 'd0/f00000', 'd1/big']) {
      const st = fs.lstatSync(join(dir, rel));
      const e = index.get(rel)!;
      assert.equal([e.stat.ino, e.stat.size, e.stat.mtime], [st.ino, st.size, st.mtimeMs], rel);
    }
    assert.is(fs.statSync(join(dir, 'd6/f00013')).mode & 0o777, 0o755);
  });
}

// Blobs stored whole in a pack are handed to the writers compressed (BlobSource.packedData) and inflated there.
// Bytes that do not inflate to the blob's size are read again with readSmall, which either finds the blob (a
// workspace's other copy) or reports the damage naming the blob.
for (const [name, damage, rescue] of [
  ['every blob compressed, none damaged', 0, true],
  ['damaged bytes, the blob read again from another copy', 5, true],
  ['damaged bytes and no other copy: the object error names the blob', 5, false],
] as const) {
  test(`large subtrees: ${name}`, async () => {
    const m = new MemTrees();
    const root = build(m, bigSpec(9000)); // subtrees of over 1024 entries: the writer threads' path
    const base = blobsOf(m);
    const damaged = new Set([...m.blobs.keys()].filter((o) => m.blobs.get(o)!.length > 20).sort().slice(0, damage));
    const readAgain: string[] = [];
    let plainReads = 0;
    const blobs: BlobSource = {
      ...base,
      packedData: (oid) => {
        const b = m.blobs.get(oid);
        if (!b || b.length >= 1 << 20) return null;
        const comp = zlib.deflateSync(damaged.has(oid) ? Buffer.concat([b, Buffer.from('!')]) : b);
        return { comp, size: b.length };
      },
      readSmall: (oid) => {
        if (!damaged.has(oid) && m.blobs.get(oid)!.length < 1 << 20) plainReads++;
        if (damaged.has(oid)) {
          readAgain.push(oid);
          if (!rescue) throw new ObjectError(oid, 'corrupt (bad compressed data)');
        }
        return base.readSmall(oid);
      },
    };
    const dir = tmpdir();
    if (!rescue) {
      const err = await materialize(m, root, dir, blobs).then(() => null, (e: Error) => e);
      assert.ok(err instanceof ObjectError, String(err));
      assert.ok(damaged.has((err as ObjectError).message.match(/[0-9a-f]{40}/)?.[0] ?? ''), err!.message);
      return;
    }
    const { written } = await materialize(m, root, dir, blobs);
    assert.is(written, Object.values(flatten(m, root)).filter((d) => d !== 'dir').length);
    assert.is(scanTree(dir, new Index(), m, { markers: true }).root, root, 'the tree scans back');
    assert.equal(readAgain.sort(), [...damaged].sort(), 'only the damaged blobs were read again');
    assert.is(plainReads, 0, 'every other small blob went to the writers compressed');
  });
}

test('a file that appears at a path during the write is not written through: one error names it', async () => {
  const m = new MemTrees();
  const root = build(m, bigSpec(9000));
  const dir = tmpdir();
  const victim = join(dir, 'd5', 'f07999');
  let planted = false;
  const blobs = blobsOf(m, () => {
    if (!planted && fs.existsSync(join(dir, 'd5'))) { fs.writeFileSync(victim, 'planted\n'); planted = true; }
  });
  let err: unknown = null;
  try { await materialize(m, root, dir, blobs); } catch (e) { err = e; }
  assert.ok(planted);
  assert.ok(err instanceof GlayerError, String(err));
  assert.match((err as Error).message, /d5\/f07999/);
  assert.is(fs.readFileSync(victim, 'utf8'), 'planted\n', 'the planted file is untouched');
});

test.run();
