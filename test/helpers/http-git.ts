/**
 * A real git smart-HTTP server for tests: a small node http server on 127.0.0.1 that runs git's own CGI,
 * `git http-backend`, for every request (GIT_PROJECT_ROOT = `root`, every repository exported, pushes enabled).
 * Optionally it demands HTTP basic auth. It runs in the test's process, so talk to it asynchronously only
 * (glayer's API, or `gitAsync` below), never with execFileSync.
 */
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { GIT_ENV } from './git.js';

export const HTTP_BACKEND = '/usr/lib/git-core/git-http-backend';

export function hasHttpBackend(): boolean {
  return fs.existsSync(HTTP_BACKEND);
}

export interface GitHttpServer {
  /** `http://127.0.0.1:PORT` (https with `tls`) */
  base: string;
  /** The URL of repository `name` (a directory under root). */
  url(name: string): string;
  /** Requests seen (method and path), for assertions. */
  requests: string[];
  close(): Promise<void>;
}

export interface ServeOptions {
  /** Demand these credentials (HTTP basic auth) on every request. */
  auth?: { username: string; password: string };
  /** Serve https with this key and certificate (PEM). */
  tls?: { key: string; cert: string };
}

export async function serveGit(root: string, opts: ServeOptions = {}): Promise<GitHttpServer> {
  const requests: string[] = [];
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    requests.push(`${req.method} ${u.pathname}`);
    if (opts.auth) {
      const want = 'Basic ' + Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString('base64');
      if (req.headers.authorization !== want) {
        res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="glayer-test"', 'Content-Type': 'text/plain' });
        res.end('authentication required\n');
        return;
      }
    }
    const env: Record<string, string> = {
      ...(GIT_ENV as Record<string, string>),
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: '1',
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'http.receivepack',
      GIT_CONFIG_VALUE_0: 'true',
      REQUEST_METHOD: req.method ?? 'GET',
      PATH_INFO: decodeURIComponent(u.pathname),
      QUERY_STRING: u.search.replace(/^\?/, ''),
      CONTENT_TYPE: String(req.headers['content-type'] ?? ''),
      REMOTE_ADDR: '127.0.0.1',
      REMOTE_USER: opts.auth?.username ?? 'test',
      SERVER_PROTOCOL: 'HTTP/1.1',
      GATEWAY_INTERFACE: 'CGI/1.1',
    };
    if (req.headers['content-length']) env.CONTENT_LENGTH = String(req.headers['content-length']);
    if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = String(req.headers['content-encoding']);
    if (req.headers['git-protocol']) env.GIT_PROTOCOL = String(req.headers['git-protocol']);
    const cgi = spawn(HTTP_BACKEND, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    req.pipe(cgi.stdin);
    cgi.stdin.on('error', () => { /* backend closed early */ });
    let head = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (headersDone) { res.write(chunk); return; }
      head = Buffer.concat([head, chunk]);
      let sep = head.indexOf('\r\n\r\n');
      let sepLen = 4;
      if (sep < 0) { sep = head.indexOf('\n\n'); sepLen = 2; }
      if (sep < 0) return;
      headersDone = true;
      let status = 200;
      let statusText = 'OK';
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, sep).toString('latin1').split(/\r?\n/)) {
        const i = line.indexOf(':');
        if (i < 0) continue;
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === 'status') { status = Number(v.split(' ')[0]); statusText = v.split(' ').slice(1).join(' '); }
        else headers[k] = v;
      }
      res.writeHead(status, statusText, headers);
      res.write(head.subarray(sep + sepLen));
    });
    cgi.stdout.on('end', () => {
      if (!headersDone) { res.writeHead(500); }
      res.end();
    });
    cgi.on('error', () => { if (!res.headersSent) res.writeHead(500); res.end(); });
  };
  const server = opts.tls ? https.createServer(opts.tls, handler) : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const base = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  return {
    base,
    url: (name) => `${base}/${name}`,
    requests,
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); }),
  };
}

/** Native git, asynchronously (so the in-process server can answer it). Throws with stderr on failure. */
export function gitAsync(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('git', args, { cwd: opts.cwd, env: { ...GIT_ENV, GIT_TERMINAL_PROMPT: '0', ...opts.env }, maxBuffer: 1 << 28 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`git ${args.join(' ')} failed: ${stderr}`));
      else resolve(stdout.replace(/\n$/, ''));
    });
  });
}
