// Linked workspaces (`glayer workspace add|list|remove`, git's worktree layout): own stack pointer, writable
// layer and view; shared layers, stacks and layer cache. Native git is the oracle for the layout (`git worktree
// list`, `git fsck --strict` of the shared store). Ten live views of one stack keep one copy of its layers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { glayer, glayerOk } from '../helpers/cli.js';
import { fsck, git } from '../helpers/git.js';
import { liveBackends, unmountUnder } from '../helpers/live.js';
import { tmpdir } from '../helpers/tmp.js';

async function store(): Promise<{ base: string; a: string; gitdir: string }> {
  const base = tmpdir('glayer-wt-');
  await glayerOk(base, 'init', 'a', '--template', 'etc');
  return { base, a: join(base, 'a'), gitdir: join(base, 'a', '.glayer') };
}

test('add, list, commit in one and see it in the other; git knows the layout; remove', async () => {
  const { base, a, gitdir } = await store();
  const b = join(base, 'b');
  assert.match((await glayerOk(a, 'workspace', 'add', '../b')).stdout, /^Created workspace .*\/b on stack main/);
  assert.ok(fs.statSync(join(b, '.glayer')).isFile(), '.glayer is a file naming the private git dir');
  const list = JSON.parse((await glayerOk(b, 'workspace', 'list', '--json')).stdout) as Array<{ root: string; stack: string; main: boolean; current: boolean }>;
  assert.equal(list.map((w) => [w.root, w.stack, w.main, w.current]), [[a, 'main', true, false], [b, 'main', false, true]]);
  // Native git sees a linked work tree on main.
  assert.match(git(gitdir, ['worktree', 'list']), /\[main\]/);
  // b: a view, an edit, a commit; a sees the layer (shared stacks) and its view follows at its next command.
  await glayerOk(a, 'mount-view');
  await glayerOk(b, 'mount-view');
  fs.writeFileSync(join(b, 'view', 'from-b'), 'b\n');
  assert.is((await glayerOk(b, 'status')).stdout, 'A from-b\n');
  assert.is((await glayerOk(a, 'status')).stdout, '', 'a has no edits of b');
  const id = (await glayerOk(b, 'commit', '-m', 'from b')).stdout.trim();
  assert.is(git(gitdir, ['rev-parse', 'refs/heads/main']).trim(), id);
  assert.match((await glayerOk(a, 'log')).stdout, /from b/);
  await glayerOk(a, 'status');
  assert.is(fs.readFileSync(join(a, 'view', 'from-b'), 'utf8'), 'b\n', "a's view follows the stack");
  // Stacks are shared; each workspace has its own HEAD.
  await glayerOk(b, 'stack', 'new', 'other');
  await glayerOk(b, 'stack', 'switch', 'other');
  assert.is(JSON.parse((await glayerOk(a, 'info', '--json')).stdout).ref, 'refs/heads/main');
  assert.is(JSON.parse((await glayerOk(b, 'info', '--json')).stdout).ref, 'refs/heads/other');
  const del = await glayer(a, 'stack', 'delete', 'other');
  assert.is(del.code, 2);
  assert.match(del.stderr, /the workspace .*\/b has it checked out/);
  fsck(gitdir);
  // Remove: refused with changes, then forced; git forgets it (prune), the store stays whole.
  fs.writeFileSync(join(b, 'view', 'pending'), 'p\n');
  await glayerOk(b, 'status');
  const dirty = await glayer(a, 'workspace', 'remove', '../b');
  assert.is(dirty.code, 1);
  assert.match(dirty.stderr, /uncommitted changes/);
  await glayerOk(a, 'workspace', 'remove', '--force', '../b');
  assert.not.ok(fs.existsSync(join(b, '.glayer')));
  assert.ok(fs.existsSync(join(b, 'view', 'pending')), 'a copied view stays as plain files');
  assert.equal(JSON.parse((await glayerOk(a, 'workspace', '--json')).stdout).length, 1);
  assert.not.match(git(gitdir, ['worktree', 'list']), /other/);
  await glayerOk(a, 'stack', 'delete', 'other');
  fsck(gitdir);
});

// A push over a local path must not move the stack a workspace has checked out (git's receive.denyCurrentBranch):
// not the main workspace's, not a linked workspace's. Another stack of the same store is moved.
test('push into a store refuses the stack of any of its workspaces, main or linked', async () => {
  const { base, a, gitdir } = await store();
  await glayerOk(a, 'workspace', 'add', '../b');
  const b = join(base, 'b');
  await glayerOk(b, 'stack', 'new', 'other');
  await glayerOk(b, 'stack', 'switch', 'other');
  await glayerOk(a, 'stack', 'new', 'free');
  // A second store with stacks of those names and another history.
  const c = (await store()).a;
  await glayerOk(c, 'mount-view');
  fs.writeFileSync(join(c, 'view', 'new-file'), 'c\n');
  await glayerOk(c, 'commit', '-m', 'in c');
  for (const name of ['other', 'free']) await glayerOk(c, 'stack', 'new', name);
  const refs = () => git(gitdir, ['for-each-ref', '--format=%(refname) %(objectname)']);
  const before = refs();
  for (const [stack, holder] of [['main', /stack of the workspace at \S*\/a;/], ['other', /stack of the workspace at \S*\/b;/]] as const) {
    const r = await glayer(c, 'push', '--force', a, stack);
    assert.is(r.code, 2, `push to ${stack}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`refusing to update refs/heads/${stack}: it is the current ${holder.source}`));
    assert.is(r.stderr.trim().split('\n').length, 1, 'one line');
  }
  assert.is(refs(), before, 'no stack moved');
  await glayerOk(c, 'push', '--force', a, 'free');
  assert.is(git(gitdir, ['rev-parse', 'refs/heads/free']).trim(), git(join(c, '.glayer'), ['rev-parse', 'refs/heads/free']).trim());
  fsck(gitdir);
});

test('bad input: a non-empty target, an unknown stack, removing what is not a linked workspace', async () => {
  const { base, a } = await store();
  fs.mkdirSync(join(base, 'full'));
  fs.writeFileSync(join(base, 'full', 'x'), 'x');
  for (const [args, why] of [
    [['workspace', 'add', '../full'], /already exists at .*full/],
    [['workspace', 'add', '../n', '--stack', 'nope'], /no such stack: nope/],
    [['workspace', 'remove', '../full'], /is not a linked workspace of this store/],
    [['workspace', 'remove', '.'], /is not a linked workspace of this store/],
  ] as const) {
    const r = await glayer(a, ...args);
    assert.ok(r.code !== 0, args.join(' '));
    assert.match(r.stderr, why);
    assert.is(r.stderr.trim().split('\n').length, 1, 'one line');
    assert.is(r.stdout, '');
  }
  assert.not.ok(fs.existsSync(join(base, 'n')), 'nothing made for a refused add');
});

const BACKENDS = liveBackends();
if (BACKENDS.length) {
  test(`${BACKENDS[0]}: ten live views of one stack share one copy of its layers; gc keeps every mounted view's entries`, async () => {
    const { base, a, gitdir } = await store();
    const roots: string[] = [];
    try {
      for (let k = 0; k < 10; k++) {
        roots.push(join(base, `v${k}`));
        await glayerOk(a, 'workspace', 'add', `../v${k}`);
        await glayerOk(roots[k], 'mount-view', '--live', '--backend', BACKENDS[0]);
      }
      const cache = join(gitdir, 'glayer', 'cache', BACKENDS[0] === 'kernel' ? 'k' : 'f');
      assert.equal(fs.readdirSync(cache), [git(gitdir, ['rev-parse', 'HEAD']).trim()], 'one cache entry for the one layer');
      assert.equal(fs.readdirSync(join(roots[9], 'view', 'etc')).sort(), fs.readdirSync(join(cache, fs.readdirSync(cache)[0], 'etc')).sort());
      // A commit in one view: the others show it at their next command, from the same cache.
      fs.writeFileSync(join(roots[3], 'view', 'three'), '3\n');
      await glayerOk(roots[3], 'commit', '-m', 'three');
      await glayerOk(roots[7], 'status');
      assert.is(fs.readFileSync(join(roots[7], 'view', 'three'), 'utf8'), '3\n');
      await glayerOk(a, 'gc');
      assert.is(fs.readdirSync(cache).length, 2, 'both layers kept: mounted views use them');
      for (const r of roots) assert.ok(fs.existsSync(join(r, 'view', 'etc', 'hosts')), `${r} still shows its files`);
      fsck(gitdir);
      const busy = await glayer(a, 'workspace', 'remove', '../v0');
      assert.match(busy.stderr, /has a live view mounted/);
    } finally {
      for (const r of roots) await glayer(r, 'umount');
      unmountUnder(base);
    }
  });
}

test.run();
