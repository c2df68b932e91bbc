// The launcher (bin/glayer) starts node without NODE_EXTRA_CA_CERTS (node 20 parses that file on every start)
// and glayer trusts those certificates itself when it talks https. Checked against a real https git server
// (git http-backend behind node's https, a self-signed certificate made with openssl): a clone through the
// launcher works when NODE_EXTRA_CA_CERTS names the certificate, and fails in one line when nothing does.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { glayerOk } from '../helpers/cli.js';
import { fsck, hasGit } from '../helpers/git.js';
import { gitAsync, hasHttpBackend, serveGit } from '../helpers/http-git.js';
import { tmpdir } from '../helpers/tmp.js';
import { BIN } from '../hardening/spawn.js';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const skip = !hasGit() ? 'git is not installed' : !hasHttpBackend() ? 'git-http-backend is not installed' : !hasOpenssl ? 'openssl is not installed' : null;
if (skip) console.log(`skipping launcher https tests: ${skip}`);
const it = skip ? test.skip : test;

/** Every path below `dir` with its content (files) or target (symlinks). */
function listing(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort().map((p) => {
    const abs = join(dir, p);
    const st = fs.lstatSync(abs);
    return st.isSymbolicLink() ? `${p} -> ${fs.readlinkSync(abs)}` : st.isFile() ? `${p}: ${fs.readFileSync(abs, 'latin1')}` : `${p}/`;
  });
}

interface Ran { code: number | null; stdout: string; stderr: string }

/** The launcher as a user runs it, asynchronously (the server is in this process), with exactly `env`. */
function launch(cwd: string, args: string[], env: Record<string, string>): Promise<Ran> {
  const child = spawn(BIN, args, { cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: cwd, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

it('https clone through the launcher trusts NODE_EXTRA_CA_CERTS, and refuses an unknown certificate in one line', async () => {
  const base = tmpdir();
  const key = join(base, 'key.pem');
  const cert = join(base, 'cert.pem');
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'pipe' });
  assert.is(made.status, 0, made.stderr?.toString());
  // A stack to serve: the aufs demo template, as a bare repository.
  await glayerOk(base, 'init', 'src', '--template', 'aufs-demo');
  const root = join(base, 'served');
  fs.mkdirSync(root);
  await gitAsync(['clone', '-q', '--bare', join(base, 'src', '.glayer'), join(root, 'layers.git')]);
  const server = await serveGit(root, { tls: { key: fs.readFileSync(key, 'utf8'), cert: fs.readFileSync(cert, 'utf8') } });
  try {
    const url = server.url('layers.git');
    assert.ok(url.startsWith('https://'));
    const bad = await launch(base, ['clone', url, 'untrusted'], {});
    assert.is.not(bad.code, 0);
    const lines = bad.stderr.trim().split('\n');
    assert.is(lines.length, 1, bad.stderr);
    assert.match(lines[0], /certificate/i);
    assert.not.ok(fs.existsSync(join(base, 'untrusted', 'view')), 'nothing half-made');

    const good = await launch(base, ['clone', url, 'trusted'], { NODE_EXTRA_CA_CERTS: cert });
    assert.is(good.code, 0, good.stderr);
    await glayerOk(join(base, 'src'), 'mount-view');
    assert.equal(listing(join(base, 'trusted', 'view')), listing(join(base, 'src', 'view')));
    assert.ok(listing(join(base, 'src', 'view')).includes('test: test1\n'), 'the demo\'s file came through');
    fsck(join(base, 'trusted', '.glayer'));
  } finally {
    await server.close();
  }
});

it('the launcher runs glayer with NODE_EXTRA_CA_CERTS unset, and passes its value on', async () => {
  // The environment the shebang gives node, seen through the same shebang line on a probe script; then the
  // launcher itself starts with the variable set and prints no warning.
  const dir = tmpdir();
  const probe = join(dir, 'probe.mjs');
  fs.writeFileSync(probe, fs.readFileSync(BIN, 'utf8').split('\n')[0] + '\nconsole.log(JSON.stringify([process.env.NODE_EXTRA_CA_CERTS ?? null, process.env.GLAYER_EXTRA_CA_CERTS]));\n', { mode: 0o755 });
  const seen = spawnSync(probe, [], { env: { PATH: process.env.PATH, NODE_EXTRA_CA_CERTS: '/some/ca.pem' } });
  assert.equal(JSON.parse(seen.stdout.toString()), [null, '/some/ca.pem']);
  const v = await launch(dir, ['--version'], { NODE_EXTRA_CA_CERTS: '/some/ca.pem' });
  assert.is(v.code, 0, v.stderr);
  assert.match(v.stdout, /\d+\.\d+\.\d+/);
  assert.is(v.stderr, '');
});

test('the launcher compiles the bundle with the code cache the build made, and runs commands from it', async () => {
  // The cache is what makes start-up fast (README "Performance"); one V8 rejects costs only the compile, so
  // nothing but this says it went stale. A command that reads and writes a workspace checks the bundle itself.
  const dir = tmpdir();
  const report = (r: Ran): string => r.stderr.split('\n').find((l) => l.startsWith('glayer: code cache')) ?? r.stderr;
  const v = await launch(dir, ['--version'], { GLAYER_DEBUG_CODE_CACHE: '1' });
  assert.is(v.code, 0, v.stderr);
  assert.is(report(v), 'glayer: code cache accepted');
  const init = await launch(dir, ['init', 'ws', '--template', 'aufs-demo'], { GLAYER_DEBUG_CODE_CACHE: '1' });
  assert.is(init.code, 0, init.stderr);
  assert.is(report(init), 'glayer: code cache accepted');
  fs.writeFileSync(join(dir, 'ws', 'upper', 'new-file'), 'x\n');
  const st = await launch(join(dir, 'ws'), ['status'], {});
  assert.is(st.code, 0, st.stderr);
  assert.match(st.stdout, /A\s+new-file/);
  // A damaged cache (V8 would crash on it: it checks only versions, flags and the source's length) and one made
  // for another source of the same length are not used, and the command still runs.
  const copy = join(dir, 'copy');
  fs.mkdirSync(join(copy, 'bin'), { recursive: true });
  fs.mkdirSync(join(copy, 'dist'));
  fs.copyFileSync(BIN, join(copy, 'bin', 'glayer'));
  fs.symlinkSync(fileURLToPath(new URL('../../node_modules', import.meta.url)), join(copy, 'node_modules'));
  const source = fs.readFileSync(fileURLToPath(new URL('../../dist/glayer.cjs', import.meta.url)), 'latin1');
  const cache = fs.readFileSync(fileURLToPath(new URL('../../dist/glayer.cjs.cache', import.meta.url)));
  const run = (src: string, data: Buffer): string => {
    fs.writeFileSync(join(copy, 'dist', 'glayer.cjs'), src, 'latin1');
    fs.writeFileSync(join(copy, 'dist', 'glayer.cjs.cache'), data);
    const r = spawnSync(join(copy, 'bin', 'glayer'), ['--version'], { env: { PATH: process.env.PATH, GLAYER_DEBUG_CODE_CACHE: '1' }, encoding: 'utf8' });
    assert.is(r.status, 0, `${r.signal ?? ''} ${r.stderr}`);
    assert.match(r.stdout, /^\d+\.\d+\.\d+/);
    return report({ code: r.status, stdout: r.stdout, stderr: r.stderr });
  };
  assert.is(run(source, cache), 'glayer: code cache accepted', 'the copy itself works');
  const damaged = Buffer.from(cache);
  damaged.fill(7, 64, 4096);
  assert.is(run(source, damaged), 'glayer: code cache damaged');
  // The same length, another program: a cache V8 would take for it.
  const version = /"(\d+\.\d+\.)(\d+)"/.exec(source)!;
  const edited = source.replace(version[0], `"${version[1]}${(Number(version[2]) + 1) % 10}"`);
  assert.is(edited.length, source.length);
  assert.is(run(edited, cache), 'glayer: code cache damaged');
});

test.run();
