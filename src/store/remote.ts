/**
 * Transports: moving objects and refs between a store and another git repository.
 *
 * - http and https: glayer's own smart-HTTP client (smart-http.ts, loaded lazily), in bounded memory: a fetched
 *   pack streams to a file and is indexed from disk, a pushed pack is built in a file and streamed. Credentials
 *   come from the URL, from GLAYER_USERNAME / GLAYER_PASSWORD, or from `git credential fill` when git is
 *   installed. glayer never prompts: git runs with GIT_TERMINAL_PROMPT=0, no askpass, its stdin closed after the
 *   request and no controlling terminal.
 * - Local paths and file:// URLs: isomorphic-git has no local transport, so the objects the other side lacks are
 *   copied between the two object stores here, walking from the wanted commits and stopping at objects the
 *   destination already has. Every copied object is re-hashed, so a source cannot pass one object off as another.
 * - ssh (and any other scheme git knows): delegated to the system `git`, else a clear error.
 *
 * Fetching never writes a ref of the store: the http client writes only a pack; git runs in a *quarantine* git
 * directory whose `objects` is the store's (objects are content-addressed: writing them is harmless) and whose
 * refs are a copy (for negotiation). The caller validates what arrived and only then moves its own refs.
 */
import { spawn } from 'node:child_process';
import * as fs from '../sys/fs.js';
import { dirname, join, resolve, relative, isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GlayerError, ObjectError, isAbsent } from '../errors.js';
import { LARGE_BLOB, ObjectStore, parseTree, type ObjectWriter } from './objects.js';
import { parseCommit } from './commits.js';
import { commonDir, listRefs, readRef, updateRef } from './refs.js';
import { storeDirOf } from './layout.js';

// ---- errors -----------------------------------------------------------------------------------------------

/** A remote could not be reached or refused the request. */
export class RemoteError extends GlayerError {
  constructor(url: string, message: string, data: Record<string, unknown> = {}) {
    super('E_REMOTE', `${safeUrl(url)}: ${message}`, { url: safeUrl(url), ...data });
  }
}

/** The remote wants credentials that glayer does not have, or rejected the ones it sent. Exit code 3. */
export class AuthError extends GlayerError {
  constructor(url: string, rejected: boolean, source: string | null) {
    super(
      'E_AUTH',
      rejected
        ? `${safeUrl(url)}: authentication failed (the credentials from ${source ?? 'the URL'} were rejected)`
        : `${safeUrl(url)}: authentication required; give credentials in the URL (https://USER:TOKEN@host/...), in GLAYER_USERNAME and GLAYER_PASSWORD, or with a git credential helper (glayer never prompts)`,
      { url: safeUrl(url), rejected },
      3,
    );
  }
}

/** The remote stack moved to layers the local stack does not build on. Exit code 1, like git. */
export class NonFastForwardError extends GlayerError {
  constructor(url: string, ref: string, remoteOid: string, localOid: string, known: boolean) {
    super(
      'E_NON_FAST_FORWARD',
      `rejected: ${ref} on ${safeUrl(url)} is at ${remoteOid.slice(0, 12)}, which ${known ? 'is not below' : 'the local store does not have, so it cannot be below'} the local top ${localOid.slice(0, 12)} (non-fast-forward); run 'glayer pull --rebase' first, or push --force to replace it`,
      { url: safeUrl(url), ref, remote: remoteOid, local: localOid },
      1,
    );
  }
}

/** A URL with any password replaced by `***`, for messages. */
export function safeUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/@]*)@/i, (_m, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return `${scheme}${colon < 0 ? userinfo : userinfo.slice(0, colon) + ':***'}@`;
  });
}

// ---- URLs -------------------------------------------------------------------------------------------------

export type Transport =
  | { kind: 'http'; url: string }
  | { kind: 'local'; url: string; path: string }
  | { kind: 'git'; url: string };

/** How to reach `url`: http(s), a local repository, or the system git (ssh, git://, scp-like `host:path`). */
export function transportFor(url: string, cwd = process.cwd()): Transport {
  if (/^https?:\/\//i.test(url)) return { kind: 'http', url };
  if (/^file:\/\//i.test(url)) {
    let path: string;
    try { path = fileURLToPath(url); } catch { throw new RemoteError(url, 'not a valid file:// URL'); }
    return { kind: 'local', url, path };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return { kind: 'git', url };
  // scp-like [user@]host:path, as git reads it: a colon before any slash, and not an existing local path.
  const colon = url.indexOf(':');
  const slash = url.indexOf('/');
  if (colon > 1 && (slash < 0 || colon < slash) && !fs.existsSync(resolve(cwd, url))) return { kind: 'git', url };
  return { kind: 'local', url, path: resolve(cwd, url) };
}

/** Is `text` written as a URL or path (rather than a remote's name)? */
export function looksLikeUrl(text: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(text) || text.includes('/') || text.includes(':') || text === '.' || text === '..';
}

/** The git directory of a local repository: a glayer workspace, a repository with `.git`, or a bare one. */
export function localGitdir(path: string, url = path): string {
  const isGitdir = (d: string): boolean => {
    try { return fs.statSync(join(d, 'HEAD')).isFile() && fs.statSync(join(commonDir(d), 'objects')).isDirectory(); } catch (e) { if (isAbsent(e)) return false; throw e; }
  };
  // A `.git` or `.glayer` file (a linked work tree or workspace) names the private git dir.
  for (const d of [storeDirOf(join(path, '.glayer')), storeDirOf(join(path, '.git')), path]) if (isGitdir(d)) return d;
  throw new RemoteError(url, fs.existsSync(path) ? 'not a git repository or glayer workspace' : 'no such repository (for a new one: git init --bare PATH)');
}

// ---- remote configuration (the store's git config, as git keeps it) ---------------------------------------

async function iso() {
  const git = await import('isomorphic-git');
  return { git };
}

let extraCertificatesLoaded = false;
/**
 * The launcher (bin/glayer) starts node without NODE_EXTRA_CA_CERTS, whose parsing at start-up would slow every
 * command, and passes the path on as GLAYER_EXTRA_CA_CERTS: trust those certificates here, beside node's own,
 * for the https requests of the transport (they go through https.globalAgent).
 */
export async function trustExtraCertificates(): Promise<void> {
  const file = process.env.GLAYER_EXTRA_CA_CERTS;
  if (extraCertificatesLoaded || !file || process.env.NODE_EXTRA_CA_CERTS) return;
  extraCertificatesLoaded = true;
  let pem: string;
  try { pem = fs.readFileSync(file, 'latin1'); } catch (e) {
    // node itself only warns when NODE_EXTRA_CA_CERTS cannot be read; so do we.
    process.emitWarning(`Ignoring extra certs from \`${file}\`, load failed: ${(e as Error).message}`);
    return;
  }
  // Loaded here, not at the top: most commands never talk https, and every module loaded costs start-up time.
  const [https, tls] = await Promise.all([import('node:https'), import('node:tls')]);
  https.globalAgent.options.ca = [...tls.rootCertificates, pem];
}

export interface RemoteConfig { name: string; url: string }

export async function listRemoteConfigs(gitdir: string): Promise<RemoteConfig[]> {
  gitdir = commonDir(gitdir);
  const { git } = await iso();
  const list = await git.listRemotes({ fs, gitdir });
  return list.map((r) => ({ name: r.remote, url: r.url })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export async function addRemoteConfig(gitdir: string, name: string, url: string): Promise<void> {
  gitdir = commonDir(gitdir);
  const { git } = await iso();
  await git.addRemote({ fs, gitdir, remote: name, url });
}

export async function removeRemoteConfig(gitdir: string, name: string): Promise<void> {
  gitdir = commonDir(gitdir);
  const { git } = await iso();
  await git.deleteRemote({ fs, gitdir, remote: name });
}

/** The upstream of a local stack (branch.NAME.remote / branch.NAME.merge), or null. */
export async function readUpstream(gitdir: string, stack: string): Promise<{ remote: string; merge: string } | null> {
  gitdir = commonDir(gitdir);
  const { git } = await iso();
  const remote = await git.getConfig({ fs, gitdir, path: `branch.${stack}.remote` }) as string | undefined;
  const merge = await git.getConfig({ fs, gitdir, path: `branch.${stack}.merge` }) as string | undefined;
  return remote && merge ? { remote, merge } : null;
}

export async function writeUpstream(gitdir: string, stack: string, remote: string, merge: string): Promise<void> {
  gitdir = commonDir(gitdir);
  const { git } = await iso();
  await git.setConfig({ fs, gitdir, path: `branch.${stack}.remote`, value: remote });
  await git.setConfig({ fs, gitdir, path: `branch.${stack}.merge`, value: merge });
}

// ---- options ----------------------------------------------------------------------------------------------

export interface TransferOptions {
  onProgress?: (p: { phase: string; done: number; total: number }) => void;
}

/**
 * What a remote holds: its refs (heads and tags, tags peeled to what they name), where its HEAD points, and the
 * image configs kept with its stacks (`refs/glayer/config/STACK` -> commit), apart so nothing lists them as stacks.
 */
export interface RemoteRefs {
  refs: Map<string, string>;
  head: string | null;
  configs: Map<string, string>;
}

/** The prefix of the refs that keep a stack's image config (see api/image-config.ts). */
export const CONFIG_PREFIX = 'refs/glayer/config/';

const ZERO = '0000000000000000000000000000000000000000';

// ---- credentials (http) -----------------------------------------------------------------------------------

export interface Creds { username: string; password: string }

/** Split `https://user:pass@host/p` into the bare URL and its credentials. */
export function splitCredentials(url: string): { url: string; creds: Creds | null } {
  const m = /^(https?:\/\/)([^/@]*)@(.*)$/i.exec(url);
  if (!m) return { url, creds: null };
  const colon = m[2].indexOf(':');
  const dec = (s: string): string => { try { return decodeURIComponent(s); } catch { return s; } };
  const username = dec(colon < 0 ? m[2] : m[2].slice(0, colon));
  const password = colon < 0 ? '' : dec(m[2].slice(colon + 1));
  return { url: m[1] + m[3], creds: { username, password } };
}

/** Run git without any chance of a prompt: no terminal, no askpass, stdin closed after `input`. */
export function runGit(args: string[], opts: { input?: string; cwd?: string; env?: Record<string, string | undefined> } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const env: Record<string, string | undefined> = {
      ...process.env,
      GIT_TERMINAL_PROMPT: '0',
      GIT_ASKPASS: '',
      SSH_ASKPASS: '',
      GCM_INTERACTIVE: 'never',
      ...opts.env,
    };
    if (!env.GIT_SSH_COMMAND && !env.GIT_SSH) env.GIT_SSH_COMMAND = 'ssh -o BatchMode=yes';
    const child = spawn('git', ['-c', 'core.askPass=', ...args], {
      cwd: opts.cwd,
      env: env as NodeJS.ProcessEnv,
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true, // a new session: no controlling terminal to prompt on
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', rej);
    child.on('close', (code) => res({ code: code ?? 128, stdout, stderr }));
    child.stdin.on('error', () => { /* git may exit before reading */ });
    child.stdin.end(opts.input ?? '');
  });
}

const gitChecked = new Map<string, boolean>();
/** Is `git` on the PATH (asked once per PATH)? */
export async function hasSystemGit(): Promise<boolean> {
  const key = process.env.PATH ?? '';
  let ok = gitChecked.get(key);
  if (ok === undefined) {
    try { ok = (await runGit(['--version'])).code === 0; } catch { ok = false; }
    gitChecked.set(key, ok);
  }
  return ok;
}

/** Credentials for an http remote, from the URL, the environment and git's helpers (asked once, on a 401). */
export class CredentialSource {
  source: string | null = null;
  private fromHelper: Creds | null = null;
  private tried = false;
  rejected = false;

  constructor(private readonly url: string, private readonly urlCreds: Creds | null) {}

  private request(c?: Creds): string {
    const u = new URL(this.url);
    let s = `protocol=${u.protocol.replace(/:$/, '')}\nhost=${u.host}\npath=${u.pathname.replace(/^\//, '')}\n`;
    if (this.urlCreds?.username) s += `username=${this.urlCreds.username}\n`;
    if (c) s += `username=${c.username}\npassword=${c.password}\n`;
    return s + '\n';
  }

  async fill(): Promise<Creds | undefined> {
    if (this.tried) return undefined;
    this.tried = true;
    if (this.urlCreds && this.urlCreds.password !== '') { this.source = 'the URL'; return this.urlCreds; }
    const env = process.env;
    if (env.GLAYER_USERNAME !== undefined || env.GLAYER_PASSWORD !== undefined) {
      this.source = 'GLAYER_USERNAME/GLAYER_PASSWORD';
      return { username: env.GLAYER_USERNAME ?? this.urlCreds?.username ?? '', password: env.GLAYER_PASSWORD ?? '' };
    }
    if (!(await hasSystemGit())) return undefined;
    const r = await runGit(['credential', 'fill'], { input: this.request() }).catch(() => null);
    if (!r || r.code !== 0) return undefined;
    const got: Record<string, string> = {};
    for (const line of r.stdout.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) got[line.slice(0, eq)] = line.slice(eq + 1);
    }
    if (got.username === undefined && got.password === undefined) return undefined;
    this.fromHelper = { username: got.username ?? '', password: got.password ?? '' };
    this.source = 'the git credential helper';
    return this.fromHelper;
  }

  async failed(): Promise<void> {
    this.rejected = true;
    if (this.fromHelper) await runGit(['credential', 'reject'], { input: this.request(this.fromHelper) }).catch(() => null);
  }

  async succeeded(): Promise<void> {
    if (this.fromHelper) await runGit(['credential', 'approve'], { input: this.request(this.fromHelper) }).catch(() => null);
  }
}

// ---- the quarantine ---------------------------------------------------------------------------------------

/**
 * A throwaway git directory that shares the store's objects and holds a copy of its refs: git may write refs
 * there as it likes; none reaches the store.
 */
async function withQuarantine<T>(gitdir: string, fn: (q: string) => Promise<T>, config = ''): Promise<T> {
  const q = join(gitdir, 'glayer', `quarantine-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  fs.mkdirSync(join(q, 'refs', 'heads'), { recursive: true });
  try {
    fs.symlinkSync(relative(q, join(gitdir, 'objects')), join(q, 'objects'));
    fs.writeFileSync(join(q, 'HEAD'), 'ref: refs/heads/main\n');
    fs.writeFileSync(join(q, 'config'), `[core]\n\trepositoryformatversion = 0\n\tbare = true\n${config}`);
    // Our refs, for negotiation (what we have), under names nothing writes to.
    const lines: string[] = [];
    const all = new Map([...listRefs(gitdir, 'refs/heads/'), ...listRefs(gitdir, 'refs/remotes/'), ...listRefs(gitdir, 'refs/tags/'), ...listRefs(gitdir, 'refs/glayer/')]);
    let k = 0;
    for (const oid of new Set(all.values())) lines.push(`${oid} refs/have/${k++}`);
    fs.writeFileSync(join(q, 'packed-refs'), lines.length ? `# pack-refs with: peeled\n${lines.join('\n')}\n` : '');
    return await fn(q);
  } finally {
    fs.rmSync(q, { recursive: true, force: true });
  }
}

// ---- listing ----------------------------------------------------------------------------------------------

export async function listRemote(t: Transport, opts: TransferOptions = {}): Promise<RemoteRefs> {
  if (t.kind === 'local') {
    const gd = localGitdir(t.path, t.url);
    const src = new ObjectStore(gd);
    try {
      return { refs: localRefs(gd, src), head: localHead(gd), configs: listRefs(gd, CONFIG_PREFIX) };
    } finally { src.close(); }
  }
  if (t.kind === 'git') return gitListRemote(t.url);
  const session = await openHttp(t);
  const adv = await session.discover('git-upload-pack');
  void opts;
  const refs = new Map<string, string>();
  const configs = new Map<string, string>();
  for (const [ref, oid] of adv.refs) {
    if (ref.endsWith('^{}')) continue;
    if (ref.startsWith('refs/heads/') || ref.startsWith('refs/tags/')) refs.set(ref, adv.refs.get(`${ref}^{}`) ?? oid);
    else if (ref.startsWith(CONFIG_PREFIX)) configs.set(ref, oid);
  }
  return { refs, head: adv.symrefs.get('HEAD') ?? null, configs };
}

/** A smart-HTTP session for an http(s) remote (the client module is loaded only when one is used). */
async function openHttp(t: Extract<Transport, { kind: 'http' }>) {
  const [{ SmartHttp }] = await Promise.all([import('./smart-http.js'), trustExtraCertificates()]);
  const { url, creds } = splitCredentials(t.url);
  return new SmartHttp(url, t.url, new CredentialSource(url, creds));
}

/** Our refs' tips (branches, remote-tracking branches, tags) that the store has: the haves of a fetch. */
function haveTips(gitdir: string, store: ObjectStore): string[] {
  const all = new Set([...listRefs(gitdir, 'refs/heads/').values(), ...listRefs(gitdir, 'refs/remotes/').values(), ...listRefs(gitdir, 'refs/tags/').values(), ...listRefs(gitdir, 'refs/glayer/').values()]);
  return [...all].filter((oid) => store.has(oid));
}

/**
 * The branches that work trees of the repository `gitdir` belongs to have checked out, each with who has it: the
 * repository's own HEAD when it has a work tree (`.git`, or a glayer workspace's `.glayer`), and the HEAD of each
 * of its linked work trees and workspaces (`worktrees/NAME/HEAD`; `worktrees/NAME/gitdir` says where it is).
 */
function checkedOutRefs(gitdir: string): Map<string, string> {
  const out = new Map<string, string>();
  const common = commonDir(gitdir);
  const holder = (dotDir: string): string => `${dotDir.endsWith('/.glayer') ? 'stack of the workspace' : 'branch of the work tree'} at ${dirname(dotDir)}`;
  const own = common.endsWith('/.glayer') || common.endsWith('/.git') ? localHead(common) : null;
  if (own) out.set(own, holder(common));
  let names: string[] = [];
  try { names = fs.readdirSync(join(common, 'worktrees')).sort(); } catch { /* none */ }
  for (const name of names) {
    const ref = localHead(join(common, 'worktrees', name));
    if (!ref || out.has(ref)) continue;
    let dot = join(common, 'worktrees', name);
    try { dot = fs.readFileSync(join(dot, 'gitdir'), 'utf8').trim(); } catch { /* named by its private dir, then */ }
    out.set(ref, holder(dot));
  }
  return out;
}

function localHead(gitdir: string): string | null {
  try {
    const t = fs.readFileSync(join(gitdir, 'HEAD'), 'utf8').trim();
    return t.startsWith('ref: ') ? t.slice(5) : null;
  } catch { return null; }
}

function localRefs(gitdir: string, src: ObjectStore): Map<string, string> {
  const out = new Map<string, string>();
  for (const [ref, oid] of listRefs(gitdir, 'refs/heads/')) out.set(ref, oid);
  for (const [ref, oid] of listRefs(gitdir, 'refs/tags/')) {
    try { out.set(ref, peel(src, oid)); } catch { /* a tag naming nothing we can read: skip it */ }
  }
  return out;
}

/** The commit a tag (or chain of tags) names; a commit names itself. */
export function peel(src: ObjectStore, oid: string): string {
  for (let k = 0; k < 10; k++) {
    const o = src.read(oid);
    if (o.type !== 'tag') return oid;
    const m = /^object ([0-9a-f]{40})$/m.exec(o.data.toString('latin1'));
    if (!m) throw new ObjectError(oid, 'corrupt (malformed tag)');
    oid = m[1];
  }
  throw new ObjectError(oid, 'corrupt (tag chain too long)');
}

// ---- fetching ---------------------------------------------------------------------------------------------

export interface FetchedObjects {
  /** The oid each wanted ref had on the remote (tags as they are, not peeled). */
  refs: Map<string, string>;
  /** Take back the objects this fetch added (when what arrived is refused): packs it wrote, loose objects it made. */
  discard(): void;
}

/**
 * Bring the objects of remote refs `wanted` (full names) into the store at `gitdir`. Writes no ref of the store.
 * Objects arrive as packs (isomorphic-git and git: always; the local copy: a pack, or a few loose objects it
 * lists), so `discard()` can take them all back and leave the store as it was.
 */
export async function fetchObjects(gitdir: string, t: Transport, wanted: string[], opts: TransferOptions = {}): Promise<FetchedObjects> {
  gitdir = commonDir(gitdir);
  const packDir = join(gitdir, 'objects', 'pack');
  const listPacks = (): Set<string> => { try { return new Set(fs.readdirSync(packDir)); } catch (e) { if (isAbsent(e)) return new Set(); throw e; } };
  const before = listPacks();
  const loose: string[] = [];
  const discard = (): void => {
    for (const name of listPacks()) if (!before.has(name) && /^pack-[0-9a-f]{40}\.(pack|idx|rev|keep)$/.test(name)) fs.rmSync(join(packDir, name), { force: true });
    for (const oid of loose) fs.rmSync(join(gitdir, 'objects', oid.slice(0, 2), oid.slice(2)), { force: true });
  };
  try {
    let refs: Map<string, string>;
    if (wanted.length === 0) refs = new Map();
    else if (t.kind === 'local') refs = await localFetch(gitdir, t, wanted, loose);
    else if (t.kind === 'git') refs = await gitFetch(gitdir, t.url, wanted);
    else refs = await httpFetch(gitdir, t, wanted, opts);
    return { refs, discard };
  } catch (e) {
    discard();
    throw e;
  }
}

async function httpFetch(gitdir: string, t: Extract<Transport, { kind: 'http' }>, wanted: string[], opts: TransferOptions): Promise<Map<string, string>> {
  const session = await openHttp(t);
  const adv = await session.discover('git-upload-pack');
  const out = new Map<string, string>();
  for (const ref of wanted) {
    const oid = adv.refs.get(ref);
    if (!oid) throw new RemoteError(t.url, `the remote did not send ${ref}`);
    out.set(ref, oid);
  }
  const store = new ObjectStore(gitdir);
  try {
    const wants = [...new Set(out.values())].filter((oid) => !store.has(oid));
    if (wants.length) await session.fetchPack(gitdir, adv, wants, haveTips(gitdir, store), opts.onProgress);
  } finally {
    store.close();
  }
  return out;
}

async function localFetch(gitdir: string, t: Extract<Transport, { kind: 'local' }>, wanted: string[], added: string[]): Promise<Map<string, string>> {
  const srcDir = localGitdir(t.path, t.url);
  const src = new ObjectStore(srcDir);
  const dst = new ObjectStore(gitdir);
  try {
    const out = new Map<string, string>();
    for (const ref of wanted) {
      const oid = readRef(srcDir, ref);
      if (!oid) throw new RemoteError(t.url, `has no ${ref}`);
      out.set(ref, oid);
    }
    await copyObjects(src, dst, [...out.values()], added);
    return out;
  } finally {
    src.close();
    dst.close();
  }
}

/** Raw bytes copied into one pack before the next one starts (packs are written to disk as they grow). */
const PACK_SPLIT = 1024 * 1024 * 1024;

/**
 * Copy every object reachable from `wants` that `dst` lacks, from `src` to `dst`. The walk stops at objects `dst`
 * has (a store holds everything reachable from what it holds). Objects are re-hashed as they are written. Memory
 * stays bounded: objects go to a pack on disk as they come, and a large blob stored whole is streamed through a
 * temporary file instead of being read into memory.
 */
export async function copyObjects(src: ObjectStore, dst: ObjectStore, wants: string[], added: string[] = []): Promise<number> {
  let w: ObjectWriter = dst.writer();
  let pendingBytes = 0;
  let copied = 0;
  const seen = new Set<string>();
  const counted = (oid: string, bytes: number): void => {
    added.push(oid);
    copied++;
    pendingBytes += bytes;
    if (pendingBytes > PACK_SPLIT) { w.flush(); w = dst.writer(); pendingBytes = 0; }
  };
  const add = (oid: string, type: 'commit' | 'tree' | 'blob' | 'tag', data: Buffer): void => {
    if (w.add(type, data) !== oid) throw new ObjectError(oid, `corrupt in the source repository (its content does not hash to its name)`);
    counted(oid, data.length);
  };
  const blob = async (oid: string): Promise<void> => {
    const size = src.sizeOf(oid);
    if (size < LARGE_BLOB) { add(oid, 'blob', src.readType(oid, 'blob')); return; }
    const tmp = join(dst.objectsDir, `tmp_obj_${process.pid}_${Date.now()}_${Math.random().toString(36).slice(2)}`);
    try {
      await src.writeBlobTo(oid, Buffer.from(tmp), 0o600);
      if (await w.addFile(tmp, fs.statSync(tmp).size) !== oid) throw new ObjectError(oid, `corrupt in the source repository (its content does not hash to its name)`);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    counted(oid, size);
  };
  const tree = async (oid: string): Promise<void> => {
    if (seen.has(oid) || dst.has(oid)) return;
    seen.add(oid);
    const data = src.readType(oid, 'tree');
    for (const e of parseTree(oid, data)) {
      if (e.mode === '160000') continue; // a submodule's commit lives elsewhere
      if (e.mode === '40000') await tree(e.oid);
      else if (!seen.has(e.oid) && !dst.has(e.oid)) { seen.add(e.oid); await blob(e.oid); }
    }
    add(oid, 'tree', data);
  };
  try {
    const stack = [...wants];
    while (stack.length) {
      const oid = stack.pop()!;
      if (seen.has(oid) || dst.has(oid)) continue;
      seen.add(oid);
      const o = src.read(oid);
      if (o.type === 'tag') {
        const m = /^object ([0-9a-f]{40})$/m.exec(o.data.toString('latin1'));
        if (m) stack.push(m[1]);
      } else if (o.type === 'commit') {
        const c = parseCommit(oid, o.data);
        await tree(c.tree);
        stack.push(...c.parents);
      } else if (o.type === 'tree') {
        seen.delete(oid);
        await tree(oid);
        continue;
      }
      add(oid, o.type, o.data);
    }
    w.flush();
  } catch (e) {
    w.discard();
    throw e;
  }
  return copied;
}

// ---- pushing ----------------------------------------------------------------------------------------------

export interface PushRequest {
  /** The local commit to push. */
  oid: string;
  /** Full name of the remote ref (refs/heads/NAME). */
  ref: string;
  /** What the remote ref held when we looked (null: absent); the update fails if it moved since. */
  expected: string | null;
  force?: boolean;
  /**
   * A refusal of this ref is reported (in pushRefs' answer) instead of thrown: the other refs of the request go
   * on (an image config that cannot go does not hold back its stack).
   */
  optional?: boolean;
}

/** Update one ref of the remote to `oid`, sending the objects it lacks. */
export async function pushRef(gitdir: string, t: Transport, req: PushRequest, opts: TransferOptions = {}): Promise<void> {
  gitdir = commonDir(gitdir);
  await pushRefs(gitdir, t, [{ ...req, optional: false }], opts);
}

/**
 * Update several refs of the remote in one request (one pack, one receive-pack call), sending the objects they
 * lack. Returns, for each ref, null when the remote has it now, else (an `optional` request only) why it was
 * refused; a required request that is refused throws.
 */
export async function pushRefs(gitdir: string, t: Transport, reqs: PushRequest[], opts: TransferOptions = {}): Promise<Map<string, string | null>> {
  gitdir = commonDir(gitdir);
  if (reqs.length === 0) return new Map();
  if (t.kind === 'local') return localPush(gitdir, t, reqs);
  if (t.kind === 'git') return gitPush(gitdir, t.url, reqs);
  return httpPush(gitdir, t, reqs, opts);
}

function movedError(url: string, ref: string, current: string | null): RemoteError {
  return new RemoteError(url, `${ref} moved while glayer was pushing (now ${current?.slice(0, 12) ?? 'absent'}); fetch and try again`);
}

/** Run `fn` for request `req`: an error of an optional request is recorded in `out` instead of thrown. */
function settle(out: Map<string, string | null>, req: PushRequest, fn: () => void): boolean {
  try { fn(); return true; } catch (e) {
    if (!req.optional || !(e instanceof GlayerError)) throw e;
    out.set(req.ref, e.message);
    return false;
  }
}

async function httpPush(gitdir: string, t: Extract<Transport, { kind: 'http' }>, reqs: PushRequest[], opts: TransferOptions): Promise<Map<string, string | null>> {
  const session = await openHttp(t);
  const adv = await session.discover('git-receive-pack');
  const out = new Map<string, string | null>();
  const store = new ObjectStore(gitdir);
  try {
    const cmds: Array<{ req: PushRequest; current: string | null }> = [];
    for (const req of reqs) {
      const current = adv.refs.get(req.ref) ?? null;
      if (current === req.oid) { out.set(req.ref, null); continue; }
      settle(out, req, () => {
        if (current !== req.expected) throw movedError(t.url, req.ref, current);
        if (current !== null && !req.force && !reaches(store, req.oid, current)) throw new NonFastForwardError(t.url, req.ref, current, req.oid, store.has(current));
        cmds.push({ req, current });
      });
    }
    if (cmds.length === 0) return out;
    const { buildPushPack } = await import('./smart-http.js');
    const theirs = [...adv.refs.values()].filter((oid) => store.has(oid));
    const pack = await buildPushPack(store, cmds.map((c) => c.req.oid), theirs, opts.onProgress);
    try {
      const status = await session.sendPack(adv, cmds.map((c) => ({ ref: c.req.ref, old: c.current ?? ZERO, oid: c.req.oid })), pack, opts.onProgress);
      for (const { req, current } of cmds) {
        const refused = status.get(req.ref) ?? null;
        settle(out, req, () => {
          if (refused === null) { out.set(req.ref, null); return; }
          if (/non-fast-forward|fetch first|stale info/.test(refused)) throw new NonFastForwardError(t.url, req.ref, current ?? ZERO, req.oid, true);
          throw new RemoteError(t.url, `the remote refused ${req.ref}: ${refused.replace(/\s+/g, ' ').trim()}`);
        });
      }
    } finally {
      pack.discard();
    }
  } finally {
    store.close();
  }
  return out;
}

/** Is commit `ancestor` reachable from `from` in the local store? */
function reaches(store: ObjectStore, from: string, ancestor: string): boolean {
  if (!store.has(ancestor)) return false;
  const seen = new Set<string>();
  const todo = [from];
  while (todo.length) {
    const c = todo.pop()!;
    if (c === ancestor) return true;
    if (seen.has(c) || !store.has(c)) continue;
    seen.add(c);
    const o = store.read(c);
    if (o.type === 'commit') todo.push(...parseCommit(c, o.data).parents);
    else if (o.type === 'tag') { const m = /^object ([0-9a-f]{40})$/m.exec(o.data.toString('latin1')); if (m) todo.push(m[1]); }
  }
  return false;
}

async function localPush(gitdir: string, t: Extract<Transport, { kind: 'local' }>, reqs: PushRequest[]): Promise<Map<string, string | null>> {
  const dstDir = localGitdir(t.path, t.url);
  const out = new Map<string, string | null>();
  const go: PushRequest[] = [];
  const checkedOut = checkedOutRefs(dstDir);
  for (const req of reqs) {
    settle(out, req, () => {
      // Like git's receive.denyCurrentBranch: never move the checked-out branch of a repository with a work tree
      // (or the current stack of a glayer workspace), nor that of any of its linked work trees or workspaces,
      // under its owner's feet.
      const owner = checkedOut.get(req.ref);
      if (owner !== undefined) throw new RemoteError(t.url, `refusing to update ${req.ref}: it is the current ${owner}; push to a bare repository`);
      const current = readRef(dstDir, req.ref);
      if (current !== req.expected && current !== req.oid) throw movedError(t.url, req.ref, current);
      go.push(req);
    });
  }
  const src = new ObjectStore(gitdir);
  const dst = new ObjectStore(dstDir);
  try {
    await copyObjects(src, dst, go.map((r) => r.oid));
  } finally {
    src.close();
    dst.close();
  }
  // Every object is there before any ref moves; then each ref, checked again against what we saw.
  for (const req of go) {
    settle(out, req, () => {
      const current = readRef(dstDir, req.ref);
      if (current !== req.oid) {
        if (current !== req.expected) throw movedError(t.url, req.ref, current);
        updateRef(dstDir, req.ref, req.oid, req.expected);
      }
      out.set(req.ref, null);
    });
  }
  return out;
}

// ---- the system git (ssh and other schemes) ---------------------------------------------------------------

async function needGit(url: string): Promise<void> {
  if (!(await hasSystemGit())) {
    throw new RemoteError(url, "this transport (ssh, or a scheme other than http, https and file) needs the system 'git', which is not installed; install git, or use an https URL or a local path");
  }
}

function gitFailure(url: string, r: { code: number; stderr: string }, what: string): GlayerError {
  const lines = r.stderr.split('\n').map((l) => l.replace(/^(fatal|error):\s*/, '').trim()).filter((l) => l !== '' && !l.startsWith('hint:'));
  const text = lines.join('; ');
  if (/terminal prompts disabled|could not read (Username|Password)|Authentication failed|Permission denied \(publickey/i.test(text)) {
    return new AuthError(url, /Authentication failed|Permission denied/i.test(text), 'git');
  }
  return new RemoteError(url, `${what} failed (git: ${text || `exit ${r.code}`})`);
}

async function gitListRemote(url: string): Promise<RemoteRefs> {
  await needGit(url);
  const r = await runGit(['ls-remote', '--symref', url]);
  if (r.code !== 0) throw gitFailure(url, r, 'listing the remote');
  const refs = new Map<string, string>();
  const peeled = new Map<string, string>();
  const configs = new Map<string, string>();
  let head: string | null = null;
  for (const line of r.stdout.split('\n')) {
    const m = /^ref: (\S+)\tHEAD$/.exec(line);
    if (m) { head = m[1]; continue; }
    const c = /^([0-9a-f]{40})\t(refs\/glayer\/config\/\S+)$/.exec(line);
    if (c) { if (!c[2].endsWith('^{}')) configs.set(c[2], c[1]); continue; }
    const n = /^([0-9a-f]{40})\t(refs\/(?:heads|tags)\/\S+)$/.exec(line);
    if (!n) continue;
    if (n[2].endsWith('^{}')) peeled.set(n[2].slice(0, -3), n[1]);
    else refs.set(n[2], n[1]);
  }
  for (const [k, v] of peeled) refs.set(k, v);
  return { refs, head, configs };
}

async function gitFetch(gitdir: string, url: string, wanted: string[]): Promise<Map<string, string>> {
  await needGit(url);
  return withQuarantine(gitdir, async (q) => {
    const specs = wanted.map((ref, k) => `+${ref}:refs/incoming/${k}`);
    const r = await runGit(['--git-dir', q, '-c', 'gc.auto=0', '-c', 'maintenance.auto=false', '-c', 'fetch.unpackLimit=1', '-c', 'transfer.unpackLimit=1', 'fetch', '--no-tags', '--no-write-fetch-head', '--quiet', url, ...specs]);
    if (r.code !== 0) throw gitFailure(url, r, 'fetch');
    const out = new Map<string, string>();
    wanted.forEach((ref, k) => {
      const oid = readRef(q, `refs/incoming/${k}`);
      if (!oid) throw new RemoteError(url, `the remote did not send ${ref}`);
      out.set(ref, oid);
    });
    return out;
  });
}

async function gitPush(gitdir: string, url: string, reqs: PushRequest[]): Promise<Map<string, string | null>> {
  await needGit(url);
  return withQuarantine(gitdir, async (q) => {
    const leases = reqs.map((req) => `--force-with-lease=${req.ref}:${req.expected ?? ''}`);
    const specs = reqs.map((req) => `${req.force ? '+' : ''}${req.oid}:${req.ref}`);
    const r = await runGit(['--git-dir', q, '-c', 'gc.auto=0', 'push', '--porcelain', ...leases, url, ...specs]);
    // --porcelain: one line per ref, FLAG TAB FROM:TO TAB SUMMARY; `!` is a refusal.
    const lines = new Map<string, { flag: string; summary: string }>();
    for (const line of r.stdout.split('\n')) {
      const m = /^(.)\t[^\t:]*:([^\t]+)\t(.*)$/.exec(line);
      if (m) lines.set(m[2], { flag: m[1], summary: m[3] });
    }
    const out = new Map<string, string | null>();
    for (const req of reqs) {
      const got = lines.get(req.ref);
      if (got && got.flag !== '!') { out.set(req.ref, null); continue; }
      settle(out, req, () => {
        const why = got?.summary ?? '';
        if (/non-fast-forward|fetch first|stale info/.test(why)) throw new NonFastForwardError(url, req.ref, req.expected ?? ZERO, req.oid, true);
        throw gitFailure(url, { code: r.code || 1, stderr: r.stderr || why || r.stdout }, 'push');
      });
    }
    return out;
  });
}

/** For messages: a path relative to `cwd` when that is shorter. */
export function shortPath(p: string, cwd = process.cwd()): string {
  const r = relative(cwd, p);
  return r && !r.startsWith('..') && !isAbsolute(r) && r.length < p.length ? r : p;
}
