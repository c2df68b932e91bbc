// Live views (mount-view --live) with real mounts, for each backend this machine has (CI: root, with
// fuse-overlayfs, so both): the aufs experiment, status/diff/commit from the upper directory alone, commit while a
// process holds a file open, copy <-> live, fsck of stale mounts, SIGKILL during mount and commit, 1,000 layers.
// Every mount is made in a fresh temp dir and unmounted in a finally (a leaked mount breaks later runs).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { glayer, glayerOk } from '../helpers/cli.js';
import { fsck, git } from '../helpers/git.js';
import { liveBackends, unmountUnder, mountsUnder } from '../helpers/live.js';
import { snapshot, snapshotDiff } from '../helpers/snapshot.js';
import { tmpdir } from '../helpers/tmp.js';
import { run } from '../hardening/spawn.js';

const BACKENDS = liveBackends();

async function workspace(template = 'aufs-demo'): Promise<{ base: string; ws: string; gitdir: string }> {
  const base = tmpdir('glayer-live-');
  await glayerOk(base, 'init', 'ws', '--template', template);
  const ws = join(base, 'ws');
  return { base, ws, gitdir: join(ws, '.glayer') };
}

if (BACKENDS.length === 0) test('live views', () => { console.log('SKIPPED live views: no backend here'); });

for (const backend of BACKENDS) {
  test(`${backend}: the aufs experiment in a live view`, async () => {
    const { base, ws, gitdir } = await workspace();
    try {
      const m = await glayerOk(ws, 'mount-view', '--live', '--backend', backend);
      assert.match(m.stdout, `Live view mounted at ${join(ws, 'view')} (${backend}`);
      const info = JSON.parse((await glayerOk(ws, 'info', '--json')).stdout);
      assert.equal(info.live, { backend, mounted: true, head: info.head });
      const view = join(ws, 'view');
      assert.is(fs.readFileSync(join(view, 'test'), 'utf8'), 'test1\n');
      fs.rmSync(join(view, 'test'));
      assert.is((await glayerOk(ws, 'status')).stdout, 'D test\n');
      // The mount recorded the deletion in its own form: a 0/0 character device in upper/.
      const dev = fs.lstatSync(join(ws, 'upper', 'test'));
      assert.ok(dev.isCharacterDevice() && dev.rdev === 0, 'a whiteout device in the upper directory');
      // Remove the marker, remount: the file is back.
      fs.rmSync(join(ws, 'upper', 'test'));
      await glayerOk(ws, 'mount-view', '--live', '--backend', backend);
      assert.is((await glayerOk(ws, 'status')).stdout, '');
      assert.is(fs.readFileSync(join(view, 'test'), 'utf8'), 'test1\n');
      fs.writeFileSync(join(view, 'test'), 'test2\n');
      fs.writeFileSync(join(view, 'new'), 'hello\n');
      assert.is((await glayerOk(ws, 'status')).stdout, 'A new\nC test\n');
      assert.match((await glayerOk(ws, 'diff')).stdout, '+test2');
      const id = (await glayerOk(ws, 'commit', '-m', 'edit test, add new')).stdout.trim();
      assert.match(id, /^[0-9a-f]{40}$/);
      assert.equal(git(gitdir, ['ls-tree', '--name-only', id]).split('\n'), ['new', 'test']);
      assert.is((await glayerOk(ws, 'status')).stdout, '', 'clean after the commit');
      assert.equal(fs.readdirSync(join(ws, 'upper')), [], 'the view was remounted on an empty upper directory');
      assert.is(fs.readFileSync(join(view, 'test'), 'utf8'), 'test2\n');
      assert.is(fs.readFileSync(join(view, 'new'), 'utf8'), 'hello\n');
      assert.is(JSON.parse((await glayerOk(ws, 'info', '--json')).stdout).live.head, id);
      fsck(gitdir);
    } finally {
      await glayer(ws, 'umount');
      unmountUnder(base);
    }
    assert.equal(mountsUnder(base), [], 'no mount left');
  });

  test(`${backend}: directories deleted, re-created and renamed; no-op copy-ups; commit matches a copied view`, async () => {
    const { base, ws, gitdir } = await workspace('etc');
    try {
      await glayerOk(ws, 'mount-view', '--live', '--backend', backend);
      const view = join(ws, 'view');
      const etc = join(view, 'etc');
      const dirs = fs.readdirSync(etc).filter((n) => fs.lstatSync(join(etc, n)).isDirectory()).sort();
      assert.ok(dirs.length >= 2, 'the etc template has directories');
      const [d1, d2] = dirs;
      // Re-created directory: must come back opaque (nothing of the old content).
      fs.rmSync(join(etc, d1), { recursive: true });
      fs.mkdirSync(join(etc, d1));
      fs.writeFileSync(join(etc, d1, 'only'), 'only\n');
      // Renamed directory: overlayfs (redirect_dir=off) makes mv copy it; the old name is a whiteout.
      execFileSync('mv', [join(etc, d2), join(etc, `${d2}.moved`)]);
      // A copy-up that changes nothing (a chmod to the mode it has) is not a change. (A touch is one: an mtime,
      // recorded as a copied view records it.)
      fs.chmodSync(join(etc, 'hosts'), fs.statSync(join(etc, 'hosts')).mode & 0o7777);
      assert.ok(fs.readdirSync(join(ws, 'upper', 'etc')).includes('hosts'), 'the chmod copied hosts up');
      const st = (await glayerOk(ws, 'status')).stdout;
      assert.match(st, `D etc/${d2}\n`);
      assert.match(st, `A etc/${d2}.moved\n`);
      assert.match(st, `A etc/${d1}/only\n`);
      assert.not.match(st, 'hosts');
      const before = snapshot(view);
      const id = (await glayerOk(ws, 'commit', '-m', 'dirs')).stdout.trim();
      assert.ok(git(gitdir, ['ls-tree', '-r', '--name-only', id]).split('\n').includes(`etc/${d1}/.wh..wh..opq`), 'the re-created directory is opaque in the layer');
      assert.equal(snapshot(view), before, 'the view is unchanged by the commit');
      // The new stack as a copied view elsewhere: the same tree.
      const copy = join(base, 'copy');
      await glayerOk(ws, 'umount');
      await glayerOk(ws, 'mount-view', copy);
      const c = snapshot(copy);
      if (JSON.stringify(c) !== JSON.stringify(before)) assert.unreachable(snapshotDiff(before, c, ['live', 'copy']));
      fsck(gitdir);
    } finally {
      await glayer(ws, 'umount');
      unmountUnder(base);
    }
  });

  test(`${backend}: commit while a process holds a file open in the view`, async () => {
    const { base, ws } = await workspace();
    try {
      await glayerOk(ws, 'mount-view', '--live', '--backend', backend);
      const view = join(ws, 'view');
      fs.writeFileSync(join(view, 'held'), 'held content\n');
      fs.writeFileSync(join(view, 'test'), 'changed\n');
      const fdNew = fs.openSync(join(view, 'held'), 'r');
      const fdLower = fs.openSync(join(view, 'test'), 'r');
      try {
        await glayerOk(ws, 'commit', '-m', 'while open');
        const buf = Buffer.alloc(100);
        assert.is(buf.subarray(0, fs.readSync(fdNew, buf, 0, 100, 0)).toString(), 'held content\n', 'the open file still reads');
        assert.is(buf.subarray(0, fs.readSync(fdLower, buf, 0, 100, 0)).toString(), 'changed\n');
      } finally {
        fs.closeSync(fdNew);
        fs.closeSync(fdLower);
      }
      assert.is(fs.readFileSync(join(view, 'held'), 'utf8'), 'held content\n', 'the remounted view shows the committed file');
      assert.is((await glayerOk(ws, 'status')).stdout, '');
    } finally {
      await glayer(ws, 'umount');
      unmountUnder(base);
    }
  });

  test(`${backend}: copied view -> live -> copied keeps every edit; umount leaves the .wh. form`, async () => {
    const { base, ws } = await workspace();
    try {
      await glayerOk(ws, 'mount-view');
      const view = join(ws, 'view');
      fs.writeFileSync(join(view, 'fromcopy'), 'c\n');
      await glayerOk(ws, 'mount-view', '--live', '--backend', backend);
      assert.is(fs.readFileSync(join(view, 'fromcopy'), 'utf8'), 'c\n');
      fs.rmSync(join(view, 'test'));
      assert.is((await glayerOk(ws, 'status')).stdout, 'D test\nA fromcopy\n'.split('\n').filter(Boolean).sort().join('\n') + '\n');
      await glayerOk(ws, 'umount');
      assert.equal(fs.readdirSync(join(ws, 'upper')).sort(), ['.wh.test', 'fromcopy']);
      await glayerOk(ws, 'mount-view');
      assert.equal(fs.readdirSync(view).sort(), ['fromcopy']);
      assert.is((await glayerOk(ws, 'status')).stdout, 'A fromcopy\nD test\n');
      // And live again, from the .wh. form.
      await glayerOk(ws, 'mount-view', '--live', '--backend', backend);
      assert.equal(fs.readdirSync(view).sort(), ['fromcopy']);
      assert.is((await glayerOk(ws, 'status')).stdout, 'A fromcopy\nD test\n');
    } finally {
      await glayer(ws, 'umount');
      unmountUnder(base);
    }
  });

  test(`${backend}: gc removes the layer cache's entries no stack uses, never those of the mounted view`, async () => {
    const { base, ws, gitdir } = await workspace();
    const cache = join(gitdir, 'glayer', 'cache');
    const entries = (): string[] => ['k', 'f', 'u'].flatMap((k) => (fs.existsSync(join(cache, k)) ? fs.readdirSync(join(cache, k)).map((n) => `${k}/${n}`) : [])).sort();
    try {
      await glayerOk(ws, 'mount-view', '--live', '--backend', backend);
      const bottom = git(gitdir, ['rev-parse', 'HEAD']).trim();
      fs.writeFileSync(join(ws, 'view', 'new'), 'new\n');
      const top = (await glayerOk(ws, 'commit', '-m', 'top')).stdout.trim();
      const form = backend === 'kernel' ? 'k' : 'f';
      const used = [`${form}/${top}`, `${form}/${bottom}`].sort();
      assert.equal(entries(), used, 'both layers cached');
      // A stranger entry (a layer no stack has) goes; the mounted view's stay.
      fs.mkdirSync(join(cache, form, '0'.repeat(40)));
      assert.match((await glayerOk(ws, 'gc')).stdout, /layer cache: 1 unused entry removed/);
      assert.equal(entries(), used);
      // Drop the top layer: its entry is used by no stack once the view is remounted on the new top.
      await glayerOk(ws, 'reset', 'HEAD~1');
      await glayerOk(ws, 'mount-view', '--live', '--backend', backend);
      await glayerOk(ws, 'gc');
      assert.equal(entries(), [`${form}/${bottom}`]);
      assert.equal(fs.readdirSync(join(ws, 'view')).sort(), fs.readdirSync(join(cache, form, bottom)).filter((n) => !n.startsWith('.wh.')).sort());
      fsck(gitdir);
    } finally {
      await glayer(ws, 'umount');
      unmountUnder(base);
    }
  });

  test(`${backend}: fsck unmounts a mount no state names and removes leftovers`, async () => {
    const { base, ws, gitdir } = await workspace();
    try {
      await glayerOk(ws, 'mount-view', '--live', '--backend', backend);
      const view = join(ws, 'view');
      // What a kill between the mount and the state write leaves: a mount the state does not know.
      const stateFile = join(gitdir, 'glayer', 'state.json');
      const state = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
      fs.writeFileSync(stateFile, JSON.stringify({ ...state, live: null, view: null }));
      fs.mkdirSync(join(gitdir, 'glayer', 'cache', 'tmp', '999999-k-deadbeef'), { recursive: true });
      fs.mkdirSync(join(gitdir, 'glayer', 'live', 'retired-999999-1'), { recursive: true });
      const r = await glayerOk(ws, 'fsck');
      assert.match(r.stdout, `unmounted ${view}`);
      assert.equal(mountsUnder(view), []);
      assert.not.ok(fs.existsSync(join(gitdir, 'glayer', 'cache', 'tmp', '999999-k-deadbeef')));
      assert.not.ok(fs.existsSync(join(gitdir, 'glayer', 'live', 'retired-999999-1')));
      assert.equal(fs.readdirSync(join(gitdir, 'glayer', 'live')), [], 'the work directory went with the mount');
    } finally {
      await glayer(ws, 'umount');
      unmountUnder(base);
    }
  });
}

if (BACKENDS.length) {
  const backend = BACKENDS[0];

  test('a backend that is not installed: one line naming what is missing, and the copied view still works', async () => {
    const { base, ws } = await workspace();
    const r = await glayerWithPath(ws, '/nonexistent', 'mount-view', '--live', '--backend', 'fuse');
    assert.is(r.code, 2);
    assert.is(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, 'fuse-overlayfs is not installed');
    await glayerOk(ws, 'mount-view');
    assert.is(fs.readFileSync(join(ws, 'view', 'test'), 'utf8'), 'test1\n');
    unmountUnder(base);
  });

  test(`${backend}: SIGKILL during mount-view --live and commit leaves no half-made mount`, async () => {
    const { base, ws, gitdir } = await workspace();
    const view = join(ws, 'view');
    const KILLS = Number(process.env.GLAYER_LIVE_KILLS ?? 12);
    try {
      let expected = 'test1\n';
      for (let k = 0; k < KILLS; k++) {
        const committing = k % 2 === 1;
        if (committing) {
          await glayerOk(ws, 'mount-view', '--live', '--backend', backend);
          expected = `round ${k}\n`;
          fs.writeFileSync(join(view, 'test'), expected);
        }
        const { child, done } = run(ws, committing ? ['commit', '-m', `round ${k}`] : ['mount-view', '--live', '--backend', backend]);
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 700));
        child.kill('SIGKILL');
        await done;
        // Either mounted and complete, or not mounted at all.
        const here = mountsUnder(view);
        if (here.length) assert.is(fs.readFileSync(join(view, 'test'), 'utf8'), expected, `round ${k}: a mount shows the whole view`);
        await glayerOk(ws, 'fsck');
        fsck(gitdir);
        await glayerOk(ws, 'mount-view', '--live', '--backend', backend);
        assert.is(fs.readFileSync(join(view, 'test'), 'utf8'), expected, `round ${k}: nothing lost`);
        assert.ok(mountsUnder(view).length === 1, `round ${k}: one mount at the view`);
        const st = (await glayerOk(ws, 'status')).stdout;
        assert.ok(st === '' || st === 'C test\n', `round ${k}: status ${st}`);
        if (st !== '') await glayerOk(ws, 'commit', '-m', `finish ${k}`);
        await glayerOk(ws, 'umount');
        const tmp = fs.readdirSync(join(gitdir, 'glayer', 'cache', 'tmp'));
        assert.equal(tmp, [], `round ${k}: no cache extraction left after fsck`);
      }
    } finally {
      await glayer(ws, 'umount');
      unmountUnder(base);
    }
    assert.equal(mountsUnder(base), []);
  });

  test(`${backend}: a 1,000-layer stack mounts (the bottom flattened) and equals the copied view`, async () => {
    const { base, ws, gitdir } = await workspace('empty');
    // 1,000 layers in one git fast-import: layer i adds d<i%7>/f<i>, changes 'common', and every 10th whites out
    // f<i-5>. `deleteall` first: a layer's tree is its delta only.
    const lines: string[] = [];
    for (let i = 1; i <= 1000; i++) {
      const msg = `layer ${i}`;
      lines.push('commit refs/heads/main', `committer t <t@t> ${1700000000 + i} +0000`, `data ${msg.length}`, msg, 'deleteall');
      lines.push(`M 100644 inline d${i % 7}/f${i}`, `data ${String(i).length}`, String(i));
      lines.push('M 100644 inline common', `data ${String(i).length}`, String(i));
      if (i % 10 === 0) lines.push(`M 100644 inline d${(i - 5) % 7}/.wh.f${i - 5}`, 'data 0', '');
      lines.push('');
    }
    execFileSync('git', ['--git-dir', gitdir, 'fast-import', '--quiet', '--force'], { input: lines.join('\n') });
    assert.is(git(gitdir, ['rev-list', '--count', 'refs/heads/main']), '1000');
    try {
      const copy = join(base, 'copy');
      await glayerOk(ws, 'mount-view', copy);
      const m = await glayerOk(ws, 'mount-view', '--live', '--backend', backend, '--json', join(base, 'live'));
      const r = JSON.parse(m.stdout);
      assert.ok(r.live.lowers <= 65, `${r.live.lowers} lower directories`);
      const a = snapshot(copy);
      const b = snapshot(join(base, 'live'));
      if (JSON.stringify(a) !== JSON.stringify(b)) assert.unreachable(snapshotDiff(b, a, ['live', 'copy']));
      assert.is(fs.readFileSync(join(base, 'live', 'common'), 'utf8'), '1000');
      assert.not.ok(fs.existsSync(join(base, 'live', 'd5', 'f5')), 'a whiteout deep in the flattened part holds');
      // Warm: the second mount extracts nothing.
      await glayerOk(ws, 'umount');
      const again = JSON.parse((await glayerOk(ws, 'mount-view', '--live', '--backend', backend, '--json', join(base, 'live'))).stdout);
      assert.is(again.live.extracted, 0);
    } finally {
      await glayer(ws, 'umount');
      unmountUnder(base);
    }
  });
}

async function glayerWithPath(cwd: string, path: string, ...argv: string[]): Promise<{ code: number; stderr: string }> {
  const saved = process.env.PATH;
  process.env.PATH = path;
  try { return await glayer(cwd, ...argv); } finally { process.env.PATH = saved; }
}

test.run();
