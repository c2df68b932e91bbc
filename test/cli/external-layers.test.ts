// Layers written by plain native git (mktree / commit-tree, and a real work tree with `git commit`, no
// trailers), put on the stack with `git update-ref`, read by glayer status / log / mount-view like its own;
// and a stack ref moved under a view with user edits shows the new stack plus the edits.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { glayer, glayerOk } from '../helpers/cli.js';
import { GIT_ENV, commitTree, fsck, git, mktree } from '../helpers/git.js';
import { tmpdir } from '../helpers/tmp.js';

function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const d of fs.readdirSync(join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) { out.push(r + '/'); walk(r); } else if (d.isSymbolicLink()) out.push(`${r} -> ${fs.readlinkSync(join(dir, r))}`); else out.push(r);
    }
  };
  walk('');
  return out.sort();
}

const read = (p: string): string => fs.readFileSync(p, 'utf8');

interface Setup { base: string; ws: string; gitdir: string; view: string; layers: string[] }

/** An empty glayer workspace whose stack gets three layers written with native git only. */
async function externalStack(): Promise<Setup> {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  const gitdir = join(ws, '.glayer');
  assert.is(spawnRev(gitdir, 'refs/heads/main'), null, 'the stack starts empty');

  // Layer 1: hash-object + mktree + commit-tree.
  const t1 = mktree(gitdir, [
    { mode: '040000', name: 'etc', entries: [
      { mode: '100644', name: 'hosts', content: '127.0.0.1 localhost\n' },
      { mode: '040000', name: 'conf', entries: [{ mode: '100644', name: 'a', content: 'a\n' }, { mode: '100644', name: 'b', content: 'b\n' }] },
    ] },
    { mode: '040000', name: 'bin', entries: [{ mode: '100755', name: 'sh', content: '#!sh\n' }, { mode: '100755', name: 'ls', content: 'ls\n' }] },
    { mode: '120000', name: 'lnk', content: 'etc/hosts' },
    { mode: '040000', name: 'var', entries: [] },
    { mode: '040000', name: 'old', entries: [{ mode: '040000', name: 'deep', entries: [{ mode: '100644', name: 'x', content: 'x\n' }] }] },
  ]);
  const l1 = commitTree(gitdir, t1, null, 'layer one (native)');
  git(gitdir, ['update-ref', 'refs/heads/main', l1, '0'.repeat(40)]);

  // Layer 2: a real work tree and `git commit`: its tree is the delta, markers are plain empty files.
  const wt = join(base, 'wt');
  const g = (args: string[]) => execFileSync('git', ['-C', wt, ...args], { env: GIT_ENV }).toString().trim();
  execFileSync('git', ['init', '-q', wt], { env: GIT_ENV });
  g(['fetch', '-q', gitdir, 'refs/heads/main']);
  g(['reset', '-q', '--soft', 'FETCH_HEAD']);
  const files: Record<string, string> = {
    'etc/hosts': '127.0.0.1 localhost\n::1 localhost\n',
    'etc/conf/.wh.a': '',
    '.wh.lnk': '',
    'bin/.wh..wh..opq': '',
    'bin/busybox': '#!busybox\n',
    'new/file': 'new\n',
  };
  for (const [p, c] of Object.entries(files)) {
    fs.mkdirSync(join(wt, p, '..'), { recursive: true });
    fs.writeFileSync(join(wt, p), c);
  }
  fs.chmodSync(join(wt, 'bin/busybox'), 0o755);
  g(['add', '-A']);
  g(['commit', '-q', '-m', 'layer two (git commit)']);
  const l2 = g(['rev-parse', 'HEAD']);
  assert.is(g(['rev-parse', 'HEAD^']), l1);
  execFileSync('git', ['--git-dir', gitdir, 'fetch', '-q', wt, 'HEAD'], { env: GIT_ENV });
  git(gitdir, ['update-ref', 'refs/heads/main', l2, l1]);

  // Layer 3: mktree again: a directory whited out and re-created in the same layer, a no-op whiteout, an empty dir.
  const t3 = mktree(gitdir, [
    { mode: '100644', name: '.wh.old', content: '' },
    { mode: '040000', name: 'old', entries: [{ mode: '100644', name: 'fresh', content: 'fresh\n' }] },
    { mode: '040000', name: 'var', entries: [{ mode: '040000', name: 'log', entries: [] }] },
    { mode: '100644', name: '.wh.nonexistent', content: '' },
  ]);
  const l3 = commitTree(gitdir, t3, l2, 'layer three (native)');
  git(gitdir, ['update-ref', 'refs/heads/main', l3, l2]);
  fsck(gitdir);
  return { base, ws, gitdir, view: join(ws, 'view'), layers: [l1, l2, l3] };
}

function spawnRev(gitdir: string, ref: string): string | null {
  try { return git(gitdir, ['rev-parse', '--verify', '-q', ref]); } catch { return null; }
}

const EXPECTED_VIEW = ['bin/', 'bin/busybox', 'etc/', 'etc/conf/', 'etc/conf/b', 'etc/hosts', 'new/', 'new/file', 'old/', 'old/fresh', 'var/', 'var/log/'];

test('native git layers: status, log and mount-view read them like glayer\'s own', async () => {
  const s = await externalStack();
  const st = await glayerOk(s.ws, 'status');
  assert.is(st.stdout, '');
  assert.is(st.stderr, '');

  const log = JSON.parse((await glayerOk(s.ws, 'log', '--json')).stdout) as Array<{ id: string; parent: string | null; message: string; added: number; changed: number; deleted: number; bytes: number }>;
  assert.equal(log.map((l) => l.id), [...s.layers].reverse());
  assert.equal(log.map((l) => l.message), ['layer three (native)', 'layer two (git commit)', 'layer one (native)']);
  assert.equal(log.map((l) => l.parent), [s.layers[1], s.layers[0], null]);
  // Layer 3: D old/deep, A old/fresh, A var/log. Layer 2: C etc/hosts; D etc/conf/a, lnk, bin/ls, bin/sh; A bin/busybox, new, new/file.
  assert.equal(log.map((l) => [l.added, l.changed, l.deleted]), [[2, 0, 1], [3, 1, 4], [13, 0, 0]]);
  assert.is(log[1].bytes, '127.0.0.1 localhost\n::1 localhost\n'.length + '#!busybox\n'.length + 'new\n'.length);
  const text = (await glayerOk(s.ws, 'log')).stdout;
  assert.match(text, /layer two \(git commit\)/);
  assert.match(text, new RegExp(`^${s.layers[0].slice(0, 12)} `, 'm'));

  await glayerOk(s.ws, 'mount-view');
  assert.equal(listing(s.view), EXPECTED_VIEW);
  assert.is(read(join(s.view, 'etc/hosts')), '127.0.0.1 localhost\n::1 localhost\n');
  assert.is(fs.statSync(join(s.view, 'bin/busybox')).mode & 0o777, 0o755);
  assert.is(read(join(s.view, 'etc/conf/b')), 'b\n');
  assert.equal(listing(join(s.ws, 'upper')), []);
  assert.is((await glayerOk(s.ws, 'status')).stdout, '');
  // A second view elsewhere is the same.
  const other = join(s.base, 'other');
  await glayerOk(s.ws, 'mount-view', other);
  assert.equal(listing(other), EXPECTED_VIEW);
  fsck(s.gitdir);
});

test('the stack ref moves under a view with user edits: the view shows the new stack plus the edits', async () => {
  const s = await externalStack();
  await glayerOk(s.ws, 'mount-view');
  // The user edits the view (glayer not run since).
  fs.writeFileSync(join(s.view, 'etc/conf/b'), 'b2\n');
  fs.rmSync(join(s.view, 'new/file'));
  fs.writeFileSync(join(s.view, 'mine.txt'), 'mine\n');
  // Meanwhile someone puts a native layer on the stack.
  const top = s.layers[2];
  const t4 = mktree(s.gitdir, [
    { mode: '040000', name: 'opt', entries: [{ mode: '100755', name: 'tool', content: 'tool\n' }] },
    { mode: '040000', name: 'etc', entries: [{ mode: '100644', name: '.wh.hosts', content: '' }] },
  ]);
  const l4 = commitTree(s.gitdir, t4, top, 'layer four (native, moved under the view)');
  git(s.gitdir, ['update-ref', 'refs/heads/main', l4, top]);

  const st = await glayerOk(s.ws, 'status');
  assert.is(st.stdout, 'C etc/conf/b\nA mine.txt\nD new/file\n');
  assert.is(st.stderr, '');
  assert.equal(listing(s.view), ['bin/', 'bin/busybox', 'etc/', 'etc/conf/', 'etc/conf/b', 'mine.txt', 'new/', 'old/', 'old/fresh', 'opt/', 'opt/tool', 'var/', 'var/log/']);
  assert.is(read(join(s.view, 'etc/conf/b')), 'b2\n');
  assert.is(read(join(s.view, 'opt/tool')), 'tool\n');
  assert.equal(listing(join(s.ws, 'upper')), ['etc/', 'etc/conf/', 'etc/conf/b', 'mine.txt', 'new/', 'new/.wh.file']);

  // Commit the edits on top of the moved stack.
  const c = JSON.parse((await glayerOk(s.ws, 'commit', '-m', 'user edits', '--json')).stdout) as { id: string; parent: string };
  assert.is(c.parent, l4);
  assert.is(git(s.gitdir, ['rev-parse', 'refs/heads/main']), c.id);
  assert.equal(listing(join(s.ws, 'upper')), []);

  // Again, now with a clash: the view and a new native layer change the same file.
  fs.writeFileSync(join(s.view, 'etc/conf/b'), 'b3 from the view\n');
  const t6 = mktree(s.gitdir, [{ mode: '040000', name: 'etc', entries: [{ mode: '040000', name: 'conf', entries: [{ mode: '100644', name: 'b', content: 'upstream\n' }] }] }]);
  const l6 = commitTree(s.gitdir, t6, c.id, 'upstream change');
  git(s.gitdir, ['update-ref', 'refs/heads/main', l6, c.id]);
  const st2 = await glayerOk(s.ws, 'status');
  assert.is(st2.stdout, 'C etc/conf/b\n');
  assert.is(st2.stderr, "glayer: warning: etc/conf/b changed both in the view and in the writable layer; kept the view's version\n");
  assert.is(read(join(s.view, 'etc/conf/b')), 'b3 from the view\n');
  assert.is(read(join(s.ws, 'upper/etc/conf/b')), 'b3 from the view\n');
  fsck(s.gitdir);
});

test('an external layer that breaks the format is refused, naming the layer and the path', async () => {
  const s = await externalStack();
  await glayerOk(s.ws, 'mount-view');
  const before = listing(s.view);
  const bad = mktree(s.gitdir, [{ mode: '040000', name: 'etc', entries: [{ mode: '100644', name: '.wh..wh.foo', content: '' }] }]);
  const l = commitTree(s.gitdir, bad, s.layers[2], 'bad layer');
  git(s.gitdir, ['update-ref', 'refs/heads/main', l, s.layers[2]]);
  for (const verb of [['status'], ['mount-view'], ['log']]) {
    const r = await glayer(s.ws, ...verb);
    assert.is(r.code, 2, `${verb}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.is(lines.length, 1, r.stderr);
    assert.ok(lines[0].includes(l.slice(0, 12)) && lines[0].includes('etc/.wh..wh.foo'), lines[0]);
    assert.not.match(r.stderr, /\n\s+at /);
  }
  assert.equal(listing(s.view), before, 'the view is untouched');
  // A submodule entry too.
  const sub = mktree(s.gitdir, [{ mode: '160000', name: 'vendor', content: s.layers[0] }]);
  const l2 = commitTree(s.gitdir, sub, s.layers[2], 'submodule layer');
  git(s.gitdir, ['update-ref', 'refs/heads/main', l2, l]);
  const r = await glayer(s.ws, 'status', '--json');
  assert.is(r.code, 2);
  const err = JSON.parse(r.stderr) as { error: { code: string; message: string } };
  assert.is(err.error.code, 'E_INVALID_LAYER');
  assert.match(err.error.message, /vendor: submodule/);
});

test.run();
