/**
 * git's smart-HTTP protocol (v0/v1, stateless RPC), on node's http and https modules, in bounded memory.
 *
 * - Discovery: GET URL/info/refs?service=git-upload-pack (or git-receive-pack), a pkt-line advertisement of the
 *   refs and the server's capabilities.
 * - Fetch: one POST to URL/git-upload-pack with our wants, haves (the tips of our refs) and `done`; the pack
 *   comes back in side-band 1 and is streamed to a temporary file in objects/pack, hashed as it comes; band 2 is
 *   progress, band 3 an error. The file is then indexed from disk (pack-index.ts) and moved into place.
 * - Push: one POST to URL/git-receive-pack with the ref updates and a pack streamed from a file built with the
 *   store's PackWriter (objects reachable from the pushed commit that the remote's refs do not reach, compared
 *   tree by tree with each commit's parents); report-status tells what the remote did.
 *
 * Credentials: none at first; a 401 is answered with Basic auth from the CredentialSource (the URL, the
 * environment, git's credential helpers), once. Redirects of the discovery request are followed (up to 5), and
 * the repository's URL becomes the redirect's, as git does (http.followRedirects=initial).
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { randomBytes, createHash } from 'node:crypto';
import { join } from 'node:path';
import * as fs from '../sys/fs.js';
import { onAbort } from '../sys/abort.js';
import { GlayerError, ObjectError } from '../errors.js';
import { LARGE_BLOB, ObjectStore, PackWriter, parseTree } from './objects.js';
import { parseCommit } from './commits.js';
import { indexPackFile } from './pack-index.js';
import { AuthError, RemoteError, type CredentialSource } from './remote.js';
import type { TreeEntry } from '../core/tree.js';

const AGENT = 'glayer/0.1';
const ZERO = '0'.repeat(40);

export type Progress = (p: { phase: string; done: number; total: number }) => void;

/** A request body: `prefix`, then (when given) the whole of `file`, `size` bytes in all. */
interface Body { prefix: Buffer; file?: string; size: number; onSent?: (bytes: number) => void }

/** What a server advertised: its refs as listed (peeled tags as NAME^{}), capabilities and symbolic refs. */
export interface Advertisement {
  refs: Map<string, string>;
  caps: Set<string>;
  symrefs: Map<string, string>;
}

// ---- pkt-lines --------------------------------------------------------------------------------------------

export function pkt(data: string | Buffer): Buffer {
  const b = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return Buffer.concat([Buffer.from((b.length + 4).toString(16).padStart(4, '0'), 'latin1'), b]);
}

const FLUSH = Buffer.from('0000', 'latin1');

/** Split a buffer of pkt-lines: each line's payload, null for a flush. Throws on a malformed length. */
export function parsePkts(buf: Buffer, what: string): Array<Buffer | null> {
  const out: Array<Buffer | null> = [];
  let p = 0;
  while (p < buf.length) {
    const len = pktLength(buf, p);
    if (len < 0 || p + Math.max(len, 4) > buf.length) throw new Error(`malformed ${what} (bad pkt-line)`);
    if (len === 0 || len === 1 || len === 2) { out.push(null); p += 4; continue; }
    out.push(buf.subarray(p + 4, p + len));
    p += len;
  }
  return out;
}

function pktLength(buf: Buffer, p: number): number {
  if (p + 4 > buf.length) return -1;
  const s = buf.toString('latin1', p, p + 4);
  if (!/^[0-9a-f]{4}$/i.test(s)) return -1;
  const len = parseInt(s, 16);
  return len > 0 && len < 4 && len !== 1 && len !== 2 ? -1 : len;
}

const text = (b: Buffer): string => b.toString('utf8').replace(/\n$/, '');

// ---- the session ------------------------------------------------------------------------------------------

/** One remote repository over http(s): its URL (redirects may move it) and the credentials that worked. */
export class SmartHttp {
  private auth: string | null = null;
  private approved = false;

  /** `url`: the repository's URL without credentials; `shown`: the URL as the user gave it (for messages). */
  constructor(private base: string, private readonly shown: string, private readonly cs: CredentialSource) {
    this.base = base.replace(/\/+$/, '');
  }

  private error(message: string, data?: Record<string, unknown>): RemoteError {
    return new RemoteError(this.shown, message, data);
  }

  private send(url: string, method: string, headers: Record<string, string>, body: Body | null): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const u = new URL(url);
      const mod = u.protocol === 'https:' ? https : http;
      const h: Record<string, string> = { 'User-Agent': `git/2.0 (${AGENT})`, Pragma: 'no-cache', ...headers };
      if (this.auth) h.Authorization = this.auth;
      if (body) h['Content-Length'] = String(body.size);
      const req = mod.request(u, { method, headers: h }, resolve);
      req.on('error', reject);
      if (!body) { req.end(); return; }
      if (!body.file) { req.end(body.prefix); return; }
      req.write(body.prefix);
      const input = fs.createReadStream(body.file, { highWaterMark: 1 << 20 });
      input.on('error', (e) => req.destroy(e));
      if (body.onSent) { let sent = 0; const cb = body.onSent; input.on('data', (c) => { sent += c.length; cb(sent); }); }
      input.pipe(req);
    });
  }

  /** A request that answered 2xx with `type`; redirects (GET), 401 (credentials) and errors handled. */
  async request(path: string, method: 'GET' | 'POST', headers: Record<string, string>, body: Body | null, type: string): Promise<http.IncomingMessage> {
    let url = this.base + path;
    let redirects = 0;
    for (;;) {
      let res: http.IncomingMessage;
      try { res = await this.send(url, method, headers, body); } catch (e) { throw this.netError(e); }
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && status !== 304 && res.headers.location && method === 'GET') {
        res.resume();
        if (++redirects > 5) throw this.error('too many redirects');
        const next = new URL(res.headers.location, url);
        if (next.protocol !== 'http:' && next.protocol !== 'https:') throw this.error(`redirected to an unsupported URL (${next.protocol})`);
        next.username = '';
        next.password = '';
        const s = next.toString();
        // As git does: the repository is where the redirect of the first request leads.
        if (s.endsWith(path)) this.base = s.slice(0, s.length - path.length);
        url = s;
        continue;
      }
      if (status === 401) {
        res.resume();
        if (this.auth) { await this.cs.failed(); throw new AuthError(this.shown, true, this.cs.source); }
        const c = await this.cs.fill();
        if (!c) throw new AuthError(this.shown, false, this.cs.source);
        this.auth = 'Basic ' + Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64');
        continue;
      }
      if (status === 403) {
        res.resume();
        if (this.auth) await this.cs.failed();
        throw new AuthError(this.shown, this.cs.rejected || this.auth !== null, this.cs.source);
      }
      if (status === 404) { res.resume(); throw this.error('repository not found (HTTP 404)', { status }); }
      if (status < 200 || status >= 300) { res.resume(); throw this.error(`HTTP ${status} ${res.statusMessage ?? ''}`.trim(), { status }); }
      if (this.auth && !this.approved) { this.approved = true; await this.cs.succeeded(); }
      const got = String(res.headers['content-type'] ?? '').split(';')[0].trim();
      if (got !== type) {
        res.resume();
        throw this.error('not a git repository (the server did not answer as a git smart-HTTP server)');
      }
      return res;
    }
  }

  /** Node's errors (connection, TLS) as one line. */
  netError(e: unknown): GlayerError {
    if (e instanceof GlayerError) return e;
    const err = e as NodeJS.ErrnoException;
    if (err.code && /^E[A-Z]+$/.test(err.code)) return this.error(`cannot connect (${err.code})`, { errno: err.code });
    return this.error(String(err.message ?? e).split('\n')[0]);
  }

  // ---- discovery ----------------------------------------------------------------------------------------

  async discover(service: 'git-upload-pack' | 'git-receive-pack'): Promise<Advertisement> {
    const res = await this.request(`/info/refs?service=${service}`, 'GET', { Accept: '*/*' }, null, `application/x-${service}-advertisement`);
    const chunks: Buffer[] = [];
    try { for await (const c of res) chunks.push(c as Buffer); } catch (e) { throw this.netError(e); }
    let lines: Array<Buffer | null>;
    try { lines = parsePkts(Buffer.concat(chunks), 'advertisement'); } catch (e) { throw this.error((e as Error).message); }
    let k = 0;
    const first = lines[k];
    if (!first || !text(first).startsWith(`# service=${service}`)) throw this.error('not a git repository (the server did not answer as a git smart-HTTP server)');
    k++;
    while (k < lines.length && lines[k] === null) k++;
    const adv: Advertisement = { refs: new Map(), caps: new Set(), symrefs: new Map() };
    for (let firstRef = true; k < lines.length; k++) {
      const line = lines[k];
      if (line === null) break;
      const s = line.toString('latin1');
      if (s.startsWith('ERR ')) throw this.error(`the remote says: ${text(line.subarray(4))}`);
      if (s.startsWith('version ')) { if (s.trim() !== 'version 1') throw this.error(`unsupported protocol (${s.trim()})`); continue; }
      const nul = s.indexOf('\0');
      const refPart = (nul < 0 ? s : s.slice(0, nul)).replace(/\n$/, '');
      if (firstRef && nul >= 0) {
        for (const cap of s.slice(nul + 1).replace(/\n$/, '').split(' ')) {
          if (!cap) continue;
          adv.caps.add(cap.replace(/=.*$/, ''));
          const m = /^symref=([^:]+):(.+)$/.exec(cap);
          if (m) adv.symrefs.set(m[1], m[2]);
        }
      }
      firstRef = false;
      const m = /^([0-9a-f]{40}) (.+)$/.exec(refPart);
      if (!m) throw this.error('malformed advertisement (bad ref line)');
      if (m[2] === 'capabilities^{}') continue;
      adv.refs.set(m[2], m[1]);
    }
    return adv;
  }

  // ---- fetch --------------------------------------------------------------------------------------------

  /**
   * Ask for `wants` (object ids), telling the server we have `haves`, and store the pack it sends in
   * `gitdir`/objects/pack (indexed, synced, renamed into place). Returns the pack's name, or null when the
   * server had nothing to send.
   */
  async fetchPack(gitdir: string, adv: Advertisement, wants: string[], haves: string[], onProgress?: Progress): Promise<string | null> {
    const caps = adv.caps;
    const band = caps.has('side-band-64k') ? 'side-band-64k' : caps.has('side-band') ? 'side-band' : null;
    const ask = [band, caps.has('ofs-delta') ? 'ofs-delta' : null, !onProgress && caps.has('no-progress') ? 'no-progress' : null, caps.has('agent') ? `agent=${AGENT}` : null]
      .filter((c): c is string => c !== null);
    const parts: Buffer[] = [];
    wants.forEach((w, k) => parts.push(pkt(k === 0 ? `want ${w} ${ask.join(' ')}\n` : `want ${w}\n`)));
    parts.push(FLUSH);
    for (const h of haves) parts.push(pkt(`have ${h}\n`));
    parts.push(pkt('done\n'));
    const prefix = Buffer.concat(parts);
    const res = await this.request('/git-upload-pack', 'POST', {
      'Content-Type': 'application/x-git-upload-pack-request', Accept: 'application/x-git-upload-pack-result',
    }, { prefix, size: prefix.length }, 'application/x-git-upload-pack-result');

    const packDir = join(gitdir, 'objects', 'pack');
    fs.mkdirSync(packDir, { recursive: true });
    const tmp = join(packDir, `tmp_pack_${process.pid}_${randomBytes(6).toString('hex')}`);
    const fd = fs.openSync(tmp, 'wx');
    let fdOpen = true;
    const dropAbort = onAbort(() => { fs.rmSync(tmp, { force: true }); fs.rmSync(`${tmp}.idx`, { force: true }); });
    try {
      const hash = createHash('sha1');
      let tail = Buffer.alloc(0); // the last 20 bytes seen: the checksum, once the pack ends
      let written = 0;
      let lastReport = 0;
      let diskError: unknown = null; // an error of our file (disk full...), not of the connection
      const packBytes = (b: Buffer): void => {
        try {
          for (let w = 0; w < b.length;) w += fs.writeSync(fd, b, w, b.length - w, written + w);
        } catch (e) { diskError = e; throw e; }
        written += b.length;
        if (b.length >= 20) {
          hash.update(tail);
          hash.update(b.subarray(0, b.length - 20));
          tail = Buffer.from(b.subarray(b.length - 20));
        } else {
          const both = Buffer.concat([tail, b]);
          hash.update(both.subarray(0, both.length - 20 < 0 ? 0 : both.length - 20));
          tail = both.subarray(Math.max(0, both.length - 20));
        }
        if (onProgress && written - lastReport >= 1 << 20) { lastReport = written; onProgress({ phase: 'Receiving pack (MiB)', done: Math.floor(written / (1 << 20)), total: 0 }); }
      };
      const progressText = progressParser(onProgress);
      let pending = Buffer.alloc(0);
      let inPack = false; // past ACK/NAK
      let ended = false; // the final flush
      try {
        for await (const chunk of res) {
          if (ended) continue;
          const buf = pending.length ? Buffer.concat([pending, chunk as Buffer]) : (chunk as Buffer);
          let p = 0;
          if (inPack && band === null) { packBytes(buf); pending = Buffer.alloc(0); continue; }
          while (p < buf.length) {
            const len = pktLength(buf, p);
            if ((len === -1 && buf.length - p >= 4) || len === 1 || len === 2) throw this.error('malformed response (bad pkt-line)');
            if (len === -1 || buf.length - p < Math.max(len, 4)) break;
            if (len === 0) { p += 4; if (inPack) { ended = true; break; } continue; }
            const payload = buf.subarray(p + 4, p + len);
            p += len;
            if (!inPack) {
              const s = payload.toString('latin1');
              if (s.startsWith('ACK ') || s.startsWith('NAK') || s.startsWith('shallow ') || s.startsWith('unshallow ')) {
                // Without multi_ack, one ACK (the first common object) or a NAK, then the pack.
                if (s.startsWith('NAK') || (s.startsWith('ACK ') && !/ (continue|common|ready)/.test(s))) inPack = true;
                if (band === null && inPack) { packBytes(buf.subarray(p)); p = buf.length; }
                continue;
              }
              if (s.startsWith('ERR ')) throw this.error(`the remote says: ${text(payload.subarray(4))}`);
              if (band === null) throw this.error('malformed response (no ACK or NAK)');
              inPack = true;
            }
            const b = payload[0];
            if (b === 1) packBytes(payload.subarray(1));
            else if (b === 2) progressText(payload.subarray(1));
            else if (b === 3) throw this.error(`the remote failed: ${text(payload.subarray(1)).replace(/\s+/g, ' ').trim()}`);
            else throw this.error(`malformed response (side-band ${b})`);
          }
          pending = p < buf.length ? Buffer.from(buf.subarray(p)) : Buffer.alloc(0);
        }
      } catch (e) {
        if (e instanceof GlayerError || e === diskError) throw e;
        throw this.error(`the connection failed while receiving the pack (${written} bytes received): ${(e as Error).message.split('\n')[0]}`);
      }
      if (band !== null && !ended) throw this.error(`the connection closed before the pack was complete (${written} bytes received)`);
      if (written < 32) throw this.error(`the connection closed before the pack was complete (${written} bytes received)`);
      if (!hash.digest().equals(tail)) throw this.error(`the pack received is corrupt or incomplete (${written} bytes, checksum mismatch)`);
      if (onProgress && lastReport > 0) onProgress({ phase: 'Receiving pack (MiB)', done: Math.ceil(written / (1 << 20)), total: Math.ceil(written / (1 << 20)) });
      fs.fsyncSync(fd);
      fdOpen = false;
      fs.closeSync(fd);
      const indexed = await indexPackFile(packDir, tmp, onProgress && ((phase, done, total) => onProgress({ phase, done, total })));
      return indexed;
    } catch (e) {
      if (e instanceof ObjectError) throw this.error(`sent a bad pack: ${e.message}`);
      throw e;
    } finally {
      if (fdOpen) { try { fs.closeSync(fd); } catch { /* released all the same */ } }
      fs.rmSync(tmp, { force: true });
      dropAbort();
    }
  }

  // ---- push ---------------------------------------------------------------------------------------------

  /**
   * Send ref updates (`old` -> `oid` for each `ref`; receive-pack takes several commands in one request) with the
   * pack in `pack` and read the remote's report. Returns, for each ref, null when the remote took it, else its
   * reason.
   */
  async sendPack(adv: Advertisement, cmds: Array<{ ref: string; old: string; oid: string }>, pack: { path: string; size: number }, onProgress?: Progress): Promise<Map<string, string | null>> {
    const caps = adv.caps;
    const band = caps.has('side-band-64k') ? 'side-band-64k' : caps.has('side-band') ? 'side-band' : null;
    if (!caps.has('report-status')) throw this.error('the remote does not report the status of a push (no report-status)');
    const ask = ['report-status', band, caps.has('agent') ? `agent=${AGENT}` : null].filter((c): c is string => c !== null);
    const prefix = Buffer.concat([
      ...cmds.map((c, k) => pkt(Buffer.from(k === 0 ? `${c.old} ${c.oid} ${c.ref}\0${ask.join(' ')}` : `${c.old} ${c.oid} ${c.ref}\n`, 'utf8'))),
      FLUSH,
    ]);
    const mib = Math.ceil(pack.size / (1 << 20));
    const onSent = onProgress && ((n: number) => onProgress({ phase: 'Sending pack (MiB)', done: Math.min(mib, Math.ceil(n / (1 << 20))), total: mib }));
    const res = await this.request('/git-receive-pack', 'POST', {
      'Content-Type': 'application/x-git-receive-pack-request', Accept: 'application/x-git-receive-pack-result',
    }, { prefix, file: pack.path, size: prefix.length + pack.size, onSent }, 'application/x-git-receive-pack-result');
    const chunks: Buffer[] = [];
    try { for await (const c of res) chunks.push(c as Buffer); } catch (e) { throw this.netError(e); }
    let report: Buffer;
    try {
      const lines = parsePkts(Buffer.concat(chunks), 'push report');
      if (band === null) report = Buffer.concat(lines.map((l) => (l === null ? FLUSH : pkt(l))));
      else {
        const progressText = progressParser(onProgress);
        const parts: Buffer[] = [];
        for (const l of lines) {
          if (l === null || l.length === 0) continue;
          if (l[0] === 1) parts.push(l.subarray(1));
          else if (l[0] === 2) progressText(l.subarray(1));
          else if (l[0] === 3) throw this.error(`the remote failed: ${text(l.subarray(1)).replace(/\s+/g, ' ').trim()}`);
          else throw new Error('malformed push report (side-band)');
        }
        report = Buffer.concat(parts);
      }
    } catch (e) {
      if (e instanceof GlayerError) throw e;
      throw this.error((e as Error).message);
    }
    let unpack: string | null = null;
    const status = new Map<string, string | null>();
    try {
      for (const l of parsePkts(report, 'push report')) {
        if (l === null) continue;
        const s = text(l);
        if (s.startsWith('unpack ')) { unpack = s.slice(7); continue; }
        for (const { ref } of cmds) {
          if (s === `ok ${ref}`) status.set(ref, null);
          else if (s.startsWith(`ng ${ref} `)) status.set(ref, s.slice(ref.length + 4));
        }
      }
    } catch (e) { throw this.error((e as Error).message); }
    if (unpack === null) throw this.error('the remote sent no report of the push');
    if (unpack !== 'ok') throw this.error(`the remote could not store the objects sent (unpack ${unpack})`);
    for (const { ref } of cmds) if (!status.has(ref)) throw this.error(`the remote did not report on ${ref}`);
    return status;
  }
}

/** Side-band 2 messages to progress callbacks ("Counting objects:  50% (1/2)"). */
function progressParser(onProgress?: Progress): (b: Buffer) => void {
  let rest = '';
  return (b) => {
    if (!onProgress) return;
    const all = rest + b.toString('utf8');
    const parts = all.split(/[\r\n]/);
    rest = parts.pop() ?? '';
    for (const line of parts) {
      const m = /^(?:remote: )?([^:]+):\s+(?:\d+% \()?(\d+)(?:\/(\d+)\))?/.exec(line);
      if (m) onProgress({ phase: m[1].trim(), done: Number(m[2]), total: Number(m[3] ?? m[2]) });
    }
  };
}

// ---- the pack to push -------------------------------------------------------------------------------------

/**
 * Write to a temporary pack in `store`'s objects/pack every object reachable from `want` (one commit or
 * several) that the remote's
 * tips `theirs` (those the store has) do not reach: the commits and tags between, and of each commit's tree what
 * differs from its parents' trees at the same path (the parents are on the remote or sent too). Memory: the
 * commit walk's sets, the trees along one path, and the pack writer's 40 bytes per object; large blobs stream.
 * The caller sends the file, then calls discard().
 */
export async function buildPushPack(store: ObjectStore, want: string | string[], theirs: string[], onProgress?: Progress): Promise<{ path: string; size: number; count: number; discard(): void }> {
  // Commits the remote has: everything below its tips we know.
  const remoteHas = new Set<string>();
  const stack: string[] = [];
  for (const t of theirs) { const c = peelToCommit(store, t); if (c) stack.push(c); }
  while (stack.length) {
    const c = stack.pop()!;
    if (remoteHas.has(c) || !store.has(c)) continue;
    remoteHas.add(c);
    stack.push(...parseCommit(c, store.readType(c, 'commit')).parents);
  }
  const w = new PackWriter(join(store.objectsDir, 'pack'), 0);
  const key = (oid: string): Buffer => Buffer.from(oid, 'hex');
  const addBlob = async (oid: string): Promise<void> => {
    if (w.has(key(oid))) return;
    const size = store.sizeOf(oid);
    if (size < LARGE_BLOB) { w.add(oid, 'blob', store.readType(oid, 'blob')); return; }
    const got = await w.addStream(size, store.blobChunks(oid), () => false);
    if (got !== oid) throw new ObjectError(oid, 'corrupt (its content does not hash to its name)');
  };
  const addTree = async (oid: string, bases: string[]): Promise<void> => {
    if (bases.includes(oid) || w.has(key(oid))) return;
    const data = store.readType(oid, 'tree');
    const entries = parseTree(oid, data);
    const baseMaps = bases.map((b) => { const m = new Map<string, TreeEntry>(); for (const e of parseTree(b, store.readType(b, 'tree'))) m.set(e.name, e); return m; });
    for (const e of entries) {
      if (e.mode === '160000') continue; // a submodule's commit lives elsewhere
      const dir = e.mode === '40000';
      const same: string[] = [];
      for (const m of baseMaps) { const b = m.get(e.name); if (b && (b.mode === '40000') === dir) same.push(b.oid); }
      if (same.includes(e.oid)) continue;
      if (dir) await addTree(e.oid, same);
      else await addBlob(e.oid);
    }
    w.add(oid, 'tree', data);
  };
  try {
    const todo = typeof want === 'string' ? [want] : [...want];
    const seen = new Set<string>();
    while (todo.length) {
      const oid = todo.pop()!;
      if (seen.has(oid) || remoteHas.has(oid)) continue;
      seen.add(oid);
      const o = store.read(oid);
      if (o.type === 'tag') {
        const m = /^object ([0-9a-f]{40})$/m.exec(o.data.toString('latin1'));
        if (m) todo.push(m[1]);
      } else if (o.type === 'commit') {
        const c = parseCommit(oid, o.data);
        const bases = c.parents.map((p) => parseCommit(p, store.readType(p, 'commit')).tree);
        await addTree(c.tree, bases);
        todo.push(...c.parents);
        if (onProgress) onProgress({ phase: 'Writing objects', done: w.count, total: 0 });
      } else if (o.type === 'tree') {
        await addTree(oid, []);
        continue;
      } else if (o.type === 'blob') {
        await addBlob(oid);
        continue;
      }
      if (!w.has(key(oid))) w.add(oid, o.type, o.data);
    }
    const count = w.count;
    onProgress?.({ phase: 'Writing objects', done: count, total: count });
    const out = w.finishUnindexed();
    return { ...out, count, discard: () => w.discard() };
  } catch (e) {
    w.discard();
    throw e;
  }
}

function peelToCommit(store: ObjectStore, oid: string): string | null {
  for (let k = 0; k < 10; k++) {
    if (!store.has(oid)) return null;
    const o = store.read(oid);
    if (o.type === 'commit') return oid;
    if (o.type !== 'tag') return null;
    const m = /^object ([0-9a-f]{40})$/m.exec(o.data.toString('latin1'));
    if (!m) return null;
    oid = m[1];
  }
  return null;
}

export { ZERO };
