// `glayer gc` with native git as the oracle: after gc, `git fsck --strict` passes, `git verify-pack` reads the
// one new pack (its deltas included), every reachable object is there with its content, unreachable objects
// older than the grace period are gone and younger ones kept; a reader that listed the packs before gc still
// reads its objects; the delta encoder round-trips. A kill -9 during gc leaves a store that fsck accepts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { glayer, glayerOk } from '../helpers/cli.js';
import { fsck, git } from '../helpers/git.js';
import { Rng } from '../helpers/prng.js';
import { tmpdir } from '../helpers/tmp.js';
import { applyDelta, encodeDelta } from '../../src/store/repack.js';
import { ObjectStore } from '../../src/store/objects.js';
import { pruneCutoff } from '../../src/api/gc.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

async function commit(ws: string, msg: string): Promise<string> {
  return JSON.parse((await glayerOk(ws, 'commit', '-m', msg, '--json')).stdout).id;
}

/** A workspace with `n` layers editing a few files of a tree of text files (versions of one path: deltas). */
async function workspace(n: number): Promise<{ ws: string; gitdir: string; view: string; ids: string[] }> {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  await glayerOk(ws, 'mount-view');
  const view = join(ws, 'view');
  const ids: string[] = [];
  for (let d = 0; d < 5; d++) {
    fs.mkdirSync(join(view, `d${d}`), { recursive: true });
    for (let f = 0; f < 10; f++) fs.writeFileSync(join(view, `d${d}`, `f${f}`), Array.from({ length: 200 }, (_, i) => `d${d} f${f} line ${i}\n`).join(''));
  }
  ids.push(await commit(ws, 'base'));
  for (let k = 1; k < n; k++) {
    fs.appendFileSync(join(view, `d${k % 5}`, `f${k % 10}`), `edit ${k}\n`);
    ids.push(await commit(ws, `edit ${k}`));
  }
  return { ws, gitdir: join(ws, '.glayer'), view, ids };
}

/** Every object git can reach from all refs (and reflogs), with its type. */
function reachable(gitdir: string): string[] {
  return git(gitdir, ['rev-list', '--objects', '--all', '--reflog']).split('\n').map((l) => l.slice(0, 40)).sort();
}

test('delta encoding round-trips and finds copies both ways', () => {
  const rng = new Rng(7);
  for (let k = 0; k < 200; k++) {
    const base = rng.chance(0.5) ? rng.bytes(rng.int(0, 5000)) : Buffer.from(Array.from({ length: rng.int(1, 300) }, (_, i) => `line ${i} ${rng.int(0, 9)}\n`).join(''));
    const edits = rng.int(0, 5);
    let target = Buffer.from(base);
    for (let e = 0; e < edits; e++) {
      const at = rng.int(0, target.length);
      target = Buffer.concat([target.subarray(0, at), rng.bytes(rng.int(0, 100)), target.subarray(Math.min(target.length, at + rng.int(0, 100)))]);
    }
    const d = encodeDelta(base, target, Infinity);
    if (d) assert.ok(applyDelta(base, d).equals(target), `case ${k}`);
  }
  const big = Buffer.alloc(200_000, 'abcdefghij');
  const d = encodeDelta(big, Buffer.concat([big, Buffer.from('tail')]))!;
  assert.ok(d.length < 100, `a long copy is a few instructions (${d.length} bytes)`);
  assert.is(encodeDelta(Buffer.alloc(100, 1), Buffer.alloc(100, 2)), null);
});

test('gc: one pack with deltas, fsck --strict passes, every reachable object kept, unreachable ones pruned', async () => {
  const w = await workspace(12);
  await glayerOk(w.ws, 'tag', 'v1', w.ids[5]);
  // Make layers unreachable: a reset, then forget the reflog (as an expired reflog would).
  await glayerOk(w.ws, 'reset', '--hard', w.ids[8]);
  fs.rmSync(join(w.gitdir, 'logs'), { recursive: true });
  const want = reachable(w.gitdir);
  // The caches kept per layer hold lines of every layer, the unreachable ones and a repeated one included.
  const cacheFile = (name: string) => join(w.gitdir, 'glayer', name);
  fs.writeFileSync(cacheFile('depths'), w.ids.map((id, k) => `${id} ${k + 1}\n`).join('') + `${w.ids[2]} 3\n`);
  assert.ok(fs.readFileSync(cacheFile('union-meta'), 'latin1').includes(w.ids[11]), 'commit recorded the union manifest of the last layer');
  const beforeAll = git(w.gitdir, ['count-objects', '-v']);
  assert.match(beforeAll, /count: \d+/);
  // Young unreachable objects are kept by default.
  let r = JSON.parse((await glayerOk(w.ws, 'gc', '--json')).stdout);
  assert.ok(r.keptUnreachable > 0, 'young unreachable objects kept');
  // Cache lines go with reachability, whatever the age: 3 layers x 3 caches, and the repeat.
  assert.ok(r.unionLinesDropped >= 7, `dropped ${r.unionLinesDropped}`);
  assert.is(r.pruned, 0);
  assert.ok(git(w.gitdir, ['cat-file', '-t', w.ids[11]]) === 'commit');
  fsck(w.gitdir);
  // --prune=now removes them.
  r = JSON.parse((await glayerOk(w.ws, 'gc', '--prune=now', '--json')).stdout);
  assert.ok(r.pruned >= 3, `pruned ${r.pruned}`);
  assert.ok(r.deltas > 0, 'versions of a path are stored as deltas');
  fsck(w.gitdir);
  assert.equal(reachable(w.gitdir), want);
  // Only reachable layers keep cache lines, each once, and the objects those lines name are still there.
  const layers = new Set(git(w.gitdir, ['rev-list', '--all']).split('\n'));
  for (const name of ['unions', 'union-meta', 'depths']) {
    const lines = fs.readFileSync(cacheFile(name), 'latin1').split('\n').filter(Boolean);
    const commits = lines.map((l) => l.split(' ')[0]);
    assert.ok(commits.every((c) => layers.has(c)), `${name}: only reachable layers`);
    assert.is(new Set(commits).size, commits.length, `${name}: each layer once`);
    if (name === 'depths') assert.equal(commits.sort(), w.ids.slice(0, 9).sort(), 'depths: the nine reachable layers');
    else for (const l of lines) { const v = l.split(' ')[1]; if (v !== '-') assert.is(spawnSyncGit(w.gitdir, ['cat-file', '-e', v]), 0, `${name}: ${v} is kept`); }
  }
  const packs = fs.readdirSync(join(w.gitdir, 'objects', 'pack')).filter((n) => n.endsWith('.pack'));
  assert.is(packs.length, 1);
  const verify = git(w.gitdir, ['verify-pack', '-v', join(w.gitdir, 'objects', 'pack', packs[0])]);
  assert.match(verify, /chain length = 1: \d+ objects?/);
  assert.equal(fs.readdirSync(join(w.gitdir, 'objects')).filter((n) => /^[0-9a-f]{2}$/.test(n)), []);
  // The stack still works: views, diffs, and a new commit.
  await glayerOk(w.ws, 'mount-view');
  assert.is((await glayerOk(w.ws, 'status')).stdout, '');
  assert.ok((await glayerOk(w.ws, 'diff', 'v1', 'HEAD', '--stat')).stdout.includes('changed'));
  fs.writeFileSync(join(w.view, 'after'), 'x');
  await commit(w.ws, 'after gc');
  fsck(w.gitdir);
  // git's own gc agrees nothing more is reachable.
  const c = spawnSyncGit(w.gitdir, ['cat-file', '-e', w.ids[11]]);
  assert.is(c, 1, 'an unreachable layer is gone (cat-file -e exits 1)');
});

function spawnSyncGit(gitdir: string, args: string[]): number {
  try { git(gitdir, args); return 0; } catch (e) { return (e as { status: number }).status; }
}

test('gc while a reader has listed the packs: the reader still finds its objects', async () => {
  const w = await workspace(4);
  const reader = new ObjectStore(w.gitdir);
  const top = git(w.gitdir, ['rev-parse', 'HEAD']);
  assert.is(reader.read(top).type, 'commit'); // packs listed, one read done
  await glayerOk(w.ws, 'gc', '--prune=now');
  const tree = git(w.gitdir, ['rev-parse', 'HEAD^{tree}']);
  assert.is(reader.read(tree).type, 'tree');
  for (const oid of reachable(w.gitdir)) assert.ok(reader.read(oid).data.length >= 0);
  reader.close();
});

test('--prune dates; a kill -9 during gc leaves a store fsck accepts, and a rerun finishes', async () => {
  const now = Date.parse('2026-01-15T00:00:00Z');
  assert.is(pruneCutoff(undefined, now), now - 14 * 86400e3);
  assert.is(pruneCutoff('now', now), Infinity);
  assert.is(pruneCutoff('never', now), -Infinity);
  assert.is(pruneCutoff('3.days.ago', now), now - 3 * 86400e3);
  assert.is(pruneCutoff('2026-01-01', now), Date.parse('2026-01-01'));
  const bad = await glayer(tmpdir(), 'gc', '--prune', 'whenever');
  assert.is(bad.code, 2);
  const w = await workspace(30);
  const want = reachable(w.gitdir);
  for (const delay of [5, 40, 120, 250]) {
    const child = spawn(process.execPath, [join(ROOT, 'bin/glayer'), 'gc', '--prune=now'], { cwd: w.ws, stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, delay));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    fs.rmSync(join(w.gitdir, 'glayer', 'lock'), { force: true });
    for (const n of fs.readdirSync(join(w.gitdir, 'objects', 'pack'))) if (n.startsWith('tmp_')) fs.rmSync(join(w.gitdir, 'objects', 'pack', n));
    fsck(w.gitdir);
    assert.equal(reachable(w.gitdir), want, `after a kill at ${delay} ms`);
  }
  await glayerOk(w.ws, 'gc', '--prune=now');
  fsck(w.gitdir);
  assert.equal(reachable(w.gitdir), want);
});

test.run();
