// Sharing layers over git remotes, through the CLI: a real `git http-backend` on 127.0.0.1 and a local bare
// repository, with native git as the oracle (fsck --strict on every store, native clones, layers authored with
// plain git). Skipped with a printed reason where git or git-http-backend is missing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { glayer, glayerOk, type CliResult } from '../helpers/cli.js';
import { commitTree, fsck, git, hasGit, mktree } from '../helpers/git.js';
import { gitAsync, hasHttpBackend, serveGit, type GitHttpServer } from '../helpers/http-git.js';
import { tmpdir } from '../helpers/tmp.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const skip = !hasGit() ? 'git is not installed' : !hasHttpBackend() ? 'git-http-backend is not installed' : null;
if (skip) console.log(`skipping remote tests: ${skip}`);
const it = skip ? test.skip : test;

// No credential helper, askpass or config of the machine's user may answer for us.
process.env.GIT_CONFIG_NOSYSTEM = '1';
process.env.GIT_CONFIG_GLOBAL = '/dev/null';
delete process.env.GIT_ASKPASS;
delete process.env.SSH_ASKPASS;

/** A directory as {path: description}: kind, mode, content hash, symlink target. */
function snap(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string): void => {
    for (const name of fs.readdirSync(d).sort()) {
      const abs = join(d, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(abs);
      if (st.isDirectory()) { out[r] = 'dir'; walk(abs, r); }
      else if (st.isSymbolicLink()) out[r] = `-> ${fs.readlinkSync(abs)}`;
      else out[r] = `${st.mode & 0o100 ? 755 : 644} ${createHash('sha1').update(fs.readFileSync(abs)).digest('hex')}`;
    }
  };
  walk(dir, '');
  return out;
}

function refs(gitdir: string): string {
  return git(gitdir, ['for-each-ref', '--format=%(refname) %(objectname)']);
}

function write(ws: string, path: string, text: string): void {
  const abs = join(ws, 'view', path);
  fs.mkdirSync(join(abs, '..'), { recursive: true });
  fs.writeFileSync(abs, text);
}

async function commit(ws: string, msg: string): Promise<string> {
  return JSON.parse((await glayerOk(ws, 'commit', '-m', msg, '--json')).stdout).id;
}

function oneLine(r: CliResult): string {
  const lines = r.stderr.trim().split('\n');
  assert.is(lines.length, 1, `expected one line on stderr, got: ${r.stderr}`);
  return lines[0];
}

/** A workspace with a three-layer stack (template + two commits) and its view mounted. */
async function threeLayers(base: string, name: string): Promise<string> {
  await glayerOk(base, 'init', name, '--template', 'aufs-demo');
  const ws = join(base, name);
  await glayerOk(ws, 'mount-view');
  write(ws, 'etc/app.conf', 'port=80\n');
  fs.symlinkSync('app.conf', join(ws, 'view/etc/link'));
  await commit(ws, 'two');
  write(ws, 'bin/run', '#!/bin/sh\necho hi\n');
  fs.chmodSync(join(ws, 'view/bin/run'), 0o755);
  fs.rmSync(join(ws, 'view/test'));
  await commit(ws, 'three');
  return ws;
}

interface Remote { kind: string; url: string; bare: string; server?: GitHttpServer }

async function makeRemote(kind: 'http' | 'local', base: string, opts: { auth?: { username: string; password: string } } = {}): Promise<Remote> {
  const root = join(base, 'srv');
  fs.mkdirSync(root, { recursive: true });
  const bare = join(root, 'layers.git');
  git(bare, ['init', '--bare', '-q', '-b', 'main']);
  if (kind === 'local') return { kind, url: bare, bare };
  const server = await serveGit(root, opts);
  return { kind, url: server.url('layers.git'), bare, server };
}

// ---- the same flows over http and over a local path ------------------------------------------------------

for (const kind of ['http', 'local'] as const) {
  it(`${kind}: push a three-layer stack, clone it, pull a new layer, refuse a non-fast-forward`, async () => {
    const base = tmpdir();
    const remote = await makeRemote(kind, base);
    try {
      const ws1 = await threeLayers(base, 'ws1');
      const g1 = join(ws1, '.glayer');
      await glayerOk(ws1, 'remote', 'add', 'origin', remote.url);
      assert.match((await glayerOk(ws1, 'remote', 'list')).stdout, /^origin\s+\S+/);
      assert.is(git(g1, ['config', 'remote.origin.fetch']), '+refs/heads/*:refs/remotes/origin/*');

      // push: the remote branch is the stack, native git agrees.
      const p = await glayerOk(ws1, 'push');
      assert.match(p.stdout, /refs\/heads\/main/);
      const top = git(g1, ['rev-parse', 'refs/heads/main']);
      assert.is(git(remote.bare, ['rev-parse', 'refs/heads/main']), top);
      assert.is(git(remote.bare, ['rev-list', '--count', 'main']), '3');
      assert.is(git(g1, ['rev-parse', 'refs/remotes/origin/main']), top);
      fsck(remote.bare);
      assert.match((await glayerOk(ws1, 'push')).stdout, /up to date/);

      // clone: an equal view, the same layers, origin and upstream recorded.
      const c = await glayerOk(base, 'clone', remote.url, 'ws2');
      assert.match(c.stdout, /Cloned/);
      const ws2 = join(base, 'ws2');
      const g2 = join(ws2, '.glayer');
      assert.equal(snap(join(ws2, 'view')), snap(join(ws1, 'view')));
      assert.is(git(g2, ['rev-parse', 'refs/heads/main']), top);
      assert.is(git(g2, ['config', 'branch.main.merge']), 'refs/heads/main');
      assert.is((await glayerOk(ws2, 'status')).stdout, '');
      fsck(g2);

      // a layer pushed from ws1 is pulled into ws2: fast-forward, the view follows, an uncommitted edit stays.
      write(ws1, 'etc/app.conf', 'port=8080\n');
      const l4 = await commit(ws1, 'four');
      await glayerOk(ws1, 'push');
      write(ws2, 'notes.txt', 'mine\n');
      const pl = await glayerOk(ws2, 'pull');
      assert.match(pl.stdout, /Fast-forward/);
      assert.is(git(g2, ['rev-parse', 'refs/heads/main']), l4);
      assert.is(fs.readFileSync(join(ws2, 'view/etc/app.conf'), 'utf8'), 'port=8080\n');
      assert.is(fs.readFileSync(join(ws2, 'view/notes.txt'), 'utf8'), 'mine\n');
      assert.is((await glayerOk(ws2, 'status')).stdout, 'A notes.txt\n');
      assert.match((await glayerOk(ws2, 'pull')).stdout, /Already up to date/);

      // non-fast-forward: ws1 publishes a fifth layer; ws2 commits on the fourth and tries to push.
      write(ws1, 'five', '5\n');
      const l5 = await commit(ws1, 'five');
      await glayerOk(ws1, 'push');
      const mine = await commit(ws2, 'notes');
      const before = refs(remote.bare);
      const nf = await glayer(ws2, 'push');
      assert.is(nf.code, 1);
      const line = oneLine(nf);
      assert.match(line, /rejected/);
      assert.match(line, /non-fast-forward/);
      assert.match(line, /pull --rebase/);
      assert.is(refs(remote.bare), before);

      // a plain pull refuses to merge diverged stacks; pull --rebase moves the local layer onto the fifth.
      const dv = await glayer(ws2, 'pull');
      assert.is(dv.code, 1);
      assert.match(oneLine(dv), /diverged/);
      assert.is(git(g2, ['rev-parse', 'refs/heads/main']), mine);
      const rb = await glayerOk(ws2, 'pull', '--rebase');
      assert.match(rb.stdout, /Rebased 1 layer/);
      const rebased = git(g2, ['rev-parse', 'refs/heads/main']);
      assert.is(git(g2, ['rev-parse', 'refs/heads/main~1']), l5);
      assert.is(git(g2, ['rev-parse', 'refs/heads/main^{tree}']), git(g2, ['rev-parse', `${mine}^{tree}`]));
      assert.is(fs.readFileSync(join(ws2, 'view/five'), 'utf8'), '5\n');
      assert.is(fs.readFileSync(join(ws2, 'view/notes.txt'), 'utf8'), 'mine\n');
      await glayerOk(ws2, 'push');
      assert.is(git(remote.bare, ['rev-parse', 'refs/heads/main']), rebased);
      fsck(remote.bare);
      fsck(g1);
      fsck(g2);

      // stacks: the local stack and origin/main share every layer.
      const st = JSON.parse((await glayerOk(ws2, 'stacks', '--json')).stdout);
      const main = st.find((s: { name: string }) => s.name === 'main');
      assert.is(main.current, true);
      assert.is(main.layers, 6);
      assert.equal(main.shares, [{ with: 'origin/main', layers: 6, top: rebased }]);
    } finally {
      await remote.server?.close();
    }
  });
}

// ---- credentials ------------------------------------------------------------------------------------------

it('http: a remote that wants credentials gives a clear error and exit 3, never a prompt', async () => {
  const base = tmpdir();
  const remote = await makeRemote('http', base, { auth: { username: 'alice', password: 's3cret' } });
  await threeLayers(base, 'ws1');
  try {
    const ws1 = join(base, 'ws1');
    git(join(ws1, '.glayer'), ['push', '-q', remote.bare, 'refs/heads/main:refs/heads/main']);

    // No credentials anywhere: exit 3, one line, no workspace left behind.
    const r = await glayer(base, 'clone', remote.url, 'nope');
    assert.is(r.code, 3);
    assert.match(oneLine(r), /authentication required/);
    assert.not.ok(fs.existsSync(join(base, 'nope')));

    // Wrong credentials in the URL: rejected, and the password is not printed.
    const bad = remote.url.replace('http://', 'http://alice:wrong@');
    const r2 = await glayer(base, 'clone', bad, 'nope');
    assert.is(r2.code, 3);
    assert.match(oneLine(r2), /rejected/);
    assert.not.match(r2.stderr, /wrong/);

    // The CLI as its own process, stdin open and never written: it must end by itself, exit 3.
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'clone', '-C', base, remote.url, 'nope2'], {
      cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' },
    });
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => { child.kill('SIGKILL'); resolve(null); }, 30_000);
      child.on('close', (c) => { clearTimeout(timer); resolve(c); });
    });
    assert.is(code, 3, `the CLI waited for input or failed otherwise: ${err}`);

    // Credentials from the URL, from the environment, and from a git credential helper all work.
    const good = remote.url.replace('http://', 'http://alice:s3cret@');
    await glayerOk(base, 'clone', good, 'byurl');
    assert.ok(fs.existsSync(join(base, 'byurl/view/etc/app.conf')));
    assert.not.match((await glayerOk(join(base, 'byurl'), 'remote', 'list')).stdout, /s3cret/);

    process.env.GLAYER_USERNAME = 'alice';
    process.env.GLAYER_PASSWORD = 's3cret';
    try { await glayerOk(base, 'clone', remote.url, 'byenv'); } finally { delete process.env.GLAYER_USERNAME; delete process.env.GLAYER_PASSWORD; }

    const helper = join(base, 'helper.sh');
    fs.writeFileSync(helper, '#!/bin/sh\n[ "$1" = get ] && { cat >/dev/null; echo username=alice; echo password=s3cret; }\nexit 0\n', { mode: 0o755 });
    Object.assign(process.env, { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'credential.helper', GIT_CONFIG_VALUE_0: helper });
    try {
      await glayerOk(base, 'clone', remote.url, 'byhelper');
      const ws = join(base, 'byhelper');
      write(ws, 'x', 'x\n');
      await commit(ws, 'x');
      await glayerOk(ws, 'push');
    } finally {
      for (const k of ['GIT_CONFIG_COUNT', 'GIT_CONFIG_KEY_0', 'GIT_CONFIG_VALUE_0']) delete process.env[k];
    }
    fsck(remote.bare);
  } finally {
    await remote.server?.close();
  }
});

// ---- interop with native git ------------------------------------------------------------------------------

it('http: a native git clone of what glayer pushed passes fsck --strict; a layer made with plain git is pulled and mounted', async () => {
  const base = tmpdir();
  const remote = await makeRemote('http', base);
  try {
    const ws = await threeLayers(base, 'ws');
    await glayerOk(ws, 'push', remote.url);
    const nat = join(base, 'native');
    await gitAsync(['clone', '-q', remote.url, nat]);
    await gitAsync(['fsck', '--strict', '--no-dangling'], { cwd: nat });
    assert.is(await gitAsync(['show', 'HEAD~1:etc/app.conf'], { cwd: nat }), 'port=80');
    // A clone checks out the top layer's tree: its delta.
    assert.equal(fs.readdirSync(nat).filter((n) => n !== '.git').sort(), ['.wh.test', 'bin']);

    // A layer authored with plain git: start from an empty tree (a layer holds only its delta), add a new file,
    // a changed file, a file that re-creates a deleted one and a whiteout marker, commit, push.
    await gitAsync(['rm', '-r', '-q', '.'], { cwd: nat });
    fs.mkdirSync(join(nat, 'etc'));
    fs.writeFileSync(join(nat, 'etc/app.conf'), 'port=81\n');
    fs.writeFileSync(join(nat, 'plain.txt'), 'from git\n');
    fs.writeFileSync(join(nat, 'test'), 'again\n');
    fs.writeFileSync(join(nat, '.wh.bin'), '');
    await gitAsync(['add', '-A'], { cwd: nat });
    await gitAsync(['commit', '-q', '-m', 'layer by plain git'], { cwd: nat });
    await gitAsync(['push', '-q', 'origin', 'HEAD:refs/heads/main'], { cwd: nat });

    await glayerOk(ws, 'remote', 'add', 'origin', remote.url);
    const pl = await glayerOk(ws, 'pull');
    assert.match(pl.stdout, /Fast-forward/);
    const view = join(ws, 'view');
    assert.is(fs.readFileSync(join(view, 'plain.txt'), 'utf8'), 'from git\n');
    assert.is(fs.readFileSync(join(view, 'etc/app.conf'), 'utf8'), 'port=81\n');
    assert.is(fs.readFileSync(join(view, 'test'), 'utf8'), 'again\n');
    assert.not.ok(fs.existsSync(join(view, 'bin')));
    assert.not.ok(fs.existsSync(join(view, '.wh.bin')));
    assert.is(fs.readlinkSync(join(view, 'etc/link')), 'app.conf');
    assert.is((await glayerOk(ws, 'status')).stdout, '');
    const other = join(base, 'other');
    await glayerOk(ws, 'mount-view', other);
    assert.equal(snap(other), snap(view));
    fsck(join(ws, '.glayer'));
  } finally {
    await remote.server?.close();
  }
});

// ---- stacks on shared bases: init --from and pull --rebase ------------------------------------------------

/** A publisher of a base stack `base` (v1), and a consumer built on it with two local layers. */
async function baseAndConsumer(kind: 'http' | 'local') {
  const base = tmpdir();
  const remote = await makeRemote(kind, base);
  await glayerOk(base, 'init', 'pub', '--stack', 'base');
  const pub = join(base, 'pub');
  await glayerOk(pub, 'mount-view');
  write(pub, 'etc/os-release', 'v1\n');
  write(pub, 'etc/passwd', 'root\n');
  write(pub, 'lib/old.so', 'old\n');
  write(pub, 'lib/keep.so', 'keep\n');
  const v1 = await commit(pub, 'base v1');
  await glayerOk(pub, 'remote', 'add', 'origin', remote.url);
  await glayerOk(pub, 'push');

  const consumer = async (name: string) => {
    const i = await glayerOk(base, 'init', name, '--from', `${remote.url}#base`, '--stack', 'app');
    assert.match(i.stdout, /starts on/);
    const app = join(base, name);
    const g = join(app, '.glayer');
    assert.is(git(g, ['rev-parse', 'refs/heads/app']), v1);
    assert.is(git(g, ['config', 'branch.app.merge']), 'refs/heads/base');
    await glayerOk(app, 'mount-view');
    write(app, 'app/config', 'debug=0\n');
    const l1 = await commit(app, 'local one');
    write(app, 'etc/app.conf', 'x=1\n');
    fs.rmSync(join(app, 'view/lib/old.so'));
    const l2 = await commit(app, 'local two');
    return { app, g, l1, l2 };
  };
  return { base, remote, pub, v1, consumer };
}

it('http: init --from a published base, pull --rebase onto its v2: the view is v2 with the local layers on top', async () => {
  const { base, remote, pub, v1, consumer } = await baseAndConsumer('http');
  const { app, g, l1, l2 } = await consumer('app');
  try {
    // Upstream publishes v2.
    write(pub, 'etc/os-release', 'v2\n');
    write(pub, 'usr/bin/tool', 'tool\n');
    const v2 = await commit(pub, 'base v2');
    await glayerOk(pub, 'push');

    let st = JSON.parse((await glayerOk(app, 'stacks', '--json')).stdout);
    assert.equal(st.find((s: { name: string }) => s.name === 'app').shares, [{ with: 'origin/base', layers: 1, top: v1 }]);

    write(app, 'scratch', 'uncommitted\n');
    const r = await glayerOk(app, 'pull', '--rebase', '--json');
    const res = JSON.parse(r.stdout);
    assert.is(res.mode, 'rebase');
    assert.equal(res.conflicts, []);
    assert.equal(res.rebased.map((m: { old: string }) => m.old), [l1, l2]);
    // Same trees, new parents; the base layers are shared, never rewritten.
    assert.is(git(g, ['rev-parse', 'refs/heads/app~2']), v2);
    assert.is(git(g, ['rev-parse', 'refs/heads/app~1^{tree}']), git(g, ['rev-parse', `${l1}^{tree}`]));
    assert.is(git(g, ['rev-parse', 'refs/heads/app^{tree}']), git(g, ['rev-parse', `${l2}^{tree}`]));
    assert.is(git(g, ['log', '--format=%s', 'refs/heads/app']), 'local two\nlocal one\nbase v2\nbase v1');

    // The view: v2's view with the local layers' changes, plus the uncommitted edit.
    const view = join(app, 'view');
    const want = snap(join(pub, 'view'));
    want['app'] = 'dir';
    want['app/config'] = snap(view)['app/config'];
    want['etc/app.conf'] = snap(view)['etc/app.conf'];
    want['scratch'] = snap(view)['scratch'];
    delete want['lib/old.so'];
    assert.equal(snap(view), want);
    assert.is(fs.readFileSync(join(view, 'etc/os-release'), 'utf8'), 'v2\n');
    assert.is(fs.readFileSync(join(view, 'app/config'), 'utf8'), 'debug=0\n');
    assert.is((await glayerOk(app, 'status')).stdout, 'A scratch\n');
    st = JSON.parse((await glayerOk(app, 'stacks', '--json')).stdout);
    assert.equal(st.find((s: { name: string }) => s.name === 'app').shares, [{ with: 'origin/base', layers: 2, top: v2 }]);
    fsck(g);
    void base; void remote;
  } finally {
    await remote.server?.close();
  }
});

it('local: a conflicting pull --rebase lists the paths and changes nothing; --strategy ours|theirs picks a side', async () => {
  const { base, remote, pub, consumer } = await baseAndConsumer('local');
  const { app, g } = await consumer('app');
  // A second consumer, the same edits, for the other strategy.
  const { app: cp, g: g2, l2: l2b } = await consumer('app2');
  // Both sides change etc/os-release; the upstream also deletes lib (the local layer deleted lib/old.so in it).
  write(app, 'etc/os-release', 'mine\n');
  const l3 = await commit(app, 'local three');
  write(cp, 'etc/os-release', 'mine\n');
  await commit(cp, 'local three');
  write(pub, 'etc/os-release', 'v2\n');
  fs.rmSync(join(pub, 'view/lib'), { recursive: true });
  write(pub, 'usr/share/doc', 'doc\n');
  const v2 = await commit(pub, 'base v2');
  await glayerOk(pub, 'push');

  const before = { refs: refs(g), view: snap(join(app, 'view')), upper: snap(join(app, 'upper')), config: fs.readFileSync(join(g, 'config'), 'utf8') };
  const r = await glayer(app, 'pull', '--rebase');
  assert.is(r.code, 1);
  const line = oneLine(r);
  assert.match(line, /etc\/os-release/);
  assert.match(line, /lib\/old\.so/);
  assert.match(line, /nothing was changed/);
  const j = await glayer(app, 'pull', '--rebase', '--json');
  assert.equal(JSON.parse(j.stderr).error.paths, ['etc/os-release', 'lib/old.so']);
  assert.equal({ refs: refs(g), view: snap(join(app, 'view')), upper: snap(join(app, 'upper')), config: fs.readFileSync(join(g, 'config'), 'utf8') }, before);
  assert.is(git(g, ['rev-parse', 'refs/heads/app']), l3);

  // ours: the local layers stay as they are, on top of v2.
  const o = JSON.parse((await glayerOk(app, 'pull', '--rebase', '--strategy', 'ours', '--json')).stdout);
  assert.equal(o.conflicts, ['etc/os-release', 'lib/old.so']);
  assert.is(git(g, ['rev-parse', 'refs/heads/app~3']), v2);
  assert.is(git(g, ['rev-parse', 'refs/heads/app^{tree}']), git(g, ['rev-parse', `${l3}^{tree}`]));
  assert.is(fs.readFileSync(join(app, 'view/etc/os-release'), 'utf8'), 'mine\n');
  assert.is(fs.readFileSync(join(app, 'view/usr/share/doc'), 'utf8'), 'doc\n');
  assert.not.ok(fs.existsSync(join(app, 'view/lib/keep.so')));
  fsck(g);

  // theirs: the conflicting parts of the local layers are dropped; the rest stays.
  const t = JSON.parse((await glayerOk(cp, 'pull', '--rebase', '--strategy', 'theirs', '--json')).stdout);
  assert.equal(t.conflicts, ['etc/os-release', 'lib/old.so']);
  assert.is(git(g2, ['rev-parse', 'refs/heads/app~3']), v2);
  // The second local layer deleted lib/old.so, which the upstream deleted with all of lib: that part is dropped;
  // its other change (etc/app.conf) stays. The third layer's only change conflicted: it is left empty.
  assert.is.not(git(g2, ['rev-parse', 'refs/heads/app~1^{tree}']), git(g2, ['rev-parse', `${l2b}^{tree}`]));
  assert.is(git(g2, ['ls-tree', '-r', '--name-only', 'refs/heads/app~1']), 'etc/app.conf');
  assert.is(git(g2, ['ls-tree', '-r', '--name-only', 'refs/heads/app']), '');
  assert.is(git(g2, ['log', '--format=%s', 'refs/heads/app']), 'local three\nlocal two\nlocal one\nbase v2\nbase v1');
  const view = join(cp, 'view');
  assert.is(fs.readFileSync(join(view, 'etc/os-release'), 'utf8'), 'v2\n');
  assert.is(fs.readFileSync(join(view, 'etc/app.conf'), 'utf8'), 'x=1\n');
  assert.is(fs.readFileSync(join(view, 'app/config'), 'utf8'), 'debug=0\n');
  assert.not.ok(fs.existsSync(join(view, 'lib')));
  assert.is((await glayerOk(cp, 'status')).stdout, '');
  const fresh = join(base, 'fresh');
  await glayerOk(cp, 'mount-view', fresh);
  assert.equal(snap(fresh), snap(view));
  fsck(g2);
  void remote;
});

// ---- hostile remotes --------------------------------------------------------------------------------------

const HOSTILE: Array<{ name: string; entries: Parameters<typeof mktree>[1]; path: RegExp }> = [
  { name: "a '..' entry", entries: [{ mode: '100644', name: '..', content: 'escape\n' }], path: /\.\./ },
  { name: 'a bare .wh. marker', entries: [{ mode: '040000', name: 'etc', entries: [{ mode: '100644', name: '.wh.', content: '' }] }], path: /etc\/\.wh\./ },
  { name: 'a marker with content', entries: [{ mode: '100644', name: '.wh.test', content: 'not empty' }], path: /\.wh\.test/ },
  { name: 'a submodule', entries: [{ mode: '160000', name: 'sub', content: '1111111111111111111111111111111111111111' }], path: /sub/ },
  { name: "a '.git' directory", entries: [{ mode: '040000', name: '.GIT', entries: [{ mode: '100644', name: 'config', content: 'x' }] }], path: /\.GIT/ },
];

for (const kind of ['http', 'local'] as const) {
  it(`${kind}: a hostile remote layer is refused with one line, and nothing local changes`, async () => {
    const base = tmpdir();
    const remote = await makeRemote(kind, base);
    try {
      const ws = await threeLayers(base, 'ws');
      const g = join(ws, '.glayer');
      await glayerOk(ws, 'remote', 'add', 'origin', remote.url);
      await glayerOk(ws, 'push');
      const good = git(remote.bare, ['rev-parse', 'refs/heads/main']);
      for (const h of HOSTILE) {
        const tree = mktree(remote.bare, h.entries);
        const bad = commitTree(remote.bare, tree, good, h.name);
        git(remote.bare, ['update-ref', 'refs/heads/main', bad]);
        const before = { refs: refs(g), view: snap(join(ws, 'view')), upper: snap(join(ws, 'upper')) };
        for (const args of [['fetch'], ['pull']]) {
          const r = await glayer(ws, ...args);
          assert.is(r.code, 2, `${h.name}: ${args[0]}: ${r.stderr}`);
          const line = oneLine(r);
          assert.match(line, /refusing refs\/heads\/main/, h.name);
          assert.match(line, new RegExp(bad.slice(0, 12)), `${h.name}: names the layer: ${line}`);
          assert.match(line, h.path, `${h.name}: names the path: ${line}`);
          assert.equal({ refs: refs(g), view: snap(join(ws, 'view')), upper: snap(join(ws, 'upper')) }, before, h.name);
        }
        const c = await glayer(base, 'clone', remote.url, 'victim');
        assert.is(c.code, 2, h.name);
        oneLine(c);
        assert.not.ok(fs.existsSync(join(base, 'victim')), `${h.name}: clone left a directory`);
      }
      git(remote.bare, ['update-ref', 'refs/heads/main', good]);
      assert.match((await glayerOk(ws, 'fetch')).stdout, /^/);
      fsck(g);
    } finally {
      await remote.server?.close();
    }
  });
}

it('usage errors: unknown remote, nothing to push, remote add twice', async () => {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  let r = await glayer(ws, 'fetch', 'nosuch');
  assert.is(r.code, 2);
  assert.match(oneLine(r), /no remote named 'nosuch'/);
  r = await glayer(ws, 'fetch');
  assert.is(r.code, 2);
  assert.match(oneLine(r), /no remote/);
  await glayerOk(ws, 'remote', 'add', 'origin', join(base, 'x.git'));
  r = await glayer(ws, 'remote', 'add', 'origin', join(base, 'y.git'));
  assert.is(r.code, 2);
  assert.match(oneLine(r), /already exists/);
  r = await glayer(ws, 'push');
  assert.is(r.code, 2);
  assert.match(oneLine(r), /no layers to push/);
  r = await glayer(ws, 'fetch');
  assert.is(r.code, 2);
  assert.match(oneLine(r), /no such repository/);
  await glayerOk(ws, 'remote', 'remove', 'origin');
  assert.is((await glayerOk(ws, 'remote', 'list')).stdout, '');
  r = await glayer(ws, 'pull', '--strategy', 'ours');
  assert.is(r.code, 2);
});

test.run();
