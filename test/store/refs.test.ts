// Refs move like git moves them: under <ref>.lock, only from the value the caller saw.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { RefError, checkRefName, listRefs, readRef, readSymbolicHead, updateRef, writeSymbolicHead } from '../../src/store/refs.js';
import { GIT_ENV, commitTree, fsck, git } from '../helpers/git.js';
import { tmpdir } from '../helpers/tmp.js';

function repoWithCommits(): { gitdir: string; c1: string; c2: string; c3: string } {
  const gitdir = join(tmpdir(), 'r.git');
  execFileSync('git', ['init', '-q', '--bare', '-b', 'main', gitdir], { env: GIT_ENV });
  const tree = git(gitdir, ['mktree'], '');
  const c1 = commitTree(gitdir, tree, null, 'one');
  const c2 = commitTree(gitdir, tree, c1, 'two');
  const c3 = commitTree(gitdir, tree, c2, 'three');
  return { gitdir, c1, c2, c3 };
}

test('updateRef creates a ref that must not exist, then moves it from the expected value', () => {
  const { gitdir, c1, c2 } = repoWithCommits();
  updateRef(gitdir, 'refs/heads/main', c1, null);
  assert.is(git(gitdir, ['rev-parse', 'refs/heads/main']), c1);
  assert.is(readRef(gitdir, 'refs/heads/main'), c1);
  updateRef(gitdir, 'refs/heads/main', c2, c1);
  assert.is(git(gitdir, ['rev-parse', 'refs/heads/main']), c2);
  assert.not.ok(fs.existsSync(join(gitdir, 'refs/heads/main.lock')));
  fsck(gitdir);
});

test('a stale expectation fails with E_REF and leaves the ref alone', () => {
  const { gitdir, c1, c2, c3 } = repoWithCommits();
  updateRef(gitdir, 'refs/heads/main', c2, null);
  // Someone else (native git) moved it.
  git(gitdir, ['update-ref', 'refs/heads/main', c3]);
  let err: unknown = null;
  try { updateRef(gitdir, 'refs/heads/main', c1, c2); } catch (e) { err = e; }
  assert.instance(err, RefError);
  assert.is((err as RefError).code, 'E_REF');
  assert.match((err as Error).message, /refs\/heads\/main: moved/);
  assert.is(git(gitdir, ['rev-parse', 'refs/heads/main']), c3);
  assert.not.ok(fs.existsSync(join(gitdir, 'refs/heads/main.lock')), 'lock released');
  // Expecting "absent" when it exists fails too.
  assert.throws(() => updateRef(gitdir, 'refs/heads/main', c1, null), (e: unknown) => e instanceof RefError && /expected absent/.test((e as Error).message));
  // Expecting a value when it is absent fails.
  assert.throws(() => updateRef(gitdir, 'refs/heads/other', c1, c2), (e: unknown) => e instanceof RefError && /now absent/.test((e as Error).message));
  assert.is(readRef(gitdir, 'refs/heads/other'), null);
});

test('a held .lock fails clearly and is not removed', () => {
  const { gitdir, c1, c2 } = repoWithCommits();
  updateRef(gitdir, 'refs/heads/main', c1, null);
  const lock = join(gitdir, 'refs/heads/main.lock');
  fs.writeFileSync(lock, '');
  let err: unknown = null;
  try { updateRef(gitdir, 'refs/heads/main', c2, c1); } catch (e) { err = e; }
  assert.instance(err, RefError);
  assert.is((err as RefError).code, 'E_REF');
  assert.ok((err as Error).message.includes(lock), (err as Error).message);
  assert.match((err as Error).message, /locked/);
  assert.ok(fs.existsSync(lock), "another writer's lock must stay");
  assert.is(readRef(gitdir, 'refs/heads/main'), c1);
  // Native git agrees it is locked, and it works again once the lock is gone.
  fs.rmSync(lock);
  updateRef(gitdir, 'refs/heads/main', c2, c1);
  assert.is(git(gitdir, ['rev-parse', 'refs/heads/main']), c2);
});

test('readRef reads packed refs and symbolic refs; a loose ref overrides a packed one', () => {
  const { gitdir, c1, c2 } = repoWithCommits();
  git(gitdir, ['update-ref', 'refs/heads/main', c1]);
  git(gitdir, ['update-ref', 'refs/tags/t', c2]);
  git(gitdir, ['pack-refs', '--all']);
  assert.not.ok(fs.existsSync(join(gitdir, 'refs/heads/main')));
  assert.is(readRef(gitdir, 'refs/heads/main'), c1);
  assert.is(readRef(gitdir, 'refs/tags/t'), c2);
  assert.is(readSymbolicHead(gitdir), 'refs/heads/main');
  assert.is(readRef(gitdir, 'HEAD'), c1);
  // Moving a packed ref: from the packed value.
  updateRef(gitdir, 'refs/heads/main', c2, c1);
  assert.is(git(gitdir, ['rev-parse', 'refs/heads/main']), c2);
  assert.equal(listRefs(gitdir, 'refs/heads/'), new Map([['refs/heads/main', c2]]));
  assert.equal(listRefs(gitdir, 'refs/tags/'), new Map([['refs/tags/t', c2]]));
  fsck(gitdir);
});

test('symbolic HEAD: written as git does; detached HEAD is refused', () => {
  const { gitdir, c1 } = repoWithCommits();
  writeSymbolicHead(gitdir, 'refs/heads/dev');
  assert.is(git(gitdir, ['symbolic-ref', 'HEAD']), 'refs/heads/dev');
  fs.writeFileSync(join(gitdir, 'HEAD'), c1 + '\n');
  assert.throws(() => readSymbolicHead(gitdir), (e: unknown) => e instanceof RefError && /detached/.test((e as Error).message));
});

test('a corrupt ref file is E_REF', () => {
  const { gitdir } = repoWithCommits();
  fs.mkdirSync(join(gitdir, 'refs/heads'), { recursive: true });
  fs.writeFileSync(join(gitdir, 'refs/heads/main'), 'garbage\n');
  assert.throws(() => readRef(gitdir, 'refs/heads/main'), (e: unknown) => e instanceof RefError && /corrupt/.test((e as Error).message));
});

const BAD_REFS = ['HEAD', 'main', 'refs/heads/../x', 'refs/heads/a..b', 'refs/heads/x.lock', 'refs/heads/.hidden', 'refs/heads/', 'refs/heads//x', 'refs/other/x', 'refs/heads/a b', 'refs/heads/a~1', 'refs/heads/a:b', '/etc/passwd', 'refs/heads/x/../../../config'];
for (const r of BAD_REFS) {
  test(`checkRefName refuses ${JSON.stringify(r)}`, () => {
    assert.throws(() => checkRefName(r), (e: unknown) => e instanceof RefError);
    const { gitdir, c1 } = repoWithCommits();
    assert.throws(() => updateRef(gitdir, r, c1, null), (e: unknown) => e instanceof RefError);
  });
}

test('checkRefName accepts ordinary names', () => {
  for (const r of ['refs/heads/main', 'refs/heads/feature/x-1', 'refs/tags/v1.0', 'refs/glayer/views/a_b']) checkRefName(r);
});

test('a symbolic ref loop is E_REF, not a crash', () => {
  const { gitdir } = repoWithCommits();
  fs.mkdirSync(join(gitdir, 'refs/heads'), { recursive: true });
  fs.writeFileSync(join(gitdir, 'refs/heads/a'), 'ref: refs/heads/b\n');
  fs.writeFileSync(join(gitdir, 'refs/heads/b'), 'ref: refs/heads/a\n');
  assert.throws(() => readRef(gitdir, 'refs/heads/a'), (e: unknown) => e instanceof RefError && /loop/.test((e as Error).message));
  fs.writeFileSync(join(gitdir, 'HEAD'), 'ref: refs/heads/a\n');
  assert.throws(() => readRef(gitdir, 'HEAD'), (e: unknown) => e instanceof RefError && /loop/.test((e as Error).message));
});

test.run();
