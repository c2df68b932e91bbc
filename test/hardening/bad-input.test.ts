// Bad input everywhere: not a workspace, unknown layer, unreadable and vanishing files, names that are not
// UTF-8, very deep trees and very wide directories. Errors are one line with a stable code; --json prints
// {"error": {"code", "message"}}.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { glayer, glayerOk } from '../helpers/cli.js';
import { GIT_ENV, fsck, git } from '../helpers/git.js';
import { tmpdir } from '../helpers/tmp.js';
import { Store } from '../../src/store/store.js';
import { UnknownLayerError } from '../../src/errors.js';
import { assertRefusal } from './util.js';
import { BIN, run } from './spawn.js';

test('not a workspace: every command says so, with a stable code in --json', async () => {
  const dir = tmpdir();
  for (const args of [['status'], ['commit', '-m', 'x'], ['mount-view'], ['log'], ['info'], ['fsck']]) {
    assertRefusal(await glayer(dir, ...args), /not a glayer workspace/, args[0]);
    const j = await glayer(dir, ...args, '--json');
    assert.is(j.stdout, '');
    const parsed = JSON.parse(j.stderr);
    assert.is(parsed.error.code, 'E_NOT_WORKSPACE');
    assert.type(parsed.error.message, 'string');
  }
});

test('usage errors and unknown layers', async () => {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws', '--template', 'aufs-demo');
  const ws = join(base, 'ws');
  assertRefusal(await glayer(ws, 'commit', '-m', ' '), /message/, 'empty message');
  assert.is(JSON.parse((await glayer(ws, 'commit', '-m', ' ', '--json')).stderr).error.code, 'E_USAGE');
  const store = new Store(join(ws, '.glayer'));
  for (const name of ['deadbeef', 'zz', '../../etc', '']) {
    assert.throws(() => store.findLayer(store.head(), name), (e: unknown) => e instanceof UnknownLayerError && (e as UnknownLayerError).code === 'E_UNKNOWN_LAYER');
  }
  store.close();
});

test('an unreadable file in the view (permission denied) is a one-line error, nothing changes', async () => {
  const base = tmpdir();
  fs.chmodSync(base, 0o755);
  await glayerOk(base, 'init', 'ws', '--template', 'aufs-demo');
  const ws = join(base, 'ws');
  await glayerOk(ws, 'mount-view');
  fs.writeFileSync(join(ws, 'view', 'secret'), 'no\n');
  execFileSync('chown', ['-R', 'nobody', ws]);
  fs.chmodSync(join(ws, 'view', 'secret'), 0o000);
  const upperBefore = fs.readdirSync(join(ws, 'upper'));
  // Root reads anything, so run glayer as an unprivileged user.
  const probe = spawnSync(process.execPath, [BIN, '--version'], { uid: 65534, gid: 65534 });
  if (probe.status !== 0) { console.log(`  (skipped: cannot run glayer as nobody: ${probe.stderr})`); return; }
  for (const args of [['status'], ['commit', '-m', 'x']]) {
    const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ws, uid: 65534, gid: 65534, env: { ...process.env, NO_COLOR: '1' } });
    assertRefusal({ code: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() }, /secret: permission denied/, args[0]);
    const j = spawnSync(process.execPath, [BIN, ...args, '--json'], { cwd: ws, uid: 65534, gid: 65534 });
    assert.is(JSON.parse(j.stderr.toString()).error.code, 'E_IO');
  }
  assert.equal(fs.readdirSync(join(ws, 'upper')), upperBefore);
  fsck(join(ws, '.glayer'));
});

test('files that vanish and appear during scans: never an internal error', async () => {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws', '--template', 'aufs-demo');
  const ws = join(base, 'ws');
  await glayerOk(ws, 'mount-view');
  const churn = join(ws, 'view', 'churn');
  fs.mkdirSync(churn);
  const script = `
    const fs = require('fs'); const d = ${JSON.stringify(churn)}; const end = Date.now() + 60000;
    for (let i = 0; Date.now() < end; i++) {
      const p = d + '/f' + (i % 300);
      try { if (i % 2) fs.writeFileSync(p, 'x'.repeat(i % 5000)); else fs.rmSync(p, { force: true, recursive: true }); } catch {}
      if (i % 97 === 0) { try { fs.mkdirSync(d + '/sub' + (i % 7)); fs.writeFileSync(d + '/sub' + (i % 7) + '/g', 'g'); } catch {} }
      if (i % 89 === 0) { try { fs.rmSync(d + '/sub' + (i % 7), { recursive: true, force: true }); } catch {} }
    }`;
  const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  try {
    for (let k = 0; k < 8; k++) {
      const args = k % 3 === 2 ? ['commit', '-m', `c${k}`] : ['status'];
      const r = await glayer(ws, ...args);
      assert.ok(r.code !== 70, `${args[0]}: internal error: ${r.stderr}`);
      if (r.code !== 0) {
        assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.match(r.stderr, /changed|vanished|run (it|the command) again|nothing to commit/, r.stderr);
      }
    }
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));
  }
  await glayerOk(ws, 'status');
  await glayerOk(ws, 'fsck');
  fsck(join(ws, '.glayer'));
});

test('names that are not UTF-8 round-trip byte for byte through commit and mount-view', async () => {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  await glayerOk(ws, 'mount-view');
  const names = [Buffer.from([0xff, 0xfe, 0x61]), Buffer.from([0x63, 0x61, 0x66, 0xe9]), Buffer.from([0xc3, 0x28]), Buffer.from('caf\u00e9', 'utf8'), Buffer.from('cafe\u0301', 'utf8'), Buffer.from([0x80, 0x0a, 0x09])];
  const viewB = Buffer.from(join(ws, 'view'));
  for (const [i, n] of names.entries()) {
    fs.writeFileSync(Buffer.concat([viewB, Buffer.from('/'), n]), `file ${i}\n`);
  }
  fs.mkdirSync(Buffer.concat([viewB, Buffer.from('/'), names[0]]).toString('latin1') === '' ? '' : Buffer.concat([viewB, Buffer.from('/d'), names[1]]));
  fs.writeFileSync(Buffer.concat([viewB, Buffer.from('/d'), names[1], Buffer.from('/'), names[2]]), 'nested\n');
  await glayerOk(ws, 'commit', '-m', 'bytes');
  const gitdir = join(ws, '.glayer');
  const listed = execFileSync('git', ['--git-dir', gitdir, 'ls-tree', '-r', '-z', '--name-only', 'refs/heads/main'], { env: GIT_ENV });
  const got = listed.toString('latin1').split('\0').filter(Boolean).sort();
  const want = [...names.map((n) => n.toString('latin1')), Buffer.concat([Buffer.from('d'), names[1], Buffer.from('/'), names[2]]).toString('latin1')].sort();
  assert.equal(got, want);
  fsck(gitdir);
  const other = join(base, 'other');
  await glayerOk(ws, 'mount-view', other);
  const back = fs.readdirSync(other, { encoding: 'buffer' }).map((b) => b.toString('latin1')).sort();
  assert.equal(back, [...names.map((n) => n.toString('latin1')), Buffer.concat([Buffer.from('d'), names[1]]).toString('latin1')].sort());
  for (const [i, n] of names.entries()) assert.is(fs.readFileSync(Buffer.concat([Buffer.from(other + '/'), n]), 'utf8'), `file ${i}\n`);
  assert.is((await glayerOk(ws, 'status')).stdout, '');
});

/** A layer of `depth` nested directories `d/d/.../d/leaf` made by git fast-import (one process). */
function deepLayer(gitdir: string, depth: number, parent: string | null): string {
  const path = Array(depth).fill('d').join('/') + '/leaf';
  const stream = [
    'commit refs/heads/main',
    'committer T <t@e> 0 +0000',
    'data 4', 'deep',
    ...(parent ? [`from ${parent}`] : []),
    `M 100644 inline ${path}`, 'data 5', 'leaf', '', '',
  ].join('\n');
  execFileSync('git', ['--git-dir', gitdir, 'fast-import', '--quiet'], { env: GIT_ENV, input: stream });
  return git(gitdir, ['rev-parse', 'refs/heads/main']);
}

test('a tree 10,000 directories deep: no stack overflow in union, status, log, commit, mount-view', async () => {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws', '--template', 'aufs-demo');
  const ws = join(base, 'ws');
  const gitdir = join(ws, '.glayer');
  deepLayer(gitdir, 10_000, git(gitdir, ['rev-parse', 'refs/heads/main']));
  fsck(gitdir);
  const okOrClear = (r: { code: number; stderr: string }, what: string): void => {
    assert.ok(r.code !== 70 && !/Maximum call stack/.test(r.stderr), `${what}: ${r.stderr}`);
    if (r.code !== 0) assert.is(r.stderr.trim().split('\n').length, 1, `${what}: ${r.stderr}`);
  };
  const st = await glayer(ws, 'status');
  assert.is(st.code, 0, st.stderr);
  assert.is((await glayer(ws, 'log')).code, 0);
  fs.writeFileSync(join(ws, 'upper', 'top'), 'top\n');
  const c = await glayer(ws, 'commit', '-m', 'on top of the deep layer');
  assert.is(c.code, 0, c.stderr);
  fsck(gitdir);
  // The view's paths are longer than PATH_MAX: made through directory fds, or refused in one line.
  const m = await glayer(ws, 'mount-view');
  okOrClear(m, 'mount-view');
  if (m.code === 0) {
    const p = join(ws, 'view');
    // Walk down with relative steps (the full path is too long for one call).
    const walk = spawnSync('python3', ['-c', `import os\nos.chdir(${JSON.stringify(p)})\nfor i in range(10000): os.chdir('d')\nprint(open('leaf').read(), end='')`]);
    assert.is(walk.stdout.toString(), 'leaf\n', walk.stderr.toString());
    okOrClear(await glayer(ws, 'status'), 'status with the deep view');
    okOrClear(await glayer(ws, 'fsck'), 'fsck with the deep view');
  }
});

test('a deep tree the user makes in the view (2,000 levels) is recorded and committed', async () => {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  await glayerOk(ws, 'mount-view');
  const depth = 1900;
  const rel = Array(depth).fill('d').join('/');
  fs.mkdirSync(join(ws, 'view', rel), { recursive: true });
  fs.writeFileSync(join(ws, 'view', rel, 'f'), 'deep\n');
  assert.is((await glayer(ws, 'status')).code, 0);
  const c = await glayer(ws, 'commit', '-m', 'deep');
  assert.is(c.code, 0, c.stderr);
  const gitdir = join(ws, '.glayer');
  assert.is(git(gitdir, ['show', `refs/heads/main:${rel}/f`]), 'deep');
  fsck(gitdir);
});

test('200,000 entries in one directory: bounded memory (peak RSS < 1 GiB)', async () => {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  const gitdir = join(ws, '.glayer');
  const N = 200_000;
  // One layer with N empty files in wide/, written by git fast-import.
  const lines = ['commit refs/heads/main', 'committer T <t@e> 0 +0000', 'data 4', 'wide'];
  const empty = git(gitdir, ['hash-object', '-w', '--stdin'], '');
  for (let i = 0; i < N; i++) lines.push(`M 100644 ${empty} wide/f${i}`);
  execFileSync('git', ['--git-dir', gitdir, 'fast-import', '--quiet'], { env: GIT_ENV, input: lines.join('\n') + '\n\n', maxBuffer: 1 << 28 });
  const measure = async (args: string[]): Promise<number> => {
    const t = spawnSync('/usr/bin/time', ['-f', 'MAXRSS %M', process.execPath, BIN, ...args], { cwd: ws, env: { ...process.env, NO_COLOR: '1' }, maxBuffer: 1 << 28 });
    const err = t.stderr.toString();
    assert.is(t.status, 0, `${args.join(' ')}: ${err}`);
    const kb = Number(/MAXRSS (\d+)/.exec(err)?.[1]);
    assert.ok(kb > 0, err);
    return kb * 1024;
  };
  if (!fs.existsSync('/usr/bin/time')) { console.log('  (skipped: /usr/bin/time not found)'); return; }
  for (const args of [['status'], ['mount-view'], ['status']]) {
    const rss = await measure(args);
    assert.ok(rss < 1024 ** 3, `${args.join(' ')}: peak RSS ${Math.round(rss / 2 ** 20)} MiB`);
  }
  assert.is(fs.readdirSync(join(ws, 'view', 'wide')).length, N);
  void run;
});

test.run();
