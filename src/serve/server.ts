/**
 * `glayer serve`: a read-only local web app over a workspace's store.
 *
 * Security, because it serves file contents:
 * - it binds 127.0.0.1 unless told otherwise (the CLI warns for any other address);
 * - every request needs the token printed with the URL: `?token=` once (answered with an HttpOnly, SameSite=Strict
 *   cookie and a redirect that drops it from the address bar), then the cookie; `Authorization: Bearer` works too;
 * - a Host header that is not the bound address, localhost or a loopback address (with the right port) is refused,
 *   so a DNS-rebinding page cannot talk to the server under its own name;
 * - only GET and HEAD exist, and no endpoint writes: the process sets `storeMode.readOnly` (unions are computed in
 *   memory) and the working state is worked out without writing (planSync), with no workspace lock;
 * - paths are looked up in the layers' trees (queries.ts, resolve.ts), never on the file system;
 * - every response has a strict Content-Security-Policy (no inline script or style, nothing from elsewhere),
 *   `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` and `X-Frame-Options: DENY`.
 *
 * The JSON API (GET, under /api/) returns the shapes of the CLI's `--json` where the CLI has the verb; see the
 * README's "glayer serve" section.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import * as fs from 'node:fs';
import { networkInterfaces } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { GlayerError } from '../errors.js';
import { storeMode } from '../store/store.js';
import { sharedReaders, Workspace } from '../workspace/workspace.js';
import { blame } from '../api/blame.js';
import { diff } from '../api/diff.js';
import { efficiency } from '../api/efficiency.js';
import { info } from '../api/info.js';
import { log } from '../api/log.js';
import { show } from '../api/show.js';
import { stacks } from '../api/stacks.js';
import { status } from '../api/status.js';
import { fileJson } from '../cli/diff-format.js';
import { checkPath, layerFile, layerName, layerTree, tags, UPPER } from './queries.js';
import { withWorkspace } from '../workspace/workspace.js';

export interface ServeOptions {
  /** A directory inside the workspace. */
  cwd: string;
  host?: string;
  /** 0: any free port. */
  port?: number;
  /** Fixed token (tests); default: 32 random bytes, hex. */
  token?: string;
}

export interface Serving {
  url: string;
  /** The URL with the token, to open. */
  openUrl: string;
  port: number;
  host: string;
  token: string;
  root: string;
  server: Server;
  close(): Promise<void>;
}

export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const ASSETS: Record<string, string> = {
  '/': 'index.html',
  '/app.js': 'app.js',
  '/app.css': 'app.css',
  '/favicon.svg': 'favicon.svg',
};
const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
};

/** The bundled page (scripts/bundle.mjs writes it to dist/web/), read once into memory. */
function loadAssets(): Map<string, Buffer> {
  const here = dirname(fileURLToPath(import.meta.url));
  const dirs = [join(here, 'web'), join(here, '..', 'web'), join(here, '..', '..', 'dist', 'web')];
  const dir = dirs.find((d) => fs.existsSync(join(d, 'index.html')));
  if (!dir) throw new GlayerError('E_NO_ASSETS', `the web page is not built (looked in ${dirs.join(', ')}); run 'npm run build'`);
  const out = new Map<string, Buffer>();
  for (const [route, file] of Object.entries(ASSETS)) {
    try { out.set(route, fs.readFileSync(join(dir, file))); } catch { /* optional asset */ }
  }
  return out;
}

/** Hosts a request may name: loopback names, the bound address and, for a wildcard bind, this machine's addresses. */
function allowedHosts(host: string): Set<string> {
  const s = new Set(['localhost', '127.0.0.1', '[::1]']);
  const bracket = (h: string): string => (h.includes(':') ? `[${h}]` : h);
  s.add(bracket(host).toLowerCase());
  if (host === '0.0.0.0' || host === '::') {
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) s.add(bracket(a.address).toLowerCase());
  }
  return s;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) { super(message); }
}

function statusOf(e: GlayerError): number {
  switch (e.code) {
    case 'E_UNKNOWN_LAYER': case 'E_NO_SUCH_PATH': return 404;
    case 'E_LOCKED': return 503;
    case 'E_OBJECT': case 'E_IO': return 500;
    default: return 400;
  }
}

export async function serve(opts: ServeOptions): Promise<Serving> {
  const root = Workspace.find(opts.cwd).root;
  storeMode.readOnly = true;
  sharedReaders.enabled = true;
  const assets = loadAssets();
  const host = opts.host ?? '127.0.0.1';
  const token = opts.token ?? randomBytes(32).toString('hex');
  const tokenBuf = Buffer.from(token);
  let port = opts.port ?? 0;
  const hosts = allowedHosts(host);
  const cookieName = () => `glayer-token-${port}`;

  const goodToken = (t: string | null | undefined): boolean => {
    if (!t) return false;
    const b = Buffer.from(t);
    return b.length === tokenBuf.length && timingSafeEqual(b, tokenBuf);
  };

  const api = apiRoutes(root);
  // Load what the first page asks for now, before the URL is printed, not on its first request: isomorphic-git
  // (the stacks' upstreams), the store's packs and trees, the current stack's log.
  await api.stacks(new URLSearchParams());
  await api.log(new URLSearchParams());

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    res.setHeader('Content-Security-Policy', CSP);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    res.setHeader('Cache-Control', 'no-store');
    // DNS rebinding: the Host must be one of ours, with our port.
    const hostHeader = (req.headers.host ?? '').toLowerCase();
    const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d+))?$/.exec(hostHeader);
    if (!m || !hosts.has(m[1]) || Number(m[2] ?? 80) !== port) {
      throw new HttpError(403, 'E_HOST', `refused: Host '${req.headers.host ?? ''}' is not this server's address (DNS rebinding protection)`);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      throw new HttpError(405, 'E_METHOD', `refused: ${req.method}: glayer serve is read-only (GET and HEAD only)`);
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    const queryToken = url.searchParams.get('token');
    const cookie = cookieValue(req.headers.cookie, cookieName());
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (goodToken(queryToken) && !url.pathname.startsWith('/api/')) {
      // First visit: keep the token in a cookie and drop it from the address bar (and from any deep link copied).
      url.searchParams.delete('token');
      res.setHeader('Set-Cookie', `${cookieName()}=${token}; HttpOnly; SameSite=Strict; Path=/`);
      res.writeHead(303, { Location: url.pathname + url.search });
      res.end();
      return;
    }
    if (!goodToken(cookie) && !goodToken(bearer) && !goodToken(queryToken)) {
      throw new HttpError(401, 'E_TOKEN', 'refused: this page needs the token that `glayer serve` printed (open the URL it printed, with ?token=...)');
    }
    if (url.pathname.startsWith('/api/')) {
      const route = api[url.pathname.slice(5)];
      if (!route) throw new HttpError(404, 'E_NOT_FOUND', `no such endpoint: ${url.pathname}`);
      const t0 = performance.now();
      const body = JSON.stringify(await route(url.searchParams));
      // How long the server took (the bench tells it apart from the page's own time).
      res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Server-Timing': `app;dur=${(performance.now() - t0).toFixed(1)}` });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    const asset = assets.get(url.pathname);
    if (!asset) throw new HttpError(404, 'E_NOT_FOUND', `not found: ${url.pathname}`);
    const ext = ASSETS[url.pathname].split('.').pop()!;
    res.writeHead(200, { 'Content-Type': TYPES[ext] ?? 'application/octet-stream' });
    res.end(req.method === 'HEAD' ? undefined : asset);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      let status = 500;
      let code = 'E_INTERNAL';
      let message: string;
      if (e instanceof HttpError) { status = e.status; code = e.code; message = e.message; }
      else if (e instanceof GlayerError) { status = statusOf(e); code = e.code; message = e.message.split('\n')[0]; }
      else message = `internal error: ${(e as Error)?.message ?? String(e)} (this is a bug in glayer; please report it)`;
      if (!res.headersSent) res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify({ error: { code, message } }) + '\n');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
  const addr = server.address();
  port = typeof addr === 'object' && addr ? addr.port : port;
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const base = `http://${shown}:${port}/`;
  return {
    url: base,
    openUrl: `${base}?token=${token}`,
    port,
    host,
    token,
    root,
    server,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); }),
  };
}

function cookieValue(header: string | undefined, name: string): string | null {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return null;
}

type Route = (q: URLSearchParams) => Promise<unknown>;

/** A query parameter that must be there. */
function need(q: URLSearchParams, name: string): string {
  const v = q.get(name);
  if (v === null || v === '') throw new HttpError(400, 'E_USAGE', `missing query parameter '${name}'`);
  return v;
}

/** The layer name resolve.ts accepts for an id given in a request ('upper' stays as it is). */
function nameOf(root: string, id: string): Promise<string> {
  return withWorkspace(root, (ws) => layerName(ws.store, id), { lock: false });
}

function pathsOf(q: URLSearchParams): string[] {
  const p = q.get('path');
  if (p === null || p === '') return [];
  checkPath(p);
  return [p];
}

/** The JSON API: every endpoint reads; see the README for the shapes. */
export function apiRoutes(root: string): Record<string, Route> {
  const cwd = root;
  // A stack's log depends only on its top layer (layers are immutable): kept per top, for the page's many asks.
  const logs = new Map<string, unknown>();
  // The same for a layer's tree (a few of them: 20,000 entries are about 1.4 MB of JSON each).
  const trees = new Map<string, unknown>();
  return {
    info: async () => info({ cwd }),
    stacks: async () => stacks({ cwd }),
    tags: async () => tags(root),
    /** `glayer log --json` of a stack (default: the current one). */
    log: async (q) => {
      const stack = q.get('stack');
      const all = await stacks({ cwd });
      const known = stack === null || stack === '' ? all.find((s) => s.current) : all.find((s) => s.name === stack);
      if (!known) {
        if (!stack) return [];
        throw new HttpError(404, 'E_UNKNOWN_STACK', `no stack named '${stack}'`);
      }
      let r = logs.get(known.top);
      if (r === undefined) {
        r = await log({ cwd, from: known.ref });
        if (logs.size >= 64) logs.clear();
        logs.set(known.top, r);
      }
      return r;
    },
    /** `glayer status --json`, worked out without writing. */
    status: async () => (await status({ cwd, readOnly: true })).changes,
    tree: async (q) => {
      const layer = need(q, 'layer');
      if (layer === UPPER) return layerTree(root, layer);
      let r = trees.get(layer);
      if (r === undefined) {
        r = await layerTree(root, layer);
        if (trees.size >= 8) trees.delete(trees.keys().next().value!);
        trees.set(layer, r);
      }
      return r;
    },
    file: async (q) => layerFile(root, need(q, 'layer'), need(q, 'path')),
    /**
     * `glayer diff --json` with its ends: {from, to, count, files}. `layer=ID`: what the layer changed (`upper`:
     * the writable layer against the stack); `from=ID&to=ID`: two unions. `path` limits it; `content=0` leaves
     * out the hunks (a file list).
     */
    diff: async (q) => {
      const paths = pathsOf(q);
      const content = q.get('content') !== '0';
      const layer = q.get('layer');
      let r;
      if (layer === UPPER) r = await diff({ cwd, paths, content, readOnly: true });
      else if (layer) r = await diff({ cwd, from: await nameOf(root, layer), paths, content, readOnly: true });
      else {
        const from = need(q, 'from');
        const to = need(q, 'to');
        if (to === UPPER) r = await diff({ cwd, from: await nameOf(root, from), view: true, paths, content, readOnly: true });
        else r = await diff({ cwd, from: await nameOf(root, from), to: await nameOf(root, to), paths, content, readOnly: true });
      }
      return { from: r.from, to: r.to, count: r.count, files: r.files.map(fileJson) };
    },
    /** `glayer show --json`: the layer's fields and its files (`content=0`: without hunks). */
    show: async (q) => {
      const r = await show({ cwd, layer: await nameOf(root, need(q, 'layer')), paths: pathsOf(q), content: q.get('content') !== '0' });
      return { ...r.layer, message: r.layer.message.replace(/\n+$/, ''), files: r.files.map(fileJson) };
    },
    /** `glayer efficiency --json` of a stack (dive's wasted-space figures), its `limit` (default 10) top offenders. */
    efficiency: async (q) => {
      const stack = q.get('stack');
      const all = await stacks({ cwd });
      const known = stack === null || stack === '' ? all.find((s) => s.current) : all.find((s) => s.name === stack);
      if (!known) throw new HttpError(404, 'E_UNKNOWN_STACK', `no stack named '${stack ?? ''}'`);
      const limit = Number(q.get('limit') ?? 10);
      if (!Number.isInteger(limit) || limit < 0 || limit > 10_000) throw new HttpError(400, 'E_BAD_QUERY', 'limit must be a whole number up to 10000');
      return efficiency({ cwd, layer: known.ref, limit });
    },
    /** `glayer blame --json PATH`, from the given layer down (default: the current stack's top). */
    blame: async (q) => {
      const path = need(q, 'path');
      checkPath(path);
      const layer = q.get('layer');
      return blame({ cwd, path, layer: layer && layer !== UPPER ? await nameOf(root, layer) : undefined });
    },
  };
}
