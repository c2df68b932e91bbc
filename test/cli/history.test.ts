// squash, tag, reset, stack and efficiency through the CLI, with native git as the oracle: `git fsck --strict`
// on every store, `git ls-tree`/`git cat-file` for what the new layers hold, the union checked against a view
// made by glayer before the rewrite, and the efficiency figures against an independent count made with git.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { glayer, glayerOk, type CliResult } from '../helpers/cli.js';
import { fsck, git } from '../helpers/git.js';
import { countWithGit } from '../helpers/efficiency.js';
import { snapshot } from '../helpers/snapshot.js';
import { tmpdir } from '../helpers/tmp.js';

interface Ws { ws: string; view: string; gitdir: string; ids: string[] }

const put = (view: string, p: string, data: string): void => {
  fs.mkdirSync(join(view, p, '..'), { recursive: true });
  fs.writeFileSync(join(view, p), data);
};

async function commit(ws: string, msg: string): Promise<string> {
  return JSON.parse((await glayerOk(ws, 'commit', '-m', msg, '--json')).stdout).id;
}

/** Five layers with overwrites, deletions (a file, a directory), an opaque directory and re-creations. */
async function fixture(): Promise<Ws> {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  await glayerOk(ws, 'mount-view');
  const view = join(ws, 'view');
  const ids: string[] = [];
  put(view, 'etc/a.conf', 'a'.repeat(100)); put(view, 'etc/b.conf', 'b'.repeat(200)); put(view, 'opt/x/1', 'x1'.repeat(50));
  put(view, 'opt/x/2', 'x2'.repeat(30)); put(view, 'keep', 'keep\n');
  ids.push(await commit(ws, 'base'));
  put(view, 'etc/a.conf', 'A'.repeat(150)); put(view, 'tmp/big', 'T'.repeat(1000));
  ids.push(await commit(ws, 'overwrite a, add tmp'));
  fs.rmSync(join(view, 'tmp'), { recursive: true }); fs.rmSync(join(view, 'etc/b.conf'));
  ids.push(await commit(ws, 'delete tmp and b'));
  fs.rmSync(join(view, 'opt/x'), { recursive: true }); put(view, 'opt/x/3', 'three'); // deleted and re-created: opaque
  ids.push(await commit(ws, 'replace opt/x'));
  put(view, 'etc/a.conf', 'final'); put(view, 'new', 'n'.repeat(10));
  ids.push(await commit(ws, 'last'));
  return { ws, view, gitdir: join(ws, '.glayer'), ids };
}

function oneLine(r: CliResult, code: number, pattern: RegExp): void {
  assert.is(r.code, code, `exit code: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.is(lines.length, 1, `one line on stderr: ${r.stderr}`);
  assert.match(lines[0], pattern);
}

const refs = (gitdir: string): string => git(gitdir, ['for-each-ref', '--format=%(refname) %(objectname)']);
const files = (dir: string) => snapshot(dir);

test('squash: one layer with the same union; markers that hide nothing below BASE dropped; old layers kept', async () => {
  const f = await fixture();
  const before = files(f.view);
  const r = await glayerOk(f.ws, 'squash', f.ids[0], '-m', 'squashed', '--json');
  const out = JSON.parse(r.stdout);
  assert.is(out.squashed, 4);
  assert.is(out.previous, f.ids[4]);
  assert.is(git(f.gitdir, ['rev-parse', 'HEAD^']), f.ids[0]);
  // The new layer's delta over the base: a.conf changed, b.conf whited out, opt/x opaque with 3, new added;
  // tmp (added and deleted inside the range) leaves nothing, not even a whiteout.
  // opt/x as the layer that replaced it recorded it (opaque, or one whiteout per child: see the README).
  const optx = git(f.gitdir, ['ls-tree', '-r', '--name-only', f.ids[3], '--', 'opt/x']).split('\n');
  const tree = git(f.gitdir, ['ls-tree', '-r', '--name-only', 'HEAD']).split('\n');
  assert.equal(tree, ['etc/.wh.b.conf', 'etc/a.conf', 'new', ...optx]);
  assert.is(git(f.gitdir, ['cat-file', 'blob', 'HEAD:etc/a.conf']), 'final');
  assert.is((await glayerOk(f.ws, 'status')).stdout, '');
  await glayerOk(f.ws, 'mount-view');
  assert.equal(files(f.view), before);
  // The old layers are still there for whoever names them.
  assert.is(git(f.gitdir, ['cat-file', '-t', f.ids[4]]), 'commit');
  // The whole stack into one root layer: no markers at all.
  await glayerOk(f.ws, 'squash');
  assert.is(git(f.gitdir, ['rev-list', '--count', 'HEAD']), '1');
  assert.not.match(git(f.gitdir, ['ls-tree', '-r', '--name-only', 'HEAD']), /\.wh\./);
  await glayerOk(f.ws, 'mount-view');
  assert.equal(files(f.view), before);
  fsck(f.gitdir);
});

test('squash keeps the metadata the range recorded: a setuid bit, an owner, a mode-only change', async () => {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  await glayerOk(ws, 'mount-view');
  const view = join(ws, 'view');
  put(view, 'bin/passwd', 'pw'); put(view, 'etc/shadow', 's'); put(view, 'home/app/x', 'x');
  await commit(ws, 'base');
  fs.chmodSync(join(view, 'bin/passwd'), 0o4755);
  await commit(ws, 'setuid');
  fs.chmodSync(join(view, 'etc/shadow'), 0o640);
  if (process.getuid?.() === 0) fs.chownSync(join(view, 'home/app'), 1000, 1000);
  put(view, 'new', 'n');
  await commit(ws, 'modes and a file');
  const fresh = async (name: string): Promise<Record<string, string>> => {
    await glayerOk(ws, 'mount-view', join(base, name));
    const st = (p: string): string => { const s = fs.statSync(join(base, name, p)); return `${(s.mode & 0o7777).toString(8)} ${s.uid}:${s.gid}`; };
    return { passwd: st('bin/passwd'), shadow: st('etc/shadow'), app: st('home/app'), new: st('new') };
  };
  const before = await fresh('v-before');
  assert.is(before.passwd.split(' ')[0], '4755');
  const gitdir = join(ws, '.glayer');
  await glayerOk(ws, 'squash', 'HEAD~2', '-m', 'squashed');
  assert.is(git(gitdir, ['rev-list', '--count', 'HEAD']), '2');
  // The squashed layer carries the records (a reviewer sees them in the layer), and a fresh view shows them.
  const manifest = git(gitdir, ['cat-file', '-p', 'HEAD:.wh..wh..meta']);
  assert.match(manifest, /bin\/passwd .*mode=4755/);
  assert.match(manifest, /etc\/shadow .*mode=640/);
  assert.equal(await fresh('v-after'), before);
  fsck(gitdir);
});

test('squash refusals: the top itself, a layer off the stack, unknown names; nothing changes', async () => {
  const f = await fixture();
  await glayerOk(f.ws, 'stack', 'new', 'side', '--from', f.ids[1]);
  const sideTop = git(f.gitdir, ['rev-parse', 'side']);
  fs.writeFileSync(join(f.view, 'x'), 'x');
  await glayerOk(f.ws, 'stack', 'switch', 'side', '--carry');
  await commit(f.ws, 'side layer');
  await glayerOk(f.ws, 'stack', 'switch', 'main');
  const state = refs(f.gitdir);
  oneLine(await glayer(f.ws, 'squash', 'HEAD'), 2, /^glayer: nothing to squash: HEAD is the top of the stack$/);
  oneLine(await glayer(f.ws, 'squash', 'side'), 2, /not a layer below the top of stack 'main'/);
  oneLine(await glayer(f.ws, 'squash', 'nosuch'), 2, /^glayer: unknown layer: nosuch$/);
  assert.is(refs(f.gitdir), state);
  assert.ok(sideTop);
  fsck(f.gitdir);
});

test('tag: lightweight and annotated, -l, -d, -f, names everywhere a LAYER goes; refusals', async () => {
  const f = await fixture();
  await glayerOk(f.ws, 'tag', 'v1', 'HEAD~2');
  await glayerOk(f.ws, 'tag', '-m', 'the release', 'v2');
  assert.is(git(f.gitdir, ['rev-parse', 'v1']), f.ids[2]);
  assert.is(git(f.gitdir, ['cat-file', '-t', 'v2']), 'tag');
  assert.is(git(f.gitdir, ['rev-parse', 'v2^{commit}']), f.ids[4]);
  assert.match(git(f.gitdir, ['cat-file', 'tag', 'v2']), /\ntag v2\ntagger .+\n\nthe release$/);
  const list = JSON.parse((await glayerOk(f.ws, 'tag', '-l', '--json')).stdout);
  assert.equal(list.map((t: { name: string; layer: string; message: string | null }) => [t.name, t.layer, t.message]), [['v1', f.ids[2], null], ['v2', f.ids[4], 'the release']]);
  // A tag is a LAYER: diff, show, squash BASE, reset, stack new --from, efficiency.
  assert.is((await glayerOk(f.ws, 'diff', '--name-only', 'v1', 'v2')).stdout, (await glayerOk(f.ws, 'diff', '--name-only', f.ids[2], f.ids[4])).stdout);
  assert.match((await glayerOk(f.ws, 'show', '--stat', 'v1~1')).stdout, new RegExp(`^layer ${f.ids[1]}`));
  // Refusals, nothing changed.
  const state = refs(f.gitdir);
  oneLine(await glayer(f.ws, 'tag', 'v1'), 2, /^glayer: tag 'v1' already exists \(use -f to move it\)$/);
  oneLine(await glayer(f.ws, 'tag', 'v3', 'nosuch'), 2, /^glayer: unknown layer: nosuch$/);
  oneLine(await glayer(f.ws, 'tag', 'bad..name'), 2, /not a valid tag name/);
  oneLine(await glayer(f.ws, 'tag', '-d', 'nosuch'), 2, /^glayer: no such tag: nosuch$/);
  assert.is(refs(f.gitdir), state);
  await glayerOk(f.ws, 'tag', '-f', 'v1', 'HEAD');
  assert.is(git(f.gitdir, ['rev-parse', 'v1']), f.ids[4]);
  await glayerOk(f.ws, 'tag', '-d', 'v1');
  assert.not.match(refs(f.gitdir), /refs\/tags\/v1 /);
  // A packed tag is deleted from packed-refs too.
  git(f.gitdir, ['pack-refs', '--all']);
  await glayerOk(f.ws, 'tag', '-d', 'v2');
  assert.is(git(f.gitdir, ['tag', '-l']), '');
  fsck(f.gitdir);
});

test('reset: back and forth through the reflog; the writable layer kept; conflicts refused unless --hard', async () => {
  const f = await fixture();
  const r = await glayerOk(f.ws, 'reset', 'HEAD~2');
  assert.is(r.stdout.trim(), f.ids[2]);
  assert.match(r.stderr, new RegExp(`previous top ${f.ids[4]} \\(undo: glayer reset ${f.ids[4].slice(0, 12)}\\)`));
  assert.is(git(f.gitdir, ['rev-parse', 'HEAD']), f.ids[2]);
  assert.ok(!fs.existsSync(join(f.view, 'new')));
  assert.is(fs.readFileSync(join(f.view, 'etc/a.conf'), 'utf8'), 'A'.repeat(150));
  // The reflog records it, in git's format.
  assert.match(git(f.gitdir, ['reflog', 'show', '--format=%H %gs', 'refs/heads/main']).split('\n')[0], new RegExp(`^${f.ids[2]} reset: moving to HEAD~2$`));
  // Undo: the old top is no longer in the stack, but in its history.
  await glayerOk(f.ws, 'reset', f.ids[4].slice(0, 10));
  assert.is(fs.readFileSync(join(f.view, 'new'), 'utf8'), 'n'.repeat(10));
  // An edit that does not touch what the move changes is kept on top.
  fs.writeFileSync(join(f.view, 'keep'), 'edited\n');
  await glayerOk(f.ws, 'reset', 'HEAD~1');
  assert.is(fs.readFileSync(join(f.view, 'keep'), 'utf8'), 'edited\n');
  assert.is((await glayerOk(f.ws, 'status')).stdout, 'C keep\n');
  // An edit of a path the move changes: refused, nothing changes.
  await glayerOk(f.ws, 'reset', f.ids[4]);
  fs.writeFileSync(join(f.view, 'etc/a.conf'), 'mine');
  const top = git(f.gitdir, ['rev-parse', 'HEAD']);
  oneLine(await glayer(f.ws, 'reset', 'HEAD~1'), 1, /^glayer: cannot reset to HEAD~1: the writable layer changes 1 path the move changes \(etc\/a\.conf\)/);
  assert.is(git(f.gitdir, ['rev-parse', 'HEAD']), top);
  assert.is(fs.readFileSync(join(f.view, 'etc/a.conf'), 'utf8'), 'mine');
  // --hard empties the writable layer.
  await glayerOk(f.ws, 'reset', '--hard', 'HEAD~1');
  assert.is((await glayerOk(f.ws, 'status')).stdout, '');
  assert.is(fs.readFileSync(join(f.view, 'etc/a.conf'), 'utf8'), 'A'.repeat(150));
  assert.equal(fs.readdirSync(join(f.ws, 'upper')), []);
  // A layer outside the history: refused.
  await glayerOk(f.ws, 'stack', 'new', 'other', '--from', f.ids[0]);
  fs.writeFileSync(join(f.view, 'o'), 'o');
  await glayerOk(f.ws, 'stack', 'switch', 'other', '--carry');
  const foreign = await commit(f.ws, 'other layer');
  await glayerOk(f.ws, 'stack', 'switch', 'main');
  oneLine(await glayer(f.ws, 'reset', 'other'), 2, /is not in the history of stack 'main'/);
  oneLine(await glayer(f.ws, 'reset', 'nosuch'), 2, /^glayer: unknown layer: nosuch$/);
  assert.ok(foreign);
  fsck(f.gitdir);
});

test('stack: list, new, switch (the view follows), --carry, delete; refusals', async () => {
  const f = await fixture();
  await glayerOk(f.ws, 'stack', 'new', 'old', '--from', 'HEAD~3');
  const list = JSON.parse((await glayerOk(f.ws, 'stack', '--json')).stdout);
  assert.equal(list.map((s: { name: string; current: boolean; layers: number }) => [s.name, s.current, s.layers]), [['main', true, 5], ['old', false, 2]]);
  assert.match((await glayerOk(f.ws, 'stack')).stdout, /^\* +main +5 layers/m);
  await glayerOk(f.ws, 'stack', 'switch', 'old');
  assert.is(git(f.gitdir, ['symbolic-ref', 'HEAD']), 'refs/heads/old');
  assert.ok(fs.existsSync(join(f.view, 'tmp/big')));
  assert.ok(!fs.existsSync(join(f.view, 'new')));
  // Changes in the writable layer: refused, unless --carry.
  fs.writeFileSync(join(f.view, 'mine'), 'mine');
  oneLine(await glayer(f.ws, 'stack', 'switch', 'main'), 1, /^glayer: cannot switch to stack 'main': the writable layer has changes/);
  assert.is(git(f.gitdir, ['symbolic-ref', 'HEAD']), 'refs/heads/old');
  await glayerOk(f.ws, 'stack', 'switch', 'main', '--carry');
  assert.is(fs.readFileSync(join(f.view, 'mine'), 'utf8'), 'mine');
  assert.ok(fs.existsSync(join(f.view, 'new')));
  assert.is((await glayerOk(f.ws, 'status')).stdout, 'A mine\n');
  // Refusals.
  oneLine(await glayer(f.ws, 'stack', 'new', 'old'), 2, /^glayer: stack 'old' already exists$/);
  oneLine(await glayer(f.ws, 'stack', 'new', 'x', '--from', 'nosuch'), 2, /^glayer: unknown layer: nosuch$/);
  oneLine(await glayer(f.ws, 'stack', 'switch', 'nosuch'), 2, /^glayer: no such stack: nosuch$/);
  oneLine(await glayer(f.ws, 'stack', 'delete', 'main'), 2, /it is checked out/);
  oneLine(await glayer(f.ws, 'stack', 'delete', 'nosuch'), 2, /^glayer: no such stack: nosuch$/);
  oneLine(await glayer(f.ws, 'stack', 'new', 'bad name'), 2, /not a valid stack name/);
  await glayerOk(f.ws, 'stack', 'delete', 'old');
  assert.not.match(refs(f.gitdir), /refs\/heads\/old/);
  fsck(f.gitdir);
});

test('efficiency: figures equal an independent count; paths; --ci thresholds exit 1 naming the rule', async () => {
  const f = await fixture();
  const r = JSON.parse((await glayerOk(f.ws, 'efficiency', '--json')).stdout);
  const want = countWithGit(f.gitdir, f.view);
  assert.is(r.totalBytes, want.total);
  assert.is(r.unionBytes, want.union);
  assert.is(r.wastedBytes, want.total - want.union);
  assert.is(r.efficiency, want.union / want.total);
  assert.is(r.layers, 5);
  // What is wasted, by path: tmp/big (deleted), a.conf twice overwritten, b.conf deleted, opt/x/* hidden by the opaque dir.
  const by = Object.fromEntries(r.paths.map((p: { path: string; wastedBytes: number; count: number }) => [p.path, [p.wastedBytes, p.count]]));
  assert.equal(by, { 'tmp/big': [1000, 1], 'etc/a.conf': [250, 3], 'etc/b.conf': [200, 1], 'opt/x/1': [100, 1], 'opt/x/2': [60, 1] });
  assert.is(r.paths[0].path, 'tmp/big');
  const userBytes = r.totalBytes - r.perLayer[r.perLayer.length - 1].bytes;
  assert.is(r.userBytes, userBytes);
  assert.is(r.userWastedPercent, (100 * r.wastedBytes) / userBytes);
  // An older top of the stack.
  const at1 = JSON.parse((await glayerOk(f.ws, 'efficiency', 'HEAD~3', '--json')).stdout);
  assert.equal([at1.layers, at1.wastedBytes], [2, 100]);
  // CI gates.
  const pass = await glayer(f.ws, 'efficiency', '--ci', '--lowest-efficiency', '0.1', '--highest-user-wasted-percent', '10');
  assert.is(pass.code, 2, 'a ratio above 1 is a usage error');
  const ok = await glayer(f.ws, 'efficiency', '--ci', '--lowest-efficiency', '0.01', '--highest-user-wasted-percent', '200%', '--highest-wasted-bytes', '10kB');
  assert.is(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /CI: PASS/);
  const fail = await glayer(f.ws, 'efficiency', '--ci', '--lowest-efficiency', '0.9', '--highest-wasted-bytes', '100');
  assert.is(fail.code, 1);
  assert.match(fail.stdout, /CI: FAIL\n  lowest-efficiency: 0\.\d+ breaks the limit 0\.9\n  highest-wasted-bytes: 1610 breaks the limit 100\n  highest-user-wasted-percent/);
  const j = JSON.parse((await glayer(f.ws, 'efficiency', '--ci', '--json', '--highest-wasted-bytes', '1610')).stdout);
  assert.equal(j.ci.failures.map((x: { rule: string }) => x.rule), ['lowest-efficiency', 'highest-user-wasted-percent']);
  oneLine(await glayer(f.ws, 'efficiency', '--lowest-efficiency', '0.5'), 2, /thresholds apply with --ci/);
  oneLine(await glayer(f.ws, 'efficiency', '--ci', '--highest-wasted-bytes', 'lots'), 2, /not a byte count/);
  oneLine(await glayer(f.ws, 'efficiency', 'nosuch'), 2, /^glayer: unknown layer: nosuch$/);
});

test('tags and stacks over a remote: push --tags, fetch brings tags, push -u, fetch --prune', async () => {
  const f = await fixture();
  const bare = join(tmpdir(), 'layers.git');
  git(bare, ['init', '--bare', '-q']);
  await glayerOk(f.ws, 'remote', 'add', 'origin', bare);
  await glayerOk(f.ws, 'tag', 'v1', 'HEAD~1');
  await glayerOk(f.ws, 'tag', '-m', 'annotated', 'v2');
  const u = await glayerOk(f.ws, 'push', '-u', 'origin');
  assert.match(u.stdout, /now tracks origin\/main/);
  assert.is(git(f.gitdir, ['config', 'branch.main.remote']), 'origin');
  assert.is(git(f.gitdir, ['config', 'branch.main.merge']), 'refs/heads/main');
  const t = await glayerOk(f.ws, 'push', '--tags');
  assert.match(t.stdout, /\[new tag\] v1 -> origin\n\[new tag\] v2 -> origin/);
  assert.is(git(bare, ['rev-parse', 'v1']), f.ids[3]);
  assert.is(git(bare, ['cat-file', '-t', 'v2']), 'tag');
  assert.match((await glayerOk(f.ws, 'push', '--tags')).stdout, /Everything up to date/);
  fsck(bare);
  // Another workspace fetches the tags; a tag of its own with another value is not moved.
  const other = join(tmpdir(), 'other');
  await glayerOk(tmpdir(), 'clone', bare, other);
  await glayerOk(other, 'tag', 'v3', 'HEAD~4');
  await glayerOk(f.ws, 'tag', 'v3', 'HEAD');
  await glayerOk(f.ws, 'stack', 'new', 'gone');
  await glayerOk(f.ws, 'push', '--tags');
  await glayerOk(f.ws, 'push', 'origin', 'gone');
  const fe = await glayerOk(other, 'fetch');
  assert.is(git(join(other, '.glayer'), ['rev-parse', 'v1']), f.ids[3]);
  assert.is(git(join(other, '.glayer'), ['cat-file', '-t', 'v2']), 'tag');
  assert.is(git(join(other, '.glayer'), ['rev-parse', 'v3']), f.ids[0]);
  assert.match(fe.stderr, /tag v3 differs from the remote's; kept the local one/);
  assert.is(git(join(other, '.glayer'), ['rev-parse', 'refs/remotes/origin/gone']), f.ids[4]);
  // The branch goes from the remote: fetch --prune drops its remote-tracking stack.
  git(bare, ['update-ref', '-d', 'refs/heads/gone']);
  await glayerOk(other, 'fetch');
  assert.match(refs(join(other, '.glayer')), /refs\/remotes\/origin\/gone/);
  const pr = await glayerOk(other, 'fetch', '--prune');
  assert.match(pr.stdout, /pruned origin\/gone/);
  assert.not.match(refs(join(other, '.glayer')), /refs\/remotes\/origin\/gone/);
  fsck(join(other, '.glayer'));
  fsck(f.gitdir);
});

test('help shows option values as words, not #0', async () => {
  for (const cmd of ['log', 'commit', 'squash', 'tag', 'efficiency', 'diff']) {
    const h = (await glayerOk(tmpdir(), cmd, '--help')).stdout;
    assert.not.match(h, /#\d/, cmd);
  }
  assert.match((await glayerOk(tmpdir(), 'log', '--help')).stdout, /-n,--max-count N/);
  assert.match((await glayerOk(tmpdir(), 'commit', '--help')).stdout, /-C DIR/);
});

test.run();
