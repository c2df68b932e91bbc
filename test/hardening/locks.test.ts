// Locks: one writer per workspace. 16 `glayer commit` processes race, each after adding its own file to the
// view: every file ends up in exactly one layer, or the loser says why (one line, non-zero), and nothing is lost.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { glayer, glayerOk } from '../helpers/cli.js';
import { fsck, git } from '../helpers/git.js';
import { tmpdir } from '../helpers/tmp.js';
import { run } from './spawn.js';

const N = 16;

/** path -> ids of the layers whose own tree (delta) holds it. */
function layersHolding(gitdir: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const id of git(gitdir, ['rev-list', '--first-parent', 'refs/heads/main']).split('\n')) {
    for (const p of git(gitdir, ['ls-tree', '-r', '--name-only', id]).split('\n').filter(Boolean)) {
      out.set(p, [...(out.get(p) ?? []), id]);
    }
  }
  return out;
}

test(`${N} concurrent commits, each adding its own file: nothing lost, no file in two layers`, async () => {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws', '--template', 'aufs-demo');
  const ws = join(base, 'ws');
  await glayerOk(ws, 'mount-view');
  const results = await Promise.all(Array.from({ length: N }, (_, i) => {
    fs.writeFileSync(join(ws, 'view', `file${i}`), `content ${i}\n`);
    return run(ws, ['commit', '-m', `commit ${i}`], { GLAYER_LOCK_TIMEOUT_MS: '30000' }).done;
  }));
  let winners = 0;
  for (const [i, r] of results.entries()) {
    if (r.code === 0) { winners++; assert.match(r.stdout, /^[0-9a-f]{40}\n$/); continue; }
    const lines = r.stderr.trim().split('\n');
    assert.is(lines.length, 1, `loser ${i} must say why in one line: ${r.stderr}`);
    assert.match(lines[0], /^glayer: (nothing to commit|another glayer process)/, `loser ${i}: ${lines[0]}`);
    assert.ok(r.code === 1 || r.code === 2, `loser ${i} exit ${r.code}`);
  }
  assert.ok(winners >= 1);
  const gitdir = join(ws, '.glayer');
  assert.is(git(gitdir, ['rev-list', '--count', 'refs/heads/main']), String(1 + winners), 'one layer per winner');
  // Whatever no commit took is still in the writable layer; commit it now.
  const rest = await glayer(ws, 'commit', '-m', 'rest');
  assert.ok(rest.code === 0 || rest.code === 1, rest.stderr);
  const holding = layersHolding(gitdir);
  for (let i = 0; i < N; i++) {
    const ids = holding.get(`file${i}`) ?? [];
    assert.is(ids.length, 1, `file${i} must be in exactly one layer, found ${ids.length}`);
    assert.is(git(gitdir, ['show', `${ids[0]}:file${i}`]), `content ${i}`);
    assert.is(fs.readFileSync(join(ws, 'view', `file${i}`), 'utf8'), `content ${i}\n`);
  }
  assert.equal(fs.readdirSync(join(ws, 'upper')), []);
  assert.not.ok(fs.existsSync(join(gitdir, 'glayer', 'lock')), 'the lock is released');
  fsck(gitdir);
});

test('a writer waits a bounded time for the lock, then fails with a clear message', async () => {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws', '--template', 'aufs-demo');
  const ws = join(base, 'ws');
  // A live process holds the lock: this test's own pid.
  const lock = join(ws, '.glayer', 'glayer', 'lock');
  fs.writeFileSync(lock, `${process.pid}\n`);
  fs.writeFileSync(join(ws, 'upper', 'f'), 'f\n');
  const t0 = Date.now();
  const r = await run(ws, ['commit', '-m', 'x'], { GLAYER_LOCK_TIMEOUT_MS: '300' }).done;
  assert.ok(Date.now() - t0 < 10_000);
  assert.is(r.code, 2);
  assert.match(r.stderr, new RegExp(`^glayer: another glayer process \\(pid ${process.pid}\\) is writing this workspace`));
  const j = await run(ws, ['status', '--json'], { GLAYER_LOCK_TIMEOUT_MS: '100' }).done;
  assert.is(JSON.parse(j.stderr).error.code, 'E_LOCKED');
  // A lock whose process is gone is taken over.
  fs.writeFileSync(lock, '999999\n');
  await glayerOk(ws, 'commit', '-m', 'x');
  fsck(join(ws, '.glayer'));
});

test('a ref moved by another writer between read and update is not overwritten', async () => {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws', '--template', 'aufs-demo');
  const ws = join(base, 'ws');
  const gitdir = join(ws, '.glayer');
  // A git process holds the ref lock: the commit must refuse, and lose nothing.
  fs.writeFileSync(join(gitdir, 'refs', 'heads', 'main.lock'), '');
  fs.writeFileSync(join(ws, 'upper', 'f'), 'f\n');
  const head = git(gitdir, ['rev-parse', 'refs/heads/main']);
  const r = await glayer(ws, 'commit', '-m', 'x');
  assert.is(r.code, 2);
  assert.match(r.stderr, /locked/);
  assert.is(git(gitdir, ['rev-parse', 'refs/heads/main']), head);
  assert.is(fs.readFileSync(join(ws, 'upper', 'f'), 'utf8'), 'f\n');
  // fsck removes the lock no process holds; then the commit goes through.
  const f = await glayerOk(ws, 'fsck');
  assert.match(f.stdout, /removed .*main\.lock/);
  await glayerOk(ws, 'commit', '-m', 'x');
  fsck(gitdir);
});

test.run();
