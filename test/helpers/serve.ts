/** Start `glayer serve` as a real process on a free port, and Debian's chromium through playwright-core. */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as http from 'node:http';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const GLAYER_BIN = join(ROOT, 'bin', 'glayer');

export interface Served { url: string; openUrl: string; port: number; token: string; child: ChildProcess; stop(): Promise<void> }

/** `glayer serve -C ws --port 0 --json ...args`; resolves when it printed its URL. */
export function startServe(ws: string, args: string[] = []): Promise<Served> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [GLAYER_BIN, 'serve', '-C', ws, '--port', '0', '--json', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr!.on('data', (d) => { err += d; });
    child.stdout!.on('data', (d) => {
      out += d;
      try {
        const j = JSON.parse(out) as { url: string; port: number };
        const token = new URL(j.url).searchParams.get('token')!;
        resolve({
          url: `http://127.0.0.1:${j.port}/`, openUrl: j.url, port: j.port, token, child,
          stop: () => new Promise<void>((r) => { if (child.exitCode !== null) return r(); child.once('exit', () => r()); child.kill('SIGTERM'); }),
        });
      } catch { /* not all of it yet */ }
    });
    child.on('exit', (code) => reject(new Error(`glayer serve exited ${code}: ${err}`)));
  });
}

export interface Reply { status: number; headers: http.IncomingHttpHeaders; body: string }

/** A raw GET (any method, any Host header) against 127.0.0.1:port. */
export function request(port: number, path: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: { Host: `127.0.0.1:${port}`, ...opts.headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** GET an API endpoint with the token; the parsed JSON. */
export async function apiGet<T = unknown>(s: Served, path: string): Promise<T> {
  const r = await request(s.port, path, { headers: { Authorization: `Bearer ${s.token}` } });
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${r.body}`);
  return JSON.parse(r.body) as T;
}

export function chromiumPath(): string | null {
  try { return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim() || null; } catch { return null; }
}

/** Debian's chromium, headless (playwright gives each launch a new empty profile directory of its own). */
export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error('chromium is not installed (.ci/run installs it: apt-get install chromium)');
  return chromium.launch({
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

export interface ServeFixture { ws: string; gitdir: string; view: string; layers: string[]; otherTop: string; extTop: string }

/**
 * A workspace to browse: the `etc` template, then layers that add, change, delete (a whiteout) and change only a
 * mode; a second stack `other` and a tag `v1.0` on the layer below the top; a binary file; and an edit in the view
 * that no command has recorded yet (the writable layer's pending change, which serve must show without writing).
 */
export async function serveFixture(): Promise<ServeFixture> {
  const { glayerOk } = await import('./cli.js');
  const fs = await import('node:fs');
  const { git, mktree, commitTree } = await import('./git.js');
  const { tmpdir } = await import('./tmp.js');
  const base = tmpdir('glayer-serve-');
  const ws = join(base, 'ws');
  await glayerOk(base, 'init', ws, '--template', 'etc');
  await glayerOk(ws, 'mount-view');
  const view = join(ws, 'view');
  fs.appendFileSync(join(view, 'etc/nginx/nginx.conf'), 'worker_processes 4;\n');
  fs.writeFileSync(join(view, 'etc/motd'), 'Welcome to glayer\nsecond line\n');
  fs.rmSync(join(view, 'etc/hostname'));
  fs.writeFileSync(join(view, 'etc/blob.bin'), Buffer.from([0, 1, 2, 3, 255, 0, 7]));
  await glayerOk(ws, 'commit', '-m', 'nginx: 4 workers; motd; no hostname');
  fs.chmodSync(join(view, 'etc/motd'), 0o755);
  fs.mkdirSync(join(view, 'srv/www'), { recursive: true });
  fs.writeFileSync(join(view, 'srv/www/index.html'), '<h1>hello</h1>\n');
  fs.writeFileSync(join(view, 'etc/motd.d'), 'x\n');
  await glayerOk(ws, 'commit', '-m', 'web root; motd executable');
  const gitdir = join(ws, '.glayer');
  git(gitdir, ['branch', 'other', 'HEAD~1']);
  git(gitdir, ['tag', 'v1.0', 'HEAD~1']);
  // A stack `ext` with a layer written by plain git: its union is in no cache, so reading it must compute it.
  const extTree = mktree(gitdir, [{ mode: '040000', name: 'etc', entries: [{ mode: '100644', name: 'ext.conf', content: 'from git\n' }, { mode: '100644', name: '.wh.passwd', content: '' }] }]);
  const extTop = commitTree(gitdir, extTree, git(gitdir, ['rev-parse', 'HEAD']), 'a layer made by git');
  git(gitdir, ['update-ref', 'refs/heads/ext', extTop]);
  // Pending: edited in the view, not recorded in the writable layer by any command yet.
  fs.appendFileSync(join(view, 'etc/motd'), 'pending line\n');
  fs.writeFileSync(join(view, 'srv/www/new.html'), 'new\n');
  const layers = git(gitdir, ['rev-list', '--first-parent', 'HEAD']).trim().split('\n');
  return { ws, gitdir, view, layers, otherTop: layers[1], extTop };
}
