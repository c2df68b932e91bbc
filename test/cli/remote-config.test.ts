/**
 * The image config travels with its stack: push sends refs/glayer/config/STACK (fast-forward, or --force), fetch
 * brings it to refs/glayer/remote-config/REMOTE/STACK (pruned with its stack), clone sets it, pull
 * fast-forwards it; export of a cloned stack writes the original image's config. Over the real git
 * http-backend and over a local path; native git checks every store.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { glayer, glayerOk } from '../helpers/cli.js';
import { fsck, git, hasGit } from '../helpers/git.js';
import { hasHttpBackend, serveGit, type GitHttpServer } from '../helpers/http-git.js';
import { makeTar, ociLayout } from '../helpers/image.js';
import { tmpdir } from '../helpers/tmp.js';

const skip = !hasGit() ? 'git is not installed' : !hasHttpBackend() ? 'git-http-backend is not installed' : null;
if (skip) console.log(`skipping remote config tests: ${skip}`);
const it = skip ? test.skip : test;

process.env.GIT_CONFIG_NOSYSTEM = '1';
process.env.GIT_CONFIG_GLOBAL = '/dev/null';
delete process.env.GIT_ASKPASS;
delete process.env.SSH_ASKPASS;

const CONFIG = {
  architecture: 'arm64',
  os: 'linux',
  variant: 'v8',
  config: {
    Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'MODE=prod'],
    Cmd: ['/bin/app', '--serve'],
    Entrypoint: ['/bin/tini', '--'],
    WorkingDir: '/srv',
    User: '1000:1000',
    Labels: { 'org.example.team': 'base', 'org.opencontainers.image.version': '1.2' },
    ExposedPorts: { '8080/tcp': {}, '53/udp': {} },
    Volumes: { '/data': {} },
    StopSignal: 'SIGTERM',
  },
};

/** The config JSON of image TAG in the OCI layout DIR. */
function layoutConfig(dir: string, tag: string): Record<string, unknown> {
  const blob = (d: string): Buffer => fs.readFileSync(join(dir, 'blobs', 'sha256', d.replace(/^sha256:/, '')));
  const idx = JSON.parse(fs.readFileSync(join(dir, 'index.json'), 'utf8'));
  const m = idx.manifests.find((x: { annotations?: Record<string, string> }) => x.annotations?.['org.opencontainers.image.ref.name'] === tag);
  assert.ok(m, `no image ${tag} in ${dir}`);
  const manifest = JSON.parse(blob(m.digest).toString('utf8'));
  return JSON.parse(blob(manifest.config.digest).toString('utf8'));
}

async function json<T = Record<string, unknown>>(cwd: string, ...argv: string[]): Promise<T> {
  return JSON.parse((await glayerOk(cwd, ...argv, '--json')).stdout) as T;
}

interface Remote { url: string; bare: string; server?: GitHttpServer }

async function makeRemote(kind: 'http' | 'local', base: string): Promise<Remote> {
  const root = join(base, 'srv');
  fs.mkdirSync(root, { recursive: true });
  const bare = join(root, 'layers.git');
  git(bare, ['init', '--bare', '-q', '-b', 'main']);
  if (kind === 'local') return { url: bare, bare };
  const server = await serveGit(root);
  return { url: server.url('layers.git'), bare, server };
}

const CREF = 'refs/glayer/config/app';
const TRACK = 'refs/glayer/remote-config/origin/app';
const rev = (gitdir: string, ref: string): string => git(gitdir, ['rev-parse', '--verify', '-q', ref]);
const hasRef = (gitdir: string, ref: string): boolean => git(gitdir, ['for-each-ref', '--format=%(refname)', ref]) === ref;

for (const kind of ['http', 'local'] as const) {
  it(`${kind}: the image config travels with its stack (push, clone, export, pull, divergence, --force, fetch --prune)`, async () => {
    const base = tmpdir();
    const remote = await makeRemote(kind, base);
    try {
      // A: an imported image with a full config, pushed.
      await glayerOk(base, 'init', 'A');
      const A = join(base, 'A');
      const gA = join(A, '.glayer');
      const layout = ociLayout([
        { tar: await makeTar([{ name: 'etc/', type: 'directory' }, { name: 'etc/app.conf', content: 'port=8080\n' }]) },
        { tar: await makeTar([{ name: 'bin/', type: 'directory' }, { name: 'bin/app', content: '#!/bin/sh\necho app\n', mode: 0o755 }]) },
      ], { tag: 'v1', config: CONFIG });
      await glayerOk(A, 'import', `oci:${layout}:v1`, '--stack', 'app');
      assert.ok(hasRef(gA, CREF), 'import keeps the config');
      await glayerOk(A, 'remote', 'add', 'origin', remote.url);
      const p1 = await json<{ config: string; warnings: string[] }>(A, 'push', 'origin', 'app');
      // Over http, the stack and its config go in one receive-pack request.
      if (remote.server) assert.is(remote.server.requests.filter((r) => r === 'POST /layers.git/git-receive-pack').length, 1);
      assert.is(p1.config, 'sent');
      assert.equal(p1.warnings, []);
      assert.is(rev(remote.bare, CREF), rev(gA, CREF));
      assert.is(rev(remote.bare, 'refs/heads/app'), rev(gA, 'refs/heads/app'));
      assert.is(rev(gA, TRACK), rev(gA, CREF));
      assert.is((await json<{ config: string }>(A, 'push', 'origin', 'app')).config, 'up-to-date');
      // The config ref is no stack: native git lists no branch for it, glayer stacks shows none.
      assert.not.match((await glayerOk(A, 'stacks')).stdout, /config/);
      fsck(remote.bare);

      // B: a clone exports the same config as A.
      await glayerOk(base, 'clone', remote.url, 'B', '--branch', 'app');
      const B = join(base, 'B');
      const gB = join(B, '.glayer');
      assert.is(rev(gB, CREF), rev(gA, CREF));
      assert.is(rev(gB, TRACK), rev(gA, CREF));
      // remote remove forgets the remote's tracking stacks and configs, packed ones too (a third clone).
      await glayerOk(base, 'clone', remote.url, 'C', '--branch', 'app');
      const gC = join(base, 'C', '.glayer');
      git(gC, ['pack-refs', '--all']);
      assert.ok(hasRef(gC, TRACK) && hasRef(gC, 'refs/remotes/origin/app'));
      await glayerOk(join(base, 'C'), 'remote', 'remove', 'origin');
      assert.is(git(gC, ['for-each-ref', '--format=%(refname)', 'refs/remotes/', 'refs/glayer/remote-config/']), '');
      fsck(gC);
      const out = tmpdir('glayer-cfg-out-');
      await glayerOk(A, 'export', `oci:${out}/a:t`, 'app');
      await glayerOk(B, 'export', `oci:${out}/b:t`, 'app');
      const ca = layoutConfig(join(out, 'a'), 't');
      const cb = layoutConfig(join(out, 'b'), 't');
      assert.equal(cb, ca);
      assert.equal(cb.config, CONFIG.config);
      assert.is(cb.architecture, 'arm64');
      assert.is(cb.variant, 'v8');
      fsck(gB);

      // A changes the config and pushes it alone (the stack is up to date); B's pull fast-forwards its config.
      await glayerOk(A, 'image-config', '--stack', 'app', '--set', 'env.X=1');
      const p2 = await glayerOk(A, 'push', 'origin', 'app');
      assert.match(p2.stdout, /image config\s+refs\/glayer\/config\/app/);
      assert.is(rev(remote.bare, CREF), rev(gA, CREF));
      const pl = await json<{ mode: string; config: string; warnings: string[] }>(B, 'pull');
      assert.is(pl.mode, 'up-to-date');
      assert.is(pl.config, 'fast-forward');
      assert.equal(pl.warnings, []);
      assert.is(rev(gB, CREF), rev(gA, CREF));
      assert.ok(((await json<{ config: { config: { Env: string[] } } }>(B, 'image-config')).config.config.Env).includes('X=1'));

      // Both change it: A pushes first; B's push sends nothing of the config, says so in one line, exits 0.
      await glayerOk(B, 'image-config', '--set', 'env.Y=2');
      await glayerOk(A, 'image-config', '--stack', 'app', '--set', 'env.Z=3');
      await glayerOk(A, 'push', 'origin', 'app');
      const aCfg = rev(gA, CREF);
      const bCfg = rev(gB, CREF);
      const rj = await glayer(B, 'push');
      assert.is(rj.code, 0, rj.stderr);
      const lines = rj.stderr.trim().split('\n');
      assert.is(lines.length, 1, rj.stderr);
      assert.match(lines[0], /image config of app was not pushed/);
      assert.match(lines[0], /--force/);
      assert.match(lines[0], /fetch/);
      assert.match(lines[0], /git log refs\/glayer\/remote-config\/origin\/app/);
      assert.is(rev(remote.bare, CREF), aCfg);
      const rjj = await json<{ config: string; warnings: string[] }>(B, 'push');
      assert.is(rjj.config, 'rejected');
      assert.is(rjj.warnings.length, 1);

      // B's pull keeps its diverged config, with one warning; the remote's is in the tracking ref.
      const pk = await glayer(B, 'pull');
      assert.is(pk.code, 0, pk.stderr);
      assert.is(pk.stderr.trim().split('\n').length, 1, pk.stderr);
      assert.match(pk.stderr, /image config of app .* diverged; kept the local one/);
      assert.is(rev(gB, CREF), bCfg);
      assert.is(rev(gB, TRACK), aCfg);

      // --force replaces it; A's fetch brings it into the tracking ref only, A's pull keeps A's (diverged).
      const pf = await json<{ config: string; warnings: string[] }>(B, 'push', '--force');
      assert.is(pf.config, 'sent');
      assert.equal(pf.warnings, []);
      assert.is(rev(remote.bare, CREF), bCfg);
      const fa = await json<{ configs: Array<{ ref: string; new: string }> }>(A, 'fetch');
      assert.equal(fa.configs.map((c) => [c.ref, c.new]), [[TRACK, bCfg]]);
      assert.is(rev(gA, TRACK), bCfg);
      assert.is(rev(gA, CREF), aCfg);
      assert.not.ok(git(gA, ['for-each-ref', '--format=%(refname)', 'refs/remotes/', 'refs/heads/', 'refs/tags/']).includes('config'));

      // The stack and its config gone from the remote: fetch --prune takes both tracking refs away.
      git(remote.bare, ['update-ref', '-d', 'refs/heads/app']);
      git(remote.bare, ['update-ref', '-d', CREF]);
      const pr = await json<{ pruned: string[]; configsPruned: string[] }>(A, 'fetch', '--prune');
      assert.equal(pr.pruned, ['refs/remotes/origin/app']);
      assert.equal(pr.configsPruned, [TRACK]);
      assert.not.ok(hasRef(gA, TRACK));
      assert.ok(hasRef(gA, CREF), 'the local config stays');

      for (const g of [remote.bare, gA, gB]) fsck(g);
    } finally {
      await remote.server?.close();
    }
  });
}

it('local: a bad config on the remote is refused with one line, and nothing local changes', async () => {
  const base = tmpdir();
  const remote = await makeRemote('local', base);
  await glayerOk(base, 'init', 'A', '--template', 'aufs-demo');
  const A = join(base, 'A');
  await glayerOk(A, 'remote', 'add', 'origin', remote.url);
  await glayerOk(A, 'push');
  // A config commit whose tree has no config.json.
  const tree = git(remote.bare, ['mktree'], '');
  const c = git(remote.bare, ['commit-tree', tree, '-m', 'not a config']);
  git(remote.bare, ['update-ref', 'refs/glayer/config/main', c]);
  await glayerOk(base, 'init', 'C');
  const C = join(base, 'C');
  const before = git(join(C, '.glayer'), ['for-each-ref']);
  await glayerOk(C, 'remote', 'add', 'origin', remote.url);
  const r = await glayer(C, 'fetch');
  assert.is(r.code, 2, r.stderr);
  assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /refusing refs\/glayer\/config\/main .*not an image config/);
  assert.is(git(join(C, '.glayer'), ['for-each-ref']), before);
  fsck(join(C, '.glayer'));
  fsck(remote.bare);
});

test.run();
