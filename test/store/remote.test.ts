// The transport layer on its own: URL classification, the local object copy, the quarantine (a fetch writes no
// ref, and a refused fetch can take its objects back), http through a real git http-backend, and ssh through
// the system git (with a stand-in ssh that runs the remote command locally). Native git is the oracle.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { join } from 'node:path';
import {
  copyObjects, fetchObjects, listRemote, localGitdir, pushRef, pushRefs, RemoteError, safeUrl, transportFor,
} from '../../src/store/remote.js';
import { ObjectStore } from '../../src/store/objects.js';
import { ObjectError } from '../../src/errors.js';
import { commitTree, fsck, git, hasGit, mktree } from '../helpers/git.js';
import { hasHttpBackend, serveGit } from '../helpers/http-git.js';
import { tmpdir } from '../helpers/tmp.js';

const skip = hasGit() ? null : 'git is not installed';
if (skip) console.log(`skipping transport tests that need git: ${skip}`);
const withGit = skip ? test.skip : test;

const TRANSPORTS: Array<[string, string, string]> = [
  ['https URL', 'https://example.com/a/b.git', 'http'],
  ['http URL with credentials', 'http://u:p@127.0.0.1:8080/x', 'http'],
  ['file URL', 'file:///srv/layers.git', 'local'],
  ['absolute path', '/srv/layers.git', 'local'],
  ['relative path', '../layers.git', 'local'],
  ['ssh URL', 'ssh://git@example.com/team/base.git', 'git'],
  ['scp-like', 'git@example.com:team/base.git', 'git'],
  ['git protocol', 'git://example.com/base.git', 'git'],
];
for (const [name, url, kind] of TRANSPORTS) {
  test(`transportFor: ${name}`, () => {
    assert.is(transportFor(url, '/tmp').kind, kind);
  });
}

test('transportFor: file URLs and relative paths become absolute paths', () => {
  const f = transportFor('file:///srv/layers.git', '/tmp');
  assert.is(f.kind === 'local' && f.path, '/srv/layers.git');
  const r = transportFor('../x.git', '/tmp/a');
  assert.is(r.kind === 'local' && r.path, '/tmp/x.git');
});

const SAFE: Array<[string, string]> = [
  ['https://alice:s3cret@host/x.git', 'https://alice:***@host/x.git'],
  ['https://token@host/x.git', 'https://token@host/x.git'],
  ['https://host/x.git', 'https://host/x.git'],
  ['/srv/a@b:c', '/srv/a@b:c'],
];
for (const [url, want] of SAFE) test(`safeUrl hides passwords: ${url}`, () => assert.is(safeUrl(url), want));

/** A bare repository with a small history made by native git: returns [gitdir, top]. */
function nativeRepo(base: string, name = 'src.git'): [string, string] {
  const gd = join(base, name);
  git(gd, ['init', '--bare', '-q', '-b', 'main']);
  let parent: string | null = null;
  for (let k = 0; k < 3; k++) {
    const tree = mktree(gd, [
      { mode: '100644', name: `f${k}`, content: `file ${k}\n` },
      { mode: '040000', name: 'dir', entries: [{ mode: '100755', name: 'run', content: `#!/bin/sh\necho ${k}\n` }, { mode: '120000', name: 'link', content: 'run' }] },
      { mode: '040000', name: 'empty', entries: [] },
    ]);
    parent = commitTree(gd, tree, parent, `layer ${k}`);
  }
  git(gd, ['update-ref', 'refs/heads/main', parent!]);
  return [gd, parent!];
}

withGit('copyObjects copies what is missing, stops at what the destination has, and re-hashes', async () => {
  const base = tmpdir();
  const [src, top] = nativeRepo(base);
  const dst = join(base, 'dst.git');
  git(dst, ['init', '--bare', '-q']);
  const s = new ObjectStore(src);
  const d = new ObjectStore(dst);
  const n = await copyObjects(s, d, [top]);
  assert.ok(n > 5, `copied ${n}`);
  git(dst, ['update-ref', 'refs/heads/main', top]);
  fsck(dst);
  assert.is(git(dst, ['rev-list', '--count', top]), '3');
  assert.is(await copyObjects(s, d, [top]), 0);
  s.close(); d.close();

  // A source object whose content does not hash to its name is refused.
  const bogus = 'b'.repeat(40);
  fs.mkdirSync(join(src, 'objects', 'bb'), { recursive: true });
  fs.writeFileSync(join(src, 'objects', 'bb', bogus.slice(2)), zlib.deflateSync(Buffer.from('blob 4\0evil')));
  const tree = git(src, ['mktree', '--missing'], `100644 blob ${bogus}\tx\n`);
  const c = commitTree(src, tree, null, 'bad');
  const s2 = new ObjectStore(src);
  const d2 = new ObjectStore(dst);
  let refused: unknown = null;
  try { await copyObjects(s2, d2, [c]); } catch (e) { refused = e; }
  assert.ok(refused instanceof ObjectError && /does not hash|corrupt/.test((refused as Error).message), String(refused));
  s2.close(); d2.close();
});

withGit('copyObjects streams a large blob (loose, then packed by git) without reading it whole', async () => {
  const base = tmpdir();
  const src = join(base, 'src.git');
  git(src, ['init', '--bare', '-q']);
  // 17 MiB (over the 16 MiB that goes through a file) of bytes that do not repeat.
  const big = Buffer.alloc(17 << 20);
  for (let i = 0, x = 1; i < big.length; i++) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; big[i] = x >>> 24; }
  const file = join(base, 'big.bin');
  fs.writeFileSync(file, big);
  const blob = git(src, ['hash-object', '-w', file]);
  const tree = git(src, ['mktree'], `100644 blob ${blob}\tbig.bin\n`);
  const top = commitTree(src, tree, null, 'big');
  for (const how of ['loose', 'packed']) {
    if (how === 'packed') { git(src, ['update-ref', 'refs/heads/main', top]); git(src, ['repack', '-adq']); }
    const dst = join(base, `dst-${how}.git`);
    git(dst, ['init', '--bare', '-q']);
    const s = new ObjectStore(src);
    const d = new ObjectStore(dst);
    assert.is(await copyObjects(s, d, [top]), 3, how);
    s.close(); d.close();
    assert.is(git(dst, ['cat-file', '-s', blob]), String(big.length), how);
    git(dst, ['update-ref', 'refs/heads/main', top]);
    fsck(dst);
    assert.equal(fs.readdirSync(join(dst, 'objects')).filter((n) => n.startsWith('tmp_')), [], `${how}: no temporary file left`);
  }
});

withGit('localGitdir finds a workspace store, a .git directory or a bare repository, else a clear error', () => {
  const base = tmpdir();
  git(join(base, 'bare.git'), ['init', '--bare', '-q']);
  fs.mkdirSync(join(base, 'wt'));
  git(join(base, 'wt/.git'), ['init', '-q']);
  assert.is(localGitdir(join(base, 'bare.git')), join(base, 'bare.git'));
  assert.is(localGitdir(join(base, 'wt')), join(base, 'wt/.git'));
  assert.throws(() => localGitdir(join(base, 'none')), (e: unknown) => e instanceof RemoteError && /no such repository/.test((e as Error).message));
  fs.mkdirSync(join(base, 'plain'));
  assert.throws(() => localGitdir(join(base, 'plain')), /not a git repository/);
});

// Like git's receive.denyCurrentBranch, over every work tree: a branch checked out in the repository's own work
// tree or in any linked one is never moved by a push; other branches are, and nothing is written for a refusal.
withGit('local push refuses a branch that a work tree or a linked work tree has checked out', async () => {
  const base = tmpdir();
  const [src, top] = nativeRepo(base);
  const wt = join(base, 'wt');
  git(src, ['clone', '-q', src, wt]);
  const wtGit = join(wt, '.git');
  git(wtGit, ['branch', 'side']);
  git(wtGit, ['branch', 'free']);
  git(wtGit, ['worktree', 'add', '-q', join(base, 'linked'), 'side']);
  // A bare repository with a linked work tree: only that one's branch is taken.
  const bare = join(base, 'bare.git');
  git(src, ['clone', '-q', '--bare', src, bare]);
  git(bare, ['branch', 'side2']);
  git(bare, ['worktree', 'add', '-q', join(base, 'linked2'), 'side2']);
  const parent = git(src, ['rev-parse', `${top}~1`]);
  const cases: Array<[string, string, string, RegExp | null]> = [
    ['the work tree\'s own branch', wt, 'refs/heads/main', /refusing to update refs\/heads\/main: it is the current branch of the work tree at .*\/wt;/],
    ['a linked work tree\'s branch, pushed to the main one', wt, 'refs/heads/side', /current branch of the work tree at .*\/linked;/],
    ['a linked work tree\'s branch, pushed to the linked one', join(base, 'linked'), 'refs/heads/side', /current branch of the work tree at .*\/linked;/],
    ['a bare repository\'s linked work tree', bare, 'refs/heads/side2', /current branch of the work tree at .*\/linked2;/],
    ['a branch no work tree has', wt, 'refs/heads/free', null],
    ['a bare repository\'s HEAD branch', bare, 'refs/heads/main', null],
  ];
  for (const [name, dst, ref, refused] of cases) {
    const gd = dst === bare ? bare : wtGit; // the refs of a linked work tree are its repository's
    const before = git(gd, ['rev-parse', ref]);
    const push = pushRef(src, transportFor(dst), { oid: parent, ref, expected: before, force: true });
    if (refused) {
      await push.then(() => assert.unreachable(`${name}: pushed`), (e: unknown) => {
        assert.instance(e, RemoteError, name);
        assert.match((e as Error).message, refused, `${name}: ${(e as Error).message}`);
      });
      assert.is(git(gd, ['rev-parse', ref]), before, `${name}: the branch did not move`);
    } else {
      await push;
      assert.is(git(gd, ['rev-parse', ref]), parent, `${name}: the branch moved`);
    }
    fsck(gd);
  }
});

function allObjects(gitdir: string): string[] {
  const s = new ObjectStore(gitdir);
  try { return [...s.allOids()].sort(); } finally { s.close(); }
}

function allRefs(gitdir: string): string {
  return git(gitdir, ['for-each-ref', '--format=%(refname) %(objectname)']);
}

for (const kind of ['local', 'http'] as const) {
  const t = kind === 'http' && !hasHttpBackend() ? test.skip : withGit;
  t(`${kind}: fetchObjects writes no ref (quarantine), and discard() takes every object back`, async () => {
    const base = tmpdir();
    const [src, top] = nativeRepo(base);
    const server = kind === 'http' ? await serveGit(base) : null;
    try {
      const url = server ? server.url('src.git') : src;
      const dst = join(base, 'dst.git');
      git(dst, ['init', '--bare', '-q']);
      const listed = await listRemote(transportFor(url));
      assert.equal([...listed.refs], [['refs/heads/main', top]]);
      assert.is(listed.head, 'refs/heads/main');
      const objectsBefore = allObjects(dst);
      const got = await fetchObjects(dst, transportFor(url), ['refs/heads/main']);
      assert.equal([...got.refs], [['refs/heads/main', top]]);
      assert.is(allRefs(dst), '');
      assert.equal(fs.existsSync(join(dst, 'glayer')) ? fs.readdirSync(join(dst, 'glayer')) : [], [], 'no quarantine left');
      assert.is(git(dst, ['rev-list', '--count', top]), '3');
      got.discard();
      assert.equal(allObjects(dst), objectsBefore);
      fsck(dst);

      // push: the remote ref moves only from what it was seen at.
      const again = await fetchObjects(dst, transportFor(url), ['refs/heads/main']);
      void again;
      const tree = mktree(dst, [{ mode: '100644', name: 'new', content: 'new\n' }]);
      const next = commitTree(dst, tree, top, 'next');
      git(dst, ['update-ref', 'refs/heads/main', next]);
      await pushRef(dst, transportFor(url), { oid: next, ref: 'refs/heads/main', expected: top });
      assert.is(git(src, ['rev-parse', 'refs/heads/main']), next);
      fsck(src);
      const stale = commitTree(dst, tree, null, 'unrelated');
      let err: unknown = null;
      try { await pushRef(dst, transportFor(url), { oid: stale, ref: 'refs/heads/main', expected: top }); } catch (e) { err = e; }
      assert.ok(err, 'a push from a stale view of the remote must fail');
      assert.is(git(src, ['rev-parse', 'refs/heads/main']), next);
    } finally {
      await server?.close();
    }
  });
}

withGit('ssh: delegated to the system git (a stand-in ssh runs the remote command here)', async () => {
  const base = tmpdir();
  const [src, top] = nativeRepo(base);
  const fake = join(base, 'fake-ssh');
  fs.writeFileSync(fake, '#!/bin/sh\nshift $(($# - 1))\nexec sh -c "$1"\n', { mode: 0o755 });
  const saved = { c: process.env.GIT_SSH_COMMAND, v: process.env.GIT_SSH_VARIANT };
  process.env.GIT_SSH_COMMAND = fake;
  process.env.GIT_SSH_VARIANT = 'simple';
  try {
    const url = `ssh://example.invalid${src}`;
    const t = transportFor(url);
    assert.is(t.kind, 'git');
    const listed = await listRemote(t);
    assert.is(listed.refs.get('refs/heads/main'), top);
    const dst = join(base, 'dst.git');
    git(dst, ['init', '--bare', '-q']);
    const got = await fetchObjects(dst, t, ['refs/heads/main']);
    assert.is(got.refs.get('refs/heads/main'), top);
    assert.is(allRefs(dst), '');
    assert.is(git(dst, ['rev-list', '--count', top]), '3');
    const tree = mktree(dst, [{ mode: '100644', name: 'n', content: 'n\n' }]);
    const next = commitTree(dst, tree, top, 'next');
    await pushRef(dst, t, { oid: next, ref: 'refs/heads/main', expected: top });
    assert.is(git(src, ['rev-parse', 'refs/heads/main']), next);
    fsck(src);

    // Without git on the PATH: a clear error that says so.
    const path = process.env.PATH;
    process.env.PATH = join(base, 'no-bin');
    try {
      await listRemote(t);
      assert.unreachable('listRemote without git must fail');
    } catch (e) {
      assert.instance(e, RemoteError);
      assert.match((e as Error).message, /needs the system 'git', which is not installed/);
    } finally {
      process.env.PATH = path;
    }
  } finally {
    if (saved.c === undefined) delete process.env.GIT_SSH_COMMAND; else process.env.GIT_SSH_COMMAND = saved.c;
    if (saved.v === undefined) delete process.env.GIT_SSH_VARIANT; else process.env.GIT_SSH_VARIANT = saved.v;
  }
});

for (const kind of ['local', 'http', 'ssh'] as const) {
  const t = kind === 'http' && !hasHttpBackend() ? test.skip : withGit;
  t(`${kind}: pushRefs moves several refs in one request; an optional one refused is reported, the others move; listRemote keeps image configs apart`, async () => {
    const base = tmpdir();
    const [src, top] = nativeRepo(base);
    const server = kind === 'http' ? await serveGit(base) : null;
    const fake = join(base, 'fake-ssh');
    fs.writeFileSync(fake, '#!/bin/sh\nshift $(($# - 1))\nexec sh -c "$1"\n', { mode: 0o755 });
    const saved = { c: process.env.GIT_SSH_COMMAND, v: process.env.GIT_SSH_VARIANT };
    if (kind === 'ssh') { process.env.GIT_SSH_COMMAND = fake; process.env.GIT_SSH_VARIANT = 'simple'; }
    try {
      const url = server ? server.url('src.git') : kind === 'ssh' ? `ssh://example.invalid${src}` : src;
      const tr = transportFor(url);
      const dst = join(base, 'dst.git');
      git(dst, ['init', '--bare', '-q']);
      await fetchObjects(dst, tr, ['refs/heads/main']);
      const next = commitTree(dst, mktree(dst, [{ mode: '100644', name: 'n', content: 'n\n' }]), top, 'next');
      const cfgRef = 'refs/glayer/config/main';
      const c1 = commitTree(dst, mktree(dst, [{ mode: '100644', name: 'config.json', content: '{"os":"linux"}\n' }]), null, 'config');
      const done = await pushRefs(dst, tr, [
        { oid: next, ref: 'refs/heads/main', expected: top },
        { oid: c1, ref: cfgRef, expected: null, optional: true },
      ]);
      assert.equal([...done], [['refs/heads/main', null], [cfgRef, null]]);
      assert.is(git(src, ['rev-parse', 'refs/heads/main']), next);
      assert.is(git(src, ['rev-parse', cfgRef]), c1);
      if (server) assert.is(server.requests.filter((r) => r === 'POST /src.git/git-receive-pack').length, 1);
      const listed = await listRemote(tr);
      assert.equal([...listed.refs.keys()], ['refs/heads/main'], 'a config ref is not a stack');
      assert.equal([...listed.configs], [[cfgRef, c1]]);
      fsck(src);

      // The optional ref, pushed from a stale view (the remote's config moved): reported; the stack still moves.
      const c2 = commitTree(dst, mktree(dst, [{ mode: '100644', name: 'config.json', content: '{"os":"linux","x":1}\n' }]), c1, 'config 2');
      const other = commitTree(src, mktree(src, [{ mode: '100644', name: 'config.json', content: '{}\n' }]), null, 'theirs');
      git(src, ['update-ref', cfgRef, other]);
      const next2 = commitTree(dst, mktree(dst, [{ mode: '100644', name: 'n2', content: 'n2\n' }]), next, 'next 2');
      const again = await pushRefs(dst, tr, [
        { oid: next2, ref: 'refs/heads/main', expected: next },
        { oid: c2, ref: cfgRef, expected: c1, optional: true },
      ]);
      assert.is(again.get('refs/heads/main'), null);
      assert.type(again.get(cfgRef), 'string');
      assert.is(git(src, ['rev-parse', 'refs/heads/main']), next2);
      assert.is(git(src, ['rev-parse', cfgRef]), other);
      fsck(src);

      // A required ref refused still throws.
      let err: unknown = null;
      try { await pushRefs(dst, tr, [{ oid: c2, ref: cfgRef, expected: c1 }]); } catch (e) { err = e; }
      assert.ok(err, 'a required ref refused must throw');
      assert.is(git(src, ['rev-parse', cfgRef]), other);
    } finally {
      await server?.close();
      if (saved.c === undefined) delete process.env.GIT_SSH_COMMAND; else process.env.GIT_SSH_COMMAND = saved.c;
      if (saved.v === undefined) delete process.env.GIT_SSH_VARIANT; else process.env.GIT_SSH_VARIANT = saved.v;
    }
  });
}

test.run();
