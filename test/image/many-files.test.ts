// Import of a layer with thousands of small files: their blobs are deflated on other threads (store/objects.ts
// PackWriter.queue) while the layer is parsed. Every blob id must be git's, the pack valid (fsck --strict,
// verify-pack), whatever comes between the small blobs: duplicates, a large blob streamed into the same pack, a
// middle-sized one deflated on the main thread, symlinks. A corrupt layer after many files leaves the store as
// it was (no pack, no temporary file), with the deflate threads stopped.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { glayer, glayerOk } from '../helpers/cli.js';
import { fsck, git } from '../helpers/git.js';
import { makeTar, ociLayout, type TarItem } from '../helpers/image.js';
import { tmpdir } from '../helpers/tmp.js';

const blobId = (b: Buffer): string => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

function items(): { tar: TarItem[]; expect: Map<string, string> } {
  const tar: TarItem[] = [];
  const expect = new Map<string, string>();
  const file = (name: string, content: Buffer): void => { tar.push({ name, content }); expect.set(name, blobId(content)); };
  let seed = 7;
  const rnd = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
  const text = (n: number, k: number): Buffer => {
    const words = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', `w${k}`];
    const parts: string[] = [];
    let len = 0;
    while (len < n) { const w = words[rnd() % words.length]; parts.push(w); len += w.length + 1; }
    return Buffer.from(parts.join(' ').slice(0, n));
  };
  for (let d = 0; d < 20; d++) {
    tar.push({ name: `d${d}/`, type: 'directory' });
    for (let i = 0; i < 100; i++) file(`d${d}/f${i}.txt`, text(rnd() % 9000, d * 100 + i));
    file(`d${d}/same`, Buffer.from('the same content in every directory\n'));
    tar.push({ name: `d${d}/link`, type: 'symlink', linkname: `f${d}.txt` });
    if (d === 8) {
      const big = Buffer.alloc(17 * 1024 * 1024);
      for (let p = 0; p < big.length; p += 4) big.writeUInt32LE(rnd(), p);
      file('d8/big.bin', big);
    }
    if (d === 12) file('d12/middle.txt', text(300 * 1024, 1));
    if (d === 13) file('d13/empty', Buffer.alloc(0));
  }
  return { tar, expect };
}

test('a layer of 2,000 files: every blob id is git\'s, the pack is valid', async () => {
  const { tar, expect } = items();
  const layer = await makeTar(tar);
  const dir = ociLayout([{ tar: layer }], { tag: 't' });
  const base = tmpdir('glayer-many-');
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  await glayerOk(ws, 'import', `oci:${dir}:t`, '--stack', 's');
  const gitdir = join(ws, '.glayer');
  fsck(gitdir);
  const got = new Map<string, string>();
  for (const line of git(gitdir, ['ls-tree', '-r', 's']).split('\n')) {
    const m = /^(\d+) blob ([0-9a-f]{40})\t(.*)$/.exec(line);
    if (m && m[1] !== '120000' && !m[3].endsWith('.wh..wh..meta')) got.set(m[3], m[2]);
  }
  assert.is(got.size, expect.size);
  for (const [name, oid] of expect) assert.is(got.get(name), oid, name);
  const packs = fs.readdirSync(join(gitdir, 'objects', 'pack')).filter((n) => n.endsWith('.idx'));
  assert.ok(packs.length >= 1);
  for (const p of packs) git(gitdir, ['verify-pack', join(gitdir, 'objects', 'pack', p)]);
  assert.equal(fs.readdirSync(join(gitdir, 'objects', 'pack')).filter((n) => n.startsWith('tmp_')), []);
});

test('a corrupt gzip after many files: refused, no pack and no temporary file left', async () => {
  const { tar } = items();
  const layer = await makeTar(tar.filter((t) => !t.name.includes('big')));
  const gz = zlib.gzipSync(layer);
  // Damage the stream near its end: thousands of blobs have gone to the deflate threads by then.
  const bad = Buffer.from(gz);
  for (let p = Math.floor(bad.length * 0.9); p < Math.floor(bad.length * 0.9) + 64; p++) bad[p] ^= 0x5a;
  const dir = ociLayout([{ tar: layer, blob: bad }], { tag: 't' });
  const base = tmpdir('glayer-many-bad-');
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  const gitdir = join(ws, '.glayer');
  const packDir = join(gitdir, 'objects', 'pack');
  const before = fs.existsSync(packDir) ? fs.readdirSync(packDir).sort() : [];
  const r = await glayer(ws, 'import', `oci:${dir}:t`, '--stack', 's');
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, /gzip|tar|diff_id/, r.stderr);
  assert.is(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
  assert.equal(fs.existsSync(packDir) ? fs.readdirSync(packDir).sort() : [], before);
  fsck(gitdir);
});

test.run();
