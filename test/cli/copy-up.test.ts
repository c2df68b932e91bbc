// No second copy of a change, through the CLI: a file added or edited in the view is copied up into the writable
// layer as a hardlink of the view's file (one inode, so the bytes are stored once and an in-place edit through
// either path is the same change, as under overlayfs), and the reverse for a file dropped into the writable layer.
// Editors that save by rename break the link; status, commit and fsck stay right, and the stat caches neither
// rehash everything after a link or an unlink nor miss a real change. Native git checks what was committed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { planSync } from '../../src/api/sync.js';
import { withWorkspace } from '../../src/workspace/workspace.js';
import { indexPath, loadIndex } from '../../src/fs/index-file.js';
import { glayer, glayerOk } from '../helpers/cli.js';
import { fsck, git } from '../helpers/git.js';
import { tmpdir } from '../helpers/tmp.js';

interface Ws { root: string; view: string; upper: string; gitdir: string }

async function workspace(template = 'etc'): Promise<Ws> {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws', '--template', template);
  const root = join(base, 'ws');
  await glayerOk(root, 'mount-view');
  return { root, view: join(root, 'view'), upper: join(root, 'upper'), gitdir: join(root, '.glayer') };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const ino = (p: string): number => fs.lstatSync(p).ino;
const read = (p: string): string => fs.readFileSync(p, 'utf8');

/**
 * Entries of each side's stat cache whose recorded stat is not the file's stat now: each would be read and
 * hashed again by the next scan. (A link or an unlink moves the ctime of the other side's file; glayer records
 * that, so this stays 0. Entries written in the last 20 ms before an index is saved are also hashed once more,
 * by git's racy rule, whatever their stat: that is not counted here.)
 */
async function stale(ws: Ws): Promise<{ upper: number; view: number }> {
  return withWorkspace(ws.root, (w) => {
    const count = (name: string, dir: string): number => {
      let n = 0;
      for (const [rel, e] of loadIndex(indexPath(ws.gitdir, name), w.store.objects).index) {
        if (e.mode === '40000') continue;
        const st = fs.lstatSync(Buffer.from(`${dir}/${rel}`, 'latin1'));
        if (st.mtimeMs !== e.stat.mtime || st.ctimeMs !== e.stat.ctime || st.size !== e.stat.size || st.ino !== e.stat.ino) n++;
      }
      return n;
    };
    return { upper: count('upper', ws.upper), view: count('view', w.readState().view!) };
  });
}

/** Files each side's scan would hash now (after the racy window): 0 means the stat caches prove everything. */
async function hashedNow(ws: Ws): Promise<{ upper: number; view: number }> {
  await sleep(30);
  return withWorkspace(ws.root, (w) => planSync(w).hashed);
}

/** Disk blocks (KiB) used under `dirs`, each inode counted once (as one `du` over all of them counts). */
function du(...dirs: string[]): number {
  return Number(execFileSync('du', ['-sk', '--total', ...dirs]).toString().trim().split('\n').pop()!.split('\t')[0]);
}

async function statusLines(ws: Ws): Promise<string[]> {
  return (await glayerOk(ws.root, 'status')).stdout.split('\n').filter(Boolean);
}

test('status copies up by hardlink: the bytes are stored once, and the next status hashes nothing', async () => {
  const ws = await workspace();
  const big = Buffer.alloc(8 << 20, 0x61);
  fs.mkdirSync(join(ws.view, 'data/deep'), { recursive: true });
  fs.writeFileSync(join(ws.view, 'data/big'), big);
  fs.writeFileSync(join(ws.view, 'data/deep/small'), 'small\n');
  fs.writeFileSync(join(ws.view, 'data/run'), '#!/bin/sh\n', { mode: 0o755 });
  fs.symlinkSync('big', join(ws.view, 'data/link'));
  fs.appendFileSync(join(ws.view, 'etc/hostname'), 'edited\n'); // a lower file edited in place: copied up
  fs.mkdirSync(join(ws.view, 'data/many'));
  for (let k = 0; k < 2000; k++) fs.writeFileSync(join(ws.view, `data/many/f${k}`), `file ${k}\n`);
  const before = du(ws.root);
  const lines = await statusLines(ws);
  assert.equal(lines.filter((l) => !l.startsWith('A data/many/')), ['A data', 'A data/big', 'A data/deep', 'A data/deep/small', 'A data/link', 'A data/many', 'A data/run', 'C etc/hostname']);
  assert.is(lines.length, 8 + 2000);
  for (const p of ['data/big', 'data/deep/small', 'data/run', 'etc/hostname']) {
    assert.is(ino(join(ws.upper, p)), ino(join(ws.view, p)), `${p} is one inode in the view and the writable layer`);
  }
  assert.is(fs.readlinkSync(join(ws.upper, 'data/link')), 'big');
  assert.is(fs.statSync(join(ws.upper, 'data/run')).mode & 0o777, 0o755);
  // The 8 MiB are on disk once: the workspace grew by the writable layer's directories and the indexes only.
  const grown = du(ws.root) - before;
  assert.ok(grown < 1024, `the workspace grew by ${grown} KiB`);
  assert.equal(await stale(ws), { upper: 0, view: 0 }, 'linking moved the ctimes; the indexes follow');
  // Only the files linked in the last moments before the indexes were saved are hashed again (racy).
  const again = await hashedNow(ws);
  assert.ok(again.upper < 1000 && again.view < 1000, JSON.stringify(again));

  // Commit empties the writable layer (each unlink moves the view file's ctime): still nothing to rehash.
  const c = JSON.parse((await glayerOk(ws.root, 'commit', '-m', 'data', '--json')).stdout) as { id: string };
  assert.equal(fs.readdirSync(ws.upper), []);
  assert.is(fs.lstatSync(join(ws.view, 'data/big')).nlink, 1);
  assert.equal(await stale(ws), { upper: 0, view: 0 });
  assert.equal(await statusLines(ws), []);
  assert.is(git(ws.gitdir, ['cat-file', '-p', `${c.id}:etc/hostname`]), read(join(ws.view, 'etc/hostname')).replace(/\n$/, ''));
  assert.is(git(ws.gitdir, ['cat-file', '-s', `${c.id}:data/big`]), String(8 << 20));
  fsck(ws.gitdir);
});

test('an in-place edit through the writable layer is the same change in the view', async () => {
  const ws = await workspace();
  fs.writeFileSync(join(ws.view, 'notes'), 'one\n');
  fs.appendFileSync(join(ws.view, 'etc/hostname'), 'x\n');
  assert.equal(await statusLines(ws), ['C etc/hostname', 'A notes']);
  fs.appendFileSync(join(ws.upper, 'notes'), 'two\n');
  fs.writeFileSync(join(ws.upper, 'etc/hostname'), 'through upper\n');
  assert.is(read(join(ws.view, 'notes')), 'one\ntwo\n', 'visible in the view at once');
  assert.is(read(join(ws.view, 'etc/hostname')), 'through upper\n');
  const st = await glayerOk(ws.root, 'status');
  assert.is(st.stderr, '', 'no conflict: both paths are one file');
  const c = JSON.parse((await glayerOk(ws.root, 'commit', '-m', 'edits', '--json')).stdout) as { id: string };
  assert.is(git(ws.gitdir, ['cat-file', '-p', `${c.id}:notes`]), 'one\ntwo');
  assert.is(git(ws.gitdir, ['cat-file', '-p', `${c.id}:etc/hostname`]), 'through upper');
  fsck(ws.gitdir);
});

test('an edit that keeps the size and the mtime is still seen after a link (the ctime moved)', async () => {
  const ws = await workspace();
  fs.writeFileSync(join(ws.view, 'f'), 'aaaa\n');
  await glayerOk(ws.root, 'status');
  await sleep(30);
  const st = fs.statSync(join(ws.view, 'f'));
  fs.writeFileSync(join(ws.view, 'f'), 'bbbb\n');
  fs.utimesSync(join(ws.view, 'f'), st.atime, st.mtime);
  await glayerOk(ws.root, 'status');
  assert.is(read(join(ws.upper, 'f')), 'bbbb\n');
  const c = JSON.parse((await glayerOk(ws.root, 'commit', '-m', 'f', '--json')).stdout) as { id: string };
  assert.is(git(ws.gitdir, ['cat-file', '-p', `${c.id}:f`]), 'bbbb');
});

/** An editor's save: write a temporary file beside `p`, rename it over `p` (a new inode). */
function saveByRename(p: string, content: string): void {
  fs.writeFileSync(`${p}.swp`, content);
  fs.renameSync(`${p}.swp`, p);
}

for (const side of ['view', 'upper'] as const) {
  test(`a save-by-rename in the ${side} breaks the link: status, commit and fsck stay right`, async () => {
    const ws = await workspace();
    fs.writeFileSync(join(ws.view, 'doc'), 'draft\n');
    fs.appendFileSync(join(ws.view, 'etc/hostname'), 'edited\n');
    await glayerOk(ws.root, 'status');
    assert.is(ino(join(ws.upper, 'doc')), ino(join(ws.view, 'doc')));
    const other = side === 'view' ? ws.upper : ws.view;
    saveByRename(join(ws[side], 'doc'), 'final\n');
    saveByRename(join(ws[side], 'etc/hostname'), 'renamed\n');
    assert.is(read(join(other, 'doc')), 'draft\n', 'the other path keeps the old inode until the reconcile');
    await sleep(30); // past the racy window (a file saved in the same tick as a scan is hashed again later)
    const fsckBefore = JSON.parse((await glayer(ws.root, 'fsck', '--json')).stdout) as { ok: boolean; problems: unknown[] };
    assert.ok(fsckBefore.ok, JSON.stringify(fsckBefore));
    const st = await glayerOk(ws.root, 'status');
    assert.is(st.stdout, 'A doc\nC etc/hostname\n');
    assert.is(st.stderr, '');
    for (const p of ['doc', 'etc/hostname']) {
      assert.is(ino(join(ws.upper, p)), ino(join(ws.view, p)), `${p}: shared again, the new inode`);
    }
    assert.is(read(join(other, 'doc')), 'final\n');
    assert.equal(await stale(ws), { upper: 0, view: 0 });
    const fsckMid = JSON.parse((await glayerOk(ws.root, 'fsck', '--json')).stdout) as { ok: boolean; notes: string[] };
    assert.ok(fsckMid.ok);
    assert.equal(fsckMid.notes.filter((n) => /changed since/.test(n)), [], 'nothing unrecorded');
    const c = JSON.parse((await glayerOk(ws.root, 'commit', '-m', 'saved', '--json')).stdout) as { id: string };
    assert.is(git(ws.gitdir, ['cat-file', '-p', `${c.id}:doc`]), 'final');
    assert.is(git(ws.gitdir, ['cat-file', '-p', `${c.id}:etc/hostname`]), 'renamed');
    assert.equal(await statusLines(ws), []);
    assert.ok((JSON.parse((await glayerOk(ws.root, 'fsck', '--json')).stdout) as { ok: boolean }).ok);
    fsck(ws.gitdir);
  });
}

test('a save-by-rename between the status and the commit is committed as it is now, never half of each', async () => {
  const ws = await workspace();
  fs.writeFileSync(join(ws.view, 'doc'), 'draft\n');
  await glayerOk(ws.root, 'status');
  saveByRename(join(ws.view, 'doc'), 'final\n');
  const c = JSON.parse((await glayerOk(ws.root, 'commit', '-m', 'c', '--json')).stdout) as { id: string };
  assert.is(git(ws.gitdir, ['cat-file', '-p', `${c.id}:doc`]), 'final');
  assert.equal(fs.readdirSync(ws.upper), []);
  assert.is(read(join(ws.view, 'doc')), 'final\n');
  assert.equal(await statusLines(ws), []);
  fsck(ws.gitdir);
});

test('a file dropped into the writable layer is linked into the view', async () => {
  const ws = await workspace();
  fs.mkdirSync(join(ws.upper, 'opt'));
  fs.writeFileSync(join(ws.upper, 'opt/tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 });
  assert.equal(await statusLines(ws), ['A opt', 'A opt/tool']);
  assert.is(ino(join(ws.view, 'opt/tool')), ino(join(ws.upper, 'opt/tool')));
  assert.equal(await stale(ws), { upper: 0, view: 0 });
  // Commit: the view keeps the file (its own name now), with nothing to rehash.
  await glayerOk(ws.root, 'commit', '-m', 'tool');
  assert.is(read(join(ws.view, 'opt/tool')), '#!/bin/sh\necho tool\n');
  assert.equal(await stale(ws), { upper: 0, view: 0 });
  assert.equal(await statusLines(ws), []);
});

test('mount-view elsewhere stops sharing with the view it leaves behind, and shares with the new one', async () => {
  const ws = await workspace();
  fs.writeFileSync(join(ws.view, 'mine'), 'mine\n');
  await sleep(30);
  await glayerOk(ws.root, 'status');
  assert.is(fs.lstatSync(join(ws.upper, 'mine')).nlink, 2);
  const other = join(tmpdir(), 'view2');
  const r = JSON.parse((await glayerOk(ws.root, 'mount-view', other, '--json')).stdout) as { detached: string | null };
  assert.is(r.detached, ws.view);
  assert.is.not(ino(join(ws.upper, 'mine')), ino(join(ws.view, 'mine')), 'the old view is on its own');
  assert.is(ino(join(ws.upper, 'mine')), ino(join(other, 'mine')), 'the new view shares');
  fs.writeFileSync(join(ws.view, 'mine'), 'edited in the old view\n');
  assert.is(read(join(ws.upper, 'mine')), 'mine\n');
  assert.equal(await statusLines(ws), ['A mine']);
  assert.is(read(join(other, 'mine')), 'mine\n');
  assert.equal(await stale(ws), { upper: 0, view: 0 });
  assert.equal(fs.readdirSync(join(ws.gitdir, 'glayer')).filter((n) => /tmp/.test(n)), []);
});

/** Mount a tmpfs of `size` at a fresh directory (root only); null with the reason printed when it cannot. */
function smallFs(size: string): string | null {
  const dir = join(tmpdir(), 'small');
  fs.mkdirSync(dir);
  if (process.getuid?.() !== 0) { console.log('  (skipped: mounting a tmpfs needs root)'); return null; }
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  if (r.status !== 0) { console.log(`  (skipped: mount -t tmpfs failed: ${String(r.stderr).trim()})`); return null; }
  process.on('exit', () => { spawnSync('umount', ['-l', dir]); });
  return dir;
}

test('status needs no free space for a copy-up a link can make', async () => {
  const mnt = smallFs('48m');
  if (!mnt) return;
  try {
    await glayerOk(mnt, 'init', 'ws');
    const ws: Ws = { root: join(mnt, 'ws'), view: join(mnt, 'ws/view'), upper: join(mnt, 'ws/upper'), gitdir: join(mnt, 'ws/.glayer') };
    await glayerOk(ws.root, 'mount-view');
    // 30 MiB of files on a 48 MiB file system: a second copy cannot fit.
    for (let k = 0; k < 30; k++) fs.writeFileSync(join(ws.view, `blob${k}`), Buffer.alloc(1 << 20, k));
    const free = fs.statfsSync(mnt);
    assert.ok(free.bavail * free.bsize < 30 << 20, 'no room for a copy');
    const st = await glayer(ws.root, 'status');
    assert.is(st.code, 0, st.stderr);
    assert.is(st.stdout.split('\n').filter(Boolean).length, 30);
    assert.is(ino(join(ws.upper, 'blob7')), ino(join(ws.view, 'blob7')));
  } finally {
    spawnSync('umount', [mnt]);
  }
});

test('a view on another file system is copied up the ordinary way', async () => {
  const ws = await workspace();
  const mnt = smallFs('16m');
  if (!mnt) return;
  try {
    const view = join(mnt, 'view');
    await glayerOk(ws.root, 'mount-view', view);
    fs.writeFileSync(join(view, 'x'), 'x\n');
    assert.equal((await glayerOk(ws.root, 'status')).stdout, 'A x\n');
    assert.is(read(join(ws.upper, 'x')), 'x\n');
    assert.is(fs.lstatSync(join(ws.upper, 'x')).nlink, 1);
    await glayerOk(ws.root, 'commit', '-m', 'x');
    assert.equal((await glayerOk(ws.root, 'status')).stdout, '');
    fsck(ws.gitdir);
  } finally {
    spawnSync('umount', ['-l', mnt]);
  }
});

test.run();
