// `glayer serve` as a real process: each security refusal, the JSON API against the CLI's `--json` on the same
// store, and that serving (every endpoint, the writable layer's pending changes included) writes nothing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import { glayerOk } from '../helpers/cli.js';
import { fsck } from '../helpers/git.js';
import { apiGet, GLAYER_BIN, request, serveFixture, startServe, type Served, type ServeFixture } from '../helpers/serve.js';
import { snapshot, snapshotDiff } from '../helpers/snapshot.js';

let fx: ServeFixture;
let s: Served;

test.before(async () => {
  fx = await serveFixture();
  s = await startServe(fx.ws);
});
test.after(async () => { await s?.stop(); });

const auth = () => ({ Authorization: `Bearer ${s.token}` });
const CSP_RE = /default-src 'none'.*script-src 'self'.*style-src 'self'.*connect-src 'self'.*frame-ancestors 'none'/;

test('prints a URL on 127.0.0.1 with a 64-hex-digit token', () => {
  assert.match(s.openUrl, new RegExp(`^http://127\\.0\\.0\\.1:${s.port}/\\?token=[0-9a-f]{64}$`));
});

test('refused without the token, with a wrong one, and with a token of the wrong length', async () => {
  for (const [path, headers] of [
    ['/', {}],
    ['/app.js', {}],
    ['/api/info', {}],
    ['/api/file?layer=upper&path=etc/passwd', {}],
    ['/api/info', { Authorization: `Bearer ${'0'.repeat(64)}` }],
    ['/api/info', { Cookie: `glayer-token-${s.port}=${'f'.repeat(64)}` }],
    ['/api/info', { Authorization: 'Bearer abc' }],
    [`/api/info?token=${s.token.slice(1)}`, {}],
  ] as Array<[string, Record<string, string>]>) {
    const r = await request(s.port, path, { headers });
    assert.is(r.status, 401, `${path} ${JSON.stringify(headers)}`);
    assert.is(JSON.parse(r.body).error.code, 'E_TOKEN');
    assert.match(String(r.headers['content-security-policy']), CSP_RE);
    assert.not.match(r.body, /root:|Welcome/);
  }
});

test('the token in the URL becomes an HttpOnly SameSite=Strict cookie and leaves the address bar', async () => {
  const r = await request(s.port, `/?token=${s.token}`);
  assert.is(r.status, 303);
  assert.is(r.headers.location, '/');
  const cookie = String(r.headers['set-cookie']);
  assert.match(cookie, new RegExp(`^glayer-token-${s.port}=${s.token}; HttpOnly; SameSite=Strict; Path=/`));
  const page = await request(s.port, '/', { headers: { Cookie: cookie.split(';')[0] } });
  assert.is(page.status, 200);
  assert.match(page.body, /<script src="\/app.js"><\/script>/);
  const js = await request(s.port, '/app.js', { headers: { Cookie: cookie.split(';')[0] } });
  assert.is(js.status, 200);
  assert.match(String(js.headers['content-type']), /^text\/javascript/);
  // Nothing loads from elsewhere: no http(s) URL the page would fetch, no CDN.
  assert.not.match(page.body, /https?:\/\//);
});

test('a Host that is not the bound address or localhost is refused (DNS rebinding), even with the token', async () => {
  for (const host of ['evil.example', `evil.example:${s.port}`, `127.0.0.1.evil.example:${s.port}`, `localhost:${s.port + 1}`, `127.0.0.1:${s.port}.evil`, `[::2]:${s.port}`]) {
    const r = await request(s.port, '/api/info', { headers: { ...auth(), Host: host } });
    assert.is(r.status, 403, `Host: ${host}`);
    assert.is(JSON.parse(r.body).error.code, 'E_HOST');
    assert.match(String(r.headers['content-security-policy']), CSP_RE);
  }
  // No Host header at all (HTTP/1.0), over a raw socket.
  const raw = await new Promise<string>((resolve, reject) => {
    const sock = net.connect(s.port, '127.0.0.1', () => sock.end(`GET /api/info HTTP/1.0\r\nAuthorization: Bearer ${s.token}\r\n\r\n`));
    let got = '';
    sock.on('data', (d) => { got += d; });
    sock.on('end', () => resolve(got));
    sock.on('error', reject);
  });
  assert.match(raw, /^HTTP\/1\.1 403 /);
  for (const host of [`127.0.0.1:${s.port}`, `localhost:${s.port}`, `LOCALHOST:${s.port}`]) {
    const r = await request(s.port, '/api/info', { headers: { ...auth(), Host: host } });
    assert.is(r.status, 200, `Host: ${host}`);
  }
});

test('only GET and HEAD: every method that could write is refused', async () => {
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
    const r = await request(s.port, '/api/info', { method, headers: auth() });
    assert.is(r.status, 405, method);
    assert.is(r.headers.allow, 'GET, HEAD');
  }
  const head = await request(s.port, '/api/info', { method: 'HEAD', headers: auth() });
  assert.is(head.status, 200);
  assert.is(head.body, '');
});

test('paths are resolved in the layers, never on the file system: traversal and absolute paths are refused', async () => {
  const top = fx.layers[0];
  for (const p of ['../../../../etc/passwd', '/etc/passwd', 'etc/../../x', 'etc//passwd', './etc/passwd', 'etc/passwd\0', '..']) {
    for (const endpoint of [`file?layer=${top}`, `file?layer=upper`, `blame?layer=${top}`, `diff?layer=${top}`]) {
      const r = await request(s.port, `/api/${endpoint}&path=${encodeURIComponent(p)}`, { headers: auth() });
      assert.is(r.status, 400, `${endpoint} ${JSON.stringify(p)}: ${r.body}`);
      assert.is(JSON.parse(r.body).error.code, 'E_BAD_PATH');
    }
  }
  // A path the layers do not hold is not found, even where the file system has it (the workspace's own files).
  for (const p of ['.glayer/config', 'upper', 'view/etc/passwd', 'etc/hostname']) {
    const r = await request(s.port, `/api/file?layer=${top}&path=${encodeURIComponent(p)}`, { headers: auth() });
    assert.is(r.status, 404, p);
    assert.is(JSON.parse(r.body).error.code, 'E_NO_SUCH_PATH');
  }
});

test('a layer must be a layer of a stack or tag of this store', async () => {
  const blob = (await apiGet<{ oid: string }>(s, `/api/file?layer=${fx.layers[0]}&path=etc/passwd`)).oid;
  for (const id of [blob, '0'.repeat(40), fx.layers[0].slice(0, 12), 'HEAD', 'refs/heads/main', '../../HEAD']) {
    for (const endpoint of [`tree?layer=${encodeURIComponent(id)}`, `file?layer=${encodeURIComponent(id)}&path=etc/passwd`, `diff?layer=${encodeURIComponent(id)}`, `show?layer=${encodeURIComponent(id)}`]) {
      const r = await request(s.port, `/api/${endpoint}`, { headers: auth() });
      assert.is(r.status, 404, `${endpoint}: ${r.body}`);
      assert.is(JSON.parse(r.body).error.code, 'E_UNKNOWN_LAYER');
    }
  }
  const r = await request(s.port, '/api/nope', { headers: auth() });
  assert.is(r.status, 404);
});

test('serving writes nothing: every endpoint, pending changes, and a union no cache holds', async () => {
  const before = snapshot(fx.ws);
  const [top, mid, bottom] = fx.layers;
  const reads = ['info', 'stacks', 'tags', 'log', 'log?stack=other', 'log?stack=ext', 'status', 'tree?layer=upper', `tree?layer=${fx.extTop}`,
    `tree?layer=${top}`, `tree?layer=${bottom}`, 'file?layer=upper&path=etc/motd', `file?layer=${fx.extTop}&path=etc/ext.conf`,
    'diff?layer=upper', `diff?layer=${fx.extTop}`, `diff?from=${bottom}&to=${fx.extTop}`, `diff?from=${mid}&to=upper`, `show?layer=${fx.extTop}`,
    'blame?path=etc/motd', `blame?path=etc/ext.conf&layer=${fx.extTop}`];
  for (const r of reads) await apiGet(s, `/api/${r}`);
  const after = snapshot(fx.ws);
  assert.equal(after, before, snapshotDiff(before, after, ['before', 'after']));
  fsck(fx.gitdir);
});

test('the API answers what the CLI prints with --json', async () => {
  const cli = async (cmd: string, ...argv: string[]) => JSON.parse((await glayerOk(fx.ws, cmd, '--json', ...argv)).stdout);
  const [top, mid] = fx.layers;
  // status first through the API (it must see the view's unrecorded edit), then the CLI (which records it).
  const pending = await apiGet(s, '/api/status');
  assert.equal(pending, await cli('status'));
  assert.ok((pending as Array<{ path: string }>).some((c) => c.path === 'srv/www/new.html'));
  assert.equal(await apiGet(s, '/api/log'), await cli('log'));
  assert.equal(await apiGet(s, '/api/stacks'), await cli('stacks'));
  const d = await apiGet<{ files: unknown[]; count: number }>(s, `/api/diff?layer=${top}`);
  assert.equal(d.files, await cli('diff', 'HEAD'));
  assert.is(d.count, d.files.length);
  assert.equal((await apiGet<{ files: unknown[] }>(s, `/api/diff?from=${fx.layers[2]}&to=${top}`)).files, await cli('diff', 'HEAD~2', 'HEAD'));
  assert.equal((await apiGet<{ files: unknown[] }>(s, `/api/diff?from=${mid}&to=${top}&path=etc`)).files, await cli('diff', 'HEAD~1', 'HEAD', '--', 'etc'));
  assert.equal((await apiGet<{ files: unknown[] }>(s, '/api/diff?layer=upper')).files, await cli('diff'));
  assert.equal(await apiGet(s, `/api/show?layer=${mid}`), await cli('show', 'HEAD~1'));
  assert.equal(await apiGet(s, '/api/blame?path=etc/motd'), await cli('blame', 'etc/motd'));
  // Another stack's log: the CLI's log of that stack's layers.
  const other = await apiGet<Array<{ id: string }>>(s, '/api/log?stack=other');
  assert.equal(other, (await cli('log')).slice(1));
});

test('the tree of a layer marks what it added, changed, deleted and changed only in mode', async () => {
  const [top, mid] = fx.layers;
  const t = await apiGet<{ entries: Array<{ path: string; change: string | null; kind: string; size: number }>; below: string }>(s, `/api/tree?layer=${top}`);
  const at = (p: string, change?: string) => t.entries.find((e) => e.path === p && (change === undefined || e.change === change));
  assert.is(t.below, mid);
  assert.is(at('etc/motd')!.change, 'M');
  assert.is(at('srv/www/index.html')!.change, 'A');
  assert.is(at('srv')!.change, 'A');
  assert.is(at('etc/passwd')!.change, null);
  assert.is(at('srv/www')!.size, '<h1>hello</h1>\n'.length);
  const m = await apiGet<{ entries: Array<{ path: string; change: string | null }> }>(s, `/api/tree?layer=${mid}`);
  assert.is(m.entries.find((e) => e.path === 'etc/hostname')!.change, 'D');
  assert.is(m.entries.find((e) => e.path === 'etc/nginx/nginx.conf')!.change, 'C');
  // Walk order, deleted entries in their place.
  const paths = m.entries.map((e) => e.path.replaceAll('/', '\0'));
  assert.equal(paths, [...paths].sort());
  const f = await apiGet<{ binary: boolean; text: string | null }>(s, `/api/file?layer=${mid}&path=etc/blob.bin`);
  assert.is(f.binary, true);
  assert.is(f.text, null);
});

test('--host other than loopback warns that files are served to the network', async () => {
  const child = spawn(process.execPath, [GLAYER_BIN, 'serve', '-C', fx.ws, '--host', '0.0.0.0', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const deadline = Date.now() + 20_000;
  while (!/token=/.test(out) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  assert.match(err, /warning: serving on 0\.0\.0\.0: anyone who can reach this address/);
  assert.match(out, /token=[0-9a-f]{64}/);
});

test('--open hands the tokened URL to xdg-open, and that URL opens the page', async () => {
  // xdg-open is the desktop's; a stand-in on PATH records what glayer gave it (the browser's part is the
  // browser test's).
  const { tmpdir } = await import('../helpers/tmp.js');
  const fsm = await import('node:fs');
  const bin = tmpdir('glayer-open-');
  const got = `${bin}/url`;
  fsm.writeFileSync(`${bin}/xdg-open`, `#!/bin/sh\nprintf '%s' "$1" > ${got}.tmp && mv ${got}.tmp ${got}\n`, { mode: 0o755 });
  const child = spawn(process.execPath, [GLAYER_BIN, 'serve', '-C', fx.ws, '--port', '0', '--open'], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
  });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const deadline = Date.now() + 20_000;
  while (!fsm.existsSync(got) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  try {
    assert.ok(fsm.existsSync(got), `xdg-open was not run; stdout: ${out}`);
    const url = fsm.readFileSync(got, 'utf8');
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{64}$/);
    assert.ok(out.includes(url), 'the URL opened is the one printed');
    // As a browser does: the first visit trades the token for a cookie and a redirect; the page then loads with it.
    const first = await fetch(url, { redirect: 'manual' });
    assert.is(first.status, 303);
    const cookie = first.headers.get('set-cookie')!.split(';')[0];
    const page = await fetch(new URL(first.headers.get('location')!, url), { headers: { cookie } });
    assert.is(page.status, 200);
    assert.match(await page.text(), /<script/);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
});

test('a bad port is a one-line usage error', async () => {
  const { glayer } = await import('../helpers/cli.js');
  const r = await glayer(fx.ws, 'serve', '--port', '70000');
  assert.is(r.code, 2);
  assert.is(r.stderr, "glayer: --port takes a port number 0..65535, not '70000'\n");
});

test.run();
