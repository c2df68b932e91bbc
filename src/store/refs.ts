/**
 * Refs: read loose and packed refs, and move a ref the way git does: under `<ref>.lock` (created exclusively),
 * written, fsynced, then renamed over the ref, only if the ref still holds the value the caller saw.
 */
import * as fs from '../sys/fs.js';
import { dirname, join } from 'node:path';
import { GlayerError, isAbsent, withPath } from '../errors.js';
import { commonDir } from './layout.js';
import { syncDir } from './objects.js';

export class RefError extends GlayerError {
  constructor(ref: string, message: string) {
    super('E_REF', `${ref}: ${message}`, { ref });
  }
}


/** Where `ref` lives: HEAD (and its log) in the workspace's own git dir, every other ref in the shared one. */
const dirOf = (gitdir: string, ref: string): string => (ref === 'HEAD' ? gitdir : commonDir(gitdir));

const SAFE_REF = /^refs\/(heads|tags|remotes|glayer)\/[A-Za-z0-9._\/-]+$/;

export function checkRefName(ref: string): void {
  if (!SAFE_REF.test(ref) || ref.split('/').some((p) => p === '' || p === '.' || p === '..' || p.endsWith('.lock') || p.startsWith('.')) || ref.includes('..')) {
    throw new RefError(ref, 'not a valid ref name');
  }
}

export function readSymbolicHead(gitdir: string): string {
  const text = fs.readFileSync(join(gitdir, 'HEAD'), 'utf8').trim();
  if (!text.startsWith('ref: ')) throw new RefError('HEAD', 'detached HEAD is not a stack; point HEAD at a branch');
  return text.slice(5);
}

export function writeSymbolicHead(gitdir: string, ref: string): void {
  checkRefName(ref);
  writeLocked(join(gitdir, 'HEAD'), `ref: ${ref}\n`, 'HEAD');
}

/** The oid a ref names, or null when it does not exist. */
export { commonDir };

export function readRef(gitdir: string, ref: string, depth = 0): string | null {
  // Like git (SYMREF_MAXDEPTH): a chain of symbolic refs this long is a loop.
  if (depth > 5) throw new RefError(ref, 'symbolic ref loop (or chain too long)');
  let text: string | null = null;
  try { text = fs.readFileSync(join(dirOf(gitdir, ref), ref), 'utf8'); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR' && code !== 'EISDIR') throw e;
  }
  if (text !== null) {
    const t = text.trim();
    if (t.startsWith('ref: ')) return readRef(gitdir, t.slice(5), depth + 1);
    if (!/^[0-9a-f]{40}$/.test(t)) throw new RefError(ref, 'corrupt ref file');
    return t;
  }
  return packedRefs(gitdir).get(ref) ?? null;
}

export function packedRefs(gitdir: string): Map<string, string> {
  gitdir = commonDir(gitdir);
  const out = new Map<string, string>();
  let text = '';
  try { text = fs.readFileSync(join(gitdir, 'packed-refs'), 'utf8'); } catch (e) { if (isAbsent(e)) return out; throw e; }
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#') || line.startsWith('^')) continue;
    const sp = line.indexOf(' ');
    if (sp === 40) out.set(line.slice(41), line.slice(0, 40));
  }
  return out;
}

/** All refs under `prefix` (e.g. 'refs/heads/'), loose and packed. */
export function listRefs(gitdir: string, prefix: string): Map<string, string> {
  gitdir = commonDir(gitdir);
  const out = new Map<string, string>();
  for (const [k, v] of packedRefs(gitdir)) if (k.startsWith(prefix)) out.set(k, v);
  const walk = (rel: string): void => {
    let names: fs.Dirent[];
    try { names = fs.readdirSync(join(gitdir, rel), { withFileTypes: true }); } catch (e) { if (isAbsent(e)) return; throw e; }
    for (const d of names) {
      const r = `${rel}/${d.name}`;
      if (d.isDirectory()) walk(r);
      else if (d.isFile() && !d.name.endsWith('.lock')) {
        const v = fs.readFileSync(join(gitdir, r), 'utf8').trim();
        if (/^[0-9a-f]{40}$/.test(v)) out.set(r, v);
      }
    }
  };
  walk(prefix.replace(/\/$/, ''));
  return out;
}

/**
 * Move `ref` from `expected` (null: must not exist) to `oid`. Fails with E_REF when another writer moved it,
 * or holds its lock, so no update is lost.
 */
export function updateRef(gitdir: string, ref: string, oid: string, expected: string | null): void {
  checkRefName(ref);
  gitdir = commonDir(gitdir);
  const path = join(gitdir, ref);
  fs.mkdirSync(dirname(path), { recursive: true });
  const lock = path + '.lock';
  let fd: number;
  try { fd = fs.openSync(lock, 'wx'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new RefError(ref, `is locked by another writer (${lock} exists; remove it if no glayer or git process is running)`);
    throw e;
  }
  let moved = false;
  try {
    const current = readRef(gitdir, ref);
    if (current !== expected) throw new RefError(ref, `moved while we worked (now ${current ?? 'absent'}, expected ${expected ?? 'absent'})`);
    fs.writeSync(fd, `${oid}\n`);
    fs.fsyncSync(fd);
    // A close that fails has still released the descriptor (never close it twice).
    const f = fd;
    fd = -1;
    fs.closeSync(f);
    fs.renameSync(lock, path);
    moved = true;
    syncDir(dirname(path));
  } catch (e) {
    throw withPath(e, lock);
  } finally {
    if (fd >= 0) { try { fs.closeSync(fd); } catch { /* released all the same */ } }
    // Once renamed, the lock is the ref: nothing to remove (and a failure here must not undo a move that happened).
    if (!moved) fs.rmSync(lock, { force: true });
  }
}

function writeLocked(path: string, text: string, name: string): void {
  const lock = path + '.lock';
  let fd: number;
  try { fd = fs.openSync(lock, 'wx'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new RefError(name, `is locked (${lock} exists)`);
    throw e;
  }
  try {
    try {
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(lock, path);
  } catch (e) {
    fs.rmSync(lock, { force: true });
    throw withPath(e, lock);
  }
}

/**
 * Delete `ref` if it still holds `expected`: under its lock, the loose file goes, then its line in
 * packed-refs (rewritten to a temporary file and renamed), as git does. Its reflog goes with it.
 */
export function deleteRef(gitdir: string, ref: string, expected: string): void {
  checkRefName(ref);
  gitdir = commonDir(gitdir);
  const path = join(gitdir, ref);
  // A ref that is only packed (after `git pack-refs`) may have no directory left for its lock.
  fs.mkdirSync(dirname(path), { recursive: true });
  const lock = path + '.lock';
  let fd: number;
  try { fd = fs.openSync(lock, 'wx'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new RefError(ref, `is locked by another writer (${lock} exists; remove it if no glayer or git process is running)`);
    throw e;
  }
  try {
    const current = readRef(gitdir, ref);
    if (current !== expected) throw new RefError(ref, `moved while we worked (now ${current ?? 'absent'}, expected ${expected})`);
    if (packedRefs(gitdir).has(ref)) {
      const packed = join(gitdir, 'packed-refs');
      const lines = fs.readFileSync(packed, 'utf8').split('\n');
      const keep: string[] = [];
      for (let k = 0; k < lines.length; k++) {
        if (lines[k].slice(41) === ref && lines[k][40] === ' ') {
          if (lines[k + 1]?.startsWith('^')) k++;
          continue;
        }
        keep.push(lines[k]);
      }
      writeLocked(packed, keep.join('\n'), 'packed-refs');
    }
    fs.rmSync(path, { force: true });
    fs.rmSync(join(gitdir, 'logs', ref), { force: true });
  } finally {
    fs.closeSync(fd);
    fs.rmSync(lock, { force: true });
  }
}

export interface ReflogEntry { old: string; new: string; who: string; timestamp: number; message: string }

const ZERO = '0'.repeat(40);

/** Append one line to `ref`'s reflog (`logs/<ref>`), in git's format. `old` null: the ref was created. */
export function appendReflog(gitdir: string, ref: string, old: string | null, oid: string, who: { name: string; email: string; timestamp: number; tz: string }, message: string): void {
  checkRefName(ref);
  const file = join(dirOf(gitdir, ref), 'logs', ref);
  fs.mkdirSync(dirname(file), { recursive: true });
  const line = `${old ?? ZERO} ${oid} ${who.name} <${who.email}> ${who.timestamp} ${who.tz}\t${message.replace(/\n/g, ' ')}\n`;
  fs.appendFileSync(file, line);
}

/** `ref`'s reflog, oldest first (empty when it has none). */
export function readReflog(gitdir: string, ref: string): ReflogEntry[] {
  let text = '';
  try { text = fs.readFileSync(join(dirOf(gitdir, ref), 'logs', ref), 'utf8'); } catch { return []; }
  const out: ReflogEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{40}) ([0-9a-f]{40}) (.*?) (\d+) [+-]\d{4}\t?(.*)$/.exec(line);
    if (m) out.push({ old: m[1], new: m[2], who: m[3], timestamp: Number(m[4]), message: m[5] });
  }
  return out;
}

/** Every oid any reflog of the store names (both sides of each entry), for reachability. */
export function reflogOids(gitdir: string): Set<string> {
  gitdir = commonDir(gitdir);
  const out = new Set<string>();
  const walk = (rel: string): void => {
    let names: fs.Dirent[];
    try { names = fs.readdirSync(join(gitdir, rel), { withFileTypes: true }); } catch { return; }
    for (const d of names) {
      const r = `${rel}/${d.name}`;
      if (d.isDirectory()) walk(r);
      else if (d.isFile()) for (const e of readReflog(gitdir, r.slice(5))) { if (e.old !== ZERO) out.add(e.old); if (e.new !== ZERO) out.add(e.new); }
    }
  };
  walk('logs');
  return out;
}
