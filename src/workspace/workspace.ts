/**
 * A workspace: a directory holding the store (`.glayer`, a bare git repository), the writable layer
 * (`upper/`) and, by default, the view (`view/`). glayer's own state lives in `.glayer/glayer/`: which
 * directory is the view, the stat caches (indexes) of the view and the writable layer, the union cache and the
 * lock that admits one writer at a time.
 */
import * as fs from '../sys/fs.js';
import { dirname, join, resolve } from 'node:path';
import { GlayerError, LockedError, NotAWorkspaceError, SystemError, WorkspaceExistsError, isAbsent, isSystemRefusal } from '../errors.js';
import { onAbort } from '../sys/abort.js';
import { Store } from '../store/store.js';
import { commonDir, storeDirOf } from '../store/layout.js';

export const STORE_DIR = '.glayer';
export const UPPER_DIR = 'upper';
export const VIEW_DIR = 'view';

export interface State {
  version: 1;
  /** Absolute path of the view, or null before the first mount-view. */
  view: string | null;
  /** The stack top the writable layer and the view were last reconciled against. */
  lower: string | null;
  /** Set while the view is a live mount (src/mount/live.ts): the view is then the mount's merged directory. */
  live?: LiveState | null;
}

export interface LiveState {
  backend: 'kernel' | 'fuse';
  /** The stack top the mount's lower directories show. */
  head: string | null;
  /** The mount's work directory (in .glayer/glayer/live/). */
  work: string;
  /** The mount's lower directories, top first (absolute; absent in states written before it was kept). */
  lowers?: string[];
}

export class Workspace {
  readonly gitdir: string;
  readonly upper: string;
  readonly store: Store;
  private lockFd = -1;
  private dropAbort: (() => void) | null = null;

  constructor(readonly root: string) {
    this.gitdir = storeDirOf(join(root, STORE_DIR));
    this.upper = join(root, UPPER_DIR);
    this.store = new Store(this.gitdir);
  }

  /** The workspace containing `dir` (the workspace itself, its writable layer or its view), else an error. */
  static find(dir: string): Workspace {
    let d = resolve(dir);
    for (;;) {
      if (isStore(storeDirOf(join(d, STORE_DIR)))) return new Workspace(d);
      const up = dirname(d);
      if (up === d) throw new NotAWorkspaceError(resolve(dir));
      d = up;
    }
  }

  /** glayer's state of this workspace: view, stat caches, lock, live mounts (private to a linked workspace). */
  get stateDir(): string { return join(this.gitdir, 'glayer'); }
  /** glayer's state shared by every workspace of the store: the layer cache. */
  get sharedDir(): string { return join(this.store.commonDir, 'glayer'); }
  get defaultView(): string { return join(this.root, VIEW_DIR); }

  readState(): State {
    // Absent or damaged: no view, no record. An I/O error or a refusal is an error (forgetting the view is not
    // an answer to a disk that failed to read).
    let text: string;
    try { text = fs.readFileSync(join(this.stateDir, 'state.json'), 'utf8'); } catch (e) {
      if (isAbsent(e)) return { version: 1, view: null, lower: null };
      throw e;
    }
    try {
      const s = JSON.parse(text) as Partial<State>;
      const live = s.live && typeof s.live === 'object' && typeof s.live.work === 'string' ? s.live : null;
      return { version: 1, view: typeof s.view === 'string' ? s.view : null, lower: typeof s.lower === 'string' ? s.lower : null, live };
    } catch {
      return { version: 1, view: null, lower: null };
    }
  }

  writeState(s: State): void {
    fs.mkdirSync(this.stateDir, { recursive: true });
    const file = join(this.stateDir, 'state.json');
    // Atomic by rename; not fsynced, for the reason given in fs/index-file.ts.
    fs.writeFileSync(file + '.tmp', JSON.stringify(s, null, 2) + '\n');
    fs.renameSync(file + '.tmp', file);
  }

  /**
   * Take the workspace's write lock, waiting up to `timeoutMs` for another glayer process to finish. A lock left
   * by a process that no longer runs is taken over.
   */
  async lock(timeoutMs = Number(process.env.GLAYER_LOCK_TIMEOUT_MS ?? 10_000)): Promise<void> {
    const file = join(this.stateDir, 'lock');
    fs.mkdirSync(this.stateDir, { recursive: true });
    const deadline = Date.now() + timeoutMs;
    // The lock appears with its pid already in it (written to a private file, then hard-linked into place, which
    // fails if the lock exists): a kill can never leave an empty lock that nobody could prove stale.
    const mine = `${file}.${process.pid}`;
    fs.writeFileSync(mine, `${process.pid}\n`);
    try {
      for (;;) {
        try {
          fs.linkSync(mine, file);
          try { this.lockFd = fs.openSync(file, 'r'); } catch (e) { fs.rmSync(file, { force: true }); throw e; }
          // Stopped by a signal or a closed pipe: our lock goes (only if it is still ours).
          this.dropAbort = onAbort(() => { if (lockHolder(file) === process.pid) fs.rmSync(file, { force: true }); });
          return;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
        const holder = lockHolder(file);
        if (holder !== null && !alive(holder)) {
          // Stale: its process is gone. Remove it only if it is still the same lock file.
          try { if (lockHolder(file) === holder) fs.unlinkSync(file); } catch { /* raced with another taker */ }
          continue;
        }
        if (Date.now() >= deadline) throw new LockedError(file, holder);
        await new Promise((r) => setTimeout(r, 20 + Math.random() * 30));
      }
    } finally {
      fs.rmSync(mine, { force: true });
    }
  }

  /**
   * For a command that only reads: take the write lock if the workspace can be written (then the command may
   * refresh the writable layer and the caches), else return the reason it cannot, as one line (a read-only
   * file system, a store owned by another user, a full disk), and the command reads without the lock or saving
   * anything, as git status does in a repository it cannot write.
   */
  async lockIfWritable(): Promise<string | null> {
    try {
      await this.lock();
      return null;
    } catch (e) {
      if (!isSystemRefusal(e)) throw e;
      return (e instanceof GlayerError ? e : new SystemError(e as NodeJS.ErrnoException)).message;
    }
  }

  get locked(): boolean { return this.lockFd >= 0; }

  unlock(): void {
    if (this.dropAbort) { this.dropAbort(); this.dropAbort = null; }
    if (this.lockFd < 0) return;
    const fd = this.lockFd;
    this.lockFd = -1;
    // A close that fails has still released the descriptor, and it was only read: nothing of the work is lost.
    try { fs.closeSync(fd); } catch { /* released all the same */ }
    // A lock that cannot be removed names this process, which is about to end: the next taker finds it stale.
    try { fs.rmSync(join(this.stateDir, 'lock'), { force: true }); } catch { /* taken over as stale */ }
  }

  /** Whether the writable layer holds anything (uncommitted changes, as the last reconcile left them). */
  hasChanges(): boolean {
    try { return fs.readdirSync(this.upper).length > 0; } catch (e) { if (isAbsent(e)) return false; throw e; }
  }

  close(): void {
    this.unlock();
    this.store.close();
  }
}

function isStore(dir: string): boolean {
  try {
    return fs.statSync(join(dir, 'HEAD')).isFile() && fs.statSync(join(commonDir(dir), 'objects')).isDirectory();
  } catch (e) {
    if (isAbsent(e) || (e as NodeJS.ErrnoException).code === 'EACCES') return false;
    throw e;
  }
}

/** The pid written in a lock file, or null. */
export function lockHolder(file: string): number | null {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** Does process `pid` still run? */
export function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/**
 * Set by a long-running reader (`glayer serve`): calls that take no lock share one open Workspace per root, so
 * the store's caches (parsed trees and commits, unions computed in memory) serve every request instead of being
 * rebuilt for each. Objects are immutable; refs and state are read from disk on every call as before; the list of
 * packs is read again when the pack directory changes (another glayer process wrote one).
 */
export const sharedReaders = { enabled: false, open: new Map<string, { ws: Workspace; packs: number }>() };

function sharedReader(cwd: string): Workspace {
  const root = Workspace.find(cwd).root;
  let entry = sharedReaders.open.get(root);
  if (!entry) {
    entry = { ws: new Workspace(root), packs: -1 };
    sharedReaders.open.set(root, entry);
  }
  let stamp = 0;
  try { stamp = fs.statSync(join(entry.ws.gitdir, 'objects', 'pack')).mtimeMs; } catch { /* no packs yet */ }
  if (stamp !== entry.packs) { entry.ws.store.objects.rescan(); entry.packs = stamp; }
  return entry.ws;
}

/** Run `fn` on the workspace found from `cwd`, holding its lock; always releases it. */
export async function withWorkspace<T>(cwd: string, fn: (ws: Workspace) => Promise<T> | T, opts: { lock?: boolean } = {}): Promise<T> {
  if (opts.lock === false && sharedReaders.enabled) return fn(sharedReader(cwd));
  const ws = Workspace.find(cwd);
  try {
    if (opts.lock !== false) await ws.lock();
    return await fn(ws);
  } finally {
    ws.close();
  }
}

export { GlayerError };

// ---- linked workspaces (git's worktree layout) -----------------------------------------------------------------

/** A workspace sharing a store: its root and private git dir (`<common>/worktrees/NAME`). */
export interface LinkedWorkspace { name: string; root: string; gitdir: string }

/** The linked workspaces of the store whose shared git dir is `common` (those whose root still points back). */
export function linkedWorkspaces(common: string): LinkedWorkspace[] {
  const dir = join(common, 'worktrees');
  let names: string[] = [];
  try { names = fs.readdirSync(dir).sort(); } catch (e) { if (!isAbsent(e)) throw e; }
  const out: LinkedWorkspace[] = [];
  for (const name of names) {
    if (name.startsWith('.')) continue; // one being made (`.NAME.tmp-PID`)
    const gitdir = join(dir, name);
    let dot: string;
    try { dot = fs.readFileSync(join(gitdir, 'gitdir'), 'utf8').trim(); } catch { continue; }
    out.push({ name, root: dirname(dot), gitdir });
  }
  return out;
}

/**
 * Make a linked workspace at `root` (absent or an empty directory) on the stack `ref`: a private git dir in
 * `<common>/worktrees/NAME` (HEAD, `commondir`, `gitdir`, as git writes them, so `git worktree list` knows it),
 * then `root/.glayer` naming it and an empty `upper/`. The private dir is complete before `.glayer` appears, so a
 * kill leaves either no workspace at `root` or a whole one; a failure in between removes the private dir again.
 */
export function addLinkedWorkspace(common: string, root: string, ref: string): LinkedWorkspace {
  if (fs.existsSync(root) && (!fs.statSync(root).isDirectory() || fs.readdirSync(root).length)) throw new WorkspaceExistsError(root);
  const base = (root.split('/').pop() || 'ws').replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\./, '_');
  fs.mkdirSync(join(common, 'worktrees'), { recursive: true });
  let name = base;
  for (let n = 1; fs.existsSync(join(common, 'worktrees', name)); n++) name = `${base}${n}`;
  const gitdir = join(common, 'worktrees', name);
  const tmp = join(common, 'worktrees', `.${name}.tmp-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(join(tmp, 'glayer'), { recursive: true });
  fs.writeFileSync(join(tmp, 'HEAD'), `ref: ${ref}\n`);
  fs.writeFileSync(join(tmp, 'commondir'), '../..\n');
  fs.writeFileSync(join(tmp, 'gitdir'), `${join(root, STORE_DIR)}\n`);
  fs.renameSync(tmp, gitdir);
  try {
    fs.mkdirSync(join(root, UPPER_DIR), { recursive: true });
    fs.writeFileSync(join(root, `${STORE_DIR}.tmp-${process.pid}`), `gitdir: ${gitdir}\n`);
    fs.renameSync(join(root, `${STORE_DIR}.tmp-${process.pid}`), join(root, STORE_DIR));
  } catch (e) {
    fs.rmSync(join(root, `${STORE_DIR}.tmp-${process.pid}`), { force: true });
    fs.rmSync(gitdir, { recursive: true, force: true });
    throw e;
  }
  return { name, root, gitdir };
}

/** Every workspace of the store whose shared git dir is `common`: its first one, then the linked ones. */
export function storeWorkspaces(common: string): Array<{ root: string; gitdir: string }> {
  return [{ root: dirname(common), gitdir: common }, ...linkedWorkspaces(common)];
}

/** Remove a linked workspace: its `.glayer` first (then it is no workspace), its writable layer, its private dir. */
export function removeLinkedWorkspace(w: LinkedWorkspace): void {
  fs.rmSync(join(w.root, STORE_DIR), { force: true });
  fs.rmSync(join(w.root, UPPER_DIR), { recursive: true, force: true });
  fs.rmSync(w.gitdir, { recursive: true, force: true });
  try { fs.rmdirSync(w.root); } catch { /* not empty: the user's */ }
}
