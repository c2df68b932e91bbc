// Real root filesystems at real size: two Debian trees built with mmdebstrap (test/helpers/debian.ts), a minbase
// and the same with a small web server. The first is untarred into the view of a fresh workspace and committed;
// a fresh view must equal the tar's contents byte for byte. Then the view's contents are replaced by the second
// tree and committed: the layer's changes must be exactly what `git diff --no-index --name-status --no-renames`
// says of the two trees, and a fresh view must equal the second tree. On the way: copy-up shares the view's
// files (the workspace does not grow by a second copy), status is clean after each commit, and `git fsck --strict`
// and `glayer fsck` pass. The trees' metadata travels too (the layers' manifests, docs/metadata.md): modes,
// owners, device nodes, mtimes and hardlinks of each fresh view equal the tar's.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { glayerOk } from '../helpers/cli.js';
import { debianTars, du, specialFiles, treeDifferences, untar, walk } from '../helpers/debian.js';
import { GIT_ENV, fsck } from '../helpers/git.js';
import { tmpdir } from '../helpers/tmp.js';

/** `git diff --no-index --name-status --no-renames` of two directories, as "X\tpath" lines relative to each. */
function nativeNameStatus(parent: string, a: string, b: string): string[] {
  const r = spawnSync('git', ['diff', '--no-index', '--name-status', '--no-renames', a, b], { cwd: parent, env: GIT_ENV, maxBuffer: 1 << 28 });
  if (r.status !== 0 && r.status !== 1) throw new Error(`git diff --no-index failed: ${r.stderr}`);
  return r.stdout.toString('latin1').split('\n').filter(Boolean).map((l) => {
    const [status, path] = l.split('\t');
    // Paths come as a/PATH or b/PATH (quoted when they need it: then "a/PATH").
    const m = /^("?)[^/]+\/(.*)$/.exec(path)!;
    return `${status}\t${m[1]}${m[2]}`;
  });
}

/** Empty `dir` (keeping the directory itself, as a user replacing a view's contents would). */
function emptyDir(dir: string): void {
  for (const name of fs.readdirSync(dir)) fs.rmSync(join(dir, name), { recursive: true, force: true });
}

/** The regular files of `upper` (markers aside) that are not one inode with the view's regular file at the same path. */
function unshared(upper: string, view: string): string[] {
  const out: string[] = [];
  walk(upper, (rel, st) => {
    if (!st.isFile() || /(^|\/)\.wh\.[^/]*$/.test(rel)) return;
    // A device or fifo of the view is an empty file and a manifest record in the writable layer: nothing to share.
    const v = fs.lstatSync(Buffer.from(`${view}/${rel}`, 'latin1'));
    if (v.isFile() && v.ino !== st.ino) out.push(rel);
  });
  return out;
}

const warningsOf = (stderr: string): string[] => stderr.split('\n').filter(Boolean).sort();

test('two Debian root filesystems: commit, fresh views byte for byte, the layer of changes as git sees it', async () => {
  const tars = await debianTars();
  if (typeof tars === 'string') { console.log(`  (skipped: ${tars})`); return; }
  const scratch = tmpdir('glayer-debian-');
  // Where the time goes, printed at the end (the test is the slowest of the suite).
  const times: string[] = [];
  let t = Date.now();
  const lap = (what: string): void => { const n = Date.now(); times.push(`${what} ${((n - t) / 1000).toFixed(1)}s`); t = n; };
  // The oracle trees, untarred as they are (git diff cannot compare their devices: set aside for step 4 only).
  const A = join(scratch, 'A');
  const B = join(scratch, 'B');
  untar(tars.minbase, A);
  untar(tars.web, B);
  const devA = specialFiles(A);
  const devB = specialFiles(B);
  lap('untar A, B');
  assert.ok(devA.includes('dev/null'), `the minbase tree has device nodes: ${devA.join(' ')}`);

  // 1. The first tree into the view of a fresh workspace.
  await glayerOk(scratch, 'init', 'ws');
  const ws = join(scratch, 'ws');
  const upper = join(ws, 'upper');
  await glayerOk(ws, 'mount-view');
  const view = join(ws, 'view');
  untar(tars.minbase, view);
  lap('untar into the view');
  const viewKiB = du(view);
  const st1 = await glayerOk(ws, 'status');
  assert.equal(warningsOf(st1.stderr), []);
  assert.ok(st1.stdout.split('\n').length > 8000, `status lists the tree (${st1.stdout.split('\n').length} lines)`);
  lap('status');
  // Copy-up shared every file with the view: the workspace holds the bytes once.
  assert.equal(unshared(upper, view), []);
  const wsKiB = du(ws);
  assert.ok(wsKiB <= viewKiB * 1.05, `workspace ${wsKiB} KiB for a ${viewKiB} KiB tree`);
  const c1 = JSON.parse((await glayerOk(ws, 'commit', '-m', 'debian minbase', '--json')).stdout) as { id: string };
  lap('commit');
  assert.equal(fs.readdirSync(upper), []);
  assert.is((await glayerOk(ws, 'status')).stdout, '');
  fsck(join(ws, '.glayer'));

  // 2. A fresh view equals the tar's contents, metadata and devices included.
  const v1 = join(scratch, 'view1');
  await glayerOk(ws, 'mount-view', v1);
  lap('mount-view');
  assert.equal(treeDifferences(A, v1, new Set(), true), []);

  lap('compare');
  // 3. Replace the view's contents with the second tree; status, commit.
  emptyDir(v1);
  untar(tars.web, v1);
  const st2 = await glayerOk(ws, 'status');
  lap('replace the view, status');
  assert.equal(warningsOf(st2.stderr), []);
  assert.equal(unshared(upper, v1), []);
  const c2 = JSON.parse((await glayerOk(ws, 'commit', '-m', 'debian minbase + lighttpd', '--json')).stdout) as { id: string };
  lap('commit');
  assert.is.not(c2.id, c1.id);
  assert.is((await glayerOk(ws, 'status')).stdout, '');

  // 4. The layer's changes are git's name-status of the two trees.
  const devicesOfB = new Map(devB.map((d) => [d, fs.lstatSync(join(B, d))]));
  for (const d of devA) fs.rmSync(join(A, d));
  for (const d of devB) fs.rmSync(join(B, d));
  const want = nativeNameStatus(scratch, 'A', 'B');
  // The layer's manifest (the metadata's changes) is listed as a file of its own: not one of the trees' paths.
  const got = (await glayerOk(ws, 'show', c2.id, '--name-status', '--no-renames')).stdout.split('\n').filter((l) => /^[AMDT]\t/.test(l) && l.slice(2) !== '.wh..wh..meta');
  assert.ok(want.length > 50, `the trees differ in ${want.length} paths`);
  assert.equal(got, want);

  lap('name-status');
  // 5. A fresh view equals the second tree.
  const v2 = join(scratch, 'view2');
  await glayerOk(ws, 'mount-view', v2);
  lap('mount-view');
  assert.equal(treeDifferences(B, v2, new Set(devB), true), []);
  // The devices set aside for git: the same nodes (type, numbers, mode, owner) in the view.
  for (const [d, want] of devicesOfB) {
    const got = fs.lstatSync(join(v2, d));
    assert.equal([got.mode, got.rdev, got.uid, got.gid], [want.mode, want.rdev, want.uid, want.gid], `device ${d}`);
  }
  const check = JSON.parse((await glayerOk(ws, 'fsck', '--json')).stdout) as { ok: boolean; problems: unknown[] };
  assert.ok(check.ok, JSON.stringify(check.problems));
  fsck(join(ws, '.glayer'));
  lap('compare, fsck');
  console.log(`  debian: ${times.join(', ')}`);
});

test.run();
