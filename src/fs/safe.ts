/**
 * Confined paths: write and delete inside a root directory without ever going through a symlink, even one
 * swapped in while glayer runs.
 *
 * Node has no openat(2). On Linux, `/proc/self/fd/N/NAME` is its equivalent: N is a directory opened with
 * O_NOFOLLOW, one component at a time from the root, so the kernel resolves NAME inside that very directory,
 * whatever has been renamed or replaced on the way since. A component that is a symlink (or not a directory)
 * fails the open and is refused with UnsafePathError. The paths are short, so trees deeper than PATH_MAX work.
 * Elsewhere (no /proc) it falls back to the full path after an lstat of each component (a check, not a guarantee).
 */
import * as fs from '../sys/fs.js';
import { UnsafePathError, IoError } from '../errors.js';
import { basename, dirname } from '../core/path.js';
import { fsPath } from './paths.js';

const PROC = (() => { try { return fs.statSync('/proc/self/fd').isDirectory(); } catch { return false; } })();
const DIR_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_DIRECTORY ?? 0) | (fs.constants.O_NOFOLLOW ?? 0);
const MAX_FDS = 128;

export class ConfinedDir {
  /** Open directory fds by relative path (least recently used first). */
  private readonly fds = new Map<string, number>();

  constructor(private readonly root: string) {}

  /** A path naming `rel` (not followed if it is a symlink itself) whose parent is a real directory under root. */
  path(rel: string): Buffer {
    if (rel === '') return fsPath(this.root, '');
    const parent = dirname(rel);
    if (!PROC) {
      this.checkChain(parent);
      return fsPath(this.root, rel);
    }
    return Buffer.concat([Buffer.from(`/proc/self/fd/${this.dirFd(parent)}/`), Buffer.from(basename(rel), 'latin1')]);
  }

  /** The fd of directory `rel`, opened component by component without following symlinks. */
  private dirFd(rel: string): number {
    const hit = this.fds.get(rel);
    if (hit !== undefined) { this.fds.delete(rel); this.fds.set(rel, hit); return hit; }
    // Walk up to the nearest directory already open, then open down from it one component at a time
    // (iteratively: a tree 10,000 directories deep needs no deep stack).
    const down: string[] = [rel];
    let base: number | undefined;
    for (let cur = rel; cur !== '';) {
      cur = dirname(cur);
      base = this.fds.get(cur);
      if (base !== undefined) break;
      down.push(cur);
    }
    const fresh = new Set<number>();
    for (let j = down.length - 1; j >= 0; j--) {
      const r = down[j];
      let fd: number;
      if (r === '') {
        try { fd = fs.openSync(this.root, DIR_FLAGS); } catch (e) { throw this.refuse(r, e as NodeJS.ErrnoException); }
      } else {
        const p = Buffer.concat([Buffer.from(`/proc/self/fd/${base}/`), Buffer.from(basename(r), 'latin1')]);
        try { fd = fs.openSync(p, DIR_FLAGS); } catch (e) { throw this.refuse(r, e as NodeJS.ErrnoException); }
      }
      fresh.add(fd);
      const out = this.remember(r, fd);
      // An fd opened by this very walk and already evicted was never handed out: close it at once, so a
      // chain 10,000 directories deep does not hold 10,000 fds.
      if (out !== undefined && fresh.has(out)) { this.evicted.pop(); fs.closeSync(out); }
      base = fd;
    }
    return base!;
  }

  /** Check that directory `rel` is a real directory under root, reached without following any symlink. */
  assertDir(rel: string): void {
    if (PROC) this.dirFd(rel);
    else this.checkChain(rel);
  }

  /** Cache `fd` for `rel`; returns the fd evicted to make room (pushed on `evicted`), if any. */
  private remember(rel: string, fd: number): number | undefined {
    this.fds.set(rel, fd);
    if (this.fds.size <= MAX_FDS) return undefined;
    const [oldest, ofd] = this.fds.entries().next().value as [string, number];
    this.fds.delete(oldest);
    // Not closed yet: a path handed out through it may still be in use by an asynchronous write, and a
    // closed fd number can be reused for another directory. The caller releases these when its writes end.
    this.evicted.push(ofd);
    return ofd;
  }

  private readonly evicted: number[] = [];

  /** Directory fds evicted from the cache but not yet closed. */
  pendingCloses(): number {
    return this.evicted.length;
  }

  /** Close evicted fds: call only when no path handed out earlier is still in use. */
  releasePending(): void {
    for (const fd of this.evicted.splice(0)) { try { fs.closeSync(fd); } catch { /* already closed */ } }
  }

  private refuse(rel: string, e: NodeJS.ErrnoException): Error {
    if (e.code === 'ELOOP' || e.code === 'ENOTDIR') {
      let link = false;
      try { link = fs.lstatSync(fsPath(this.root, rel)).isSymbolicLink(); } catch { /* gone */ }
      return new UnsafePathError(rel === '' ? this.root : rel, link || e.code === 'ELOOP' ? 'a symlink stands where a directory should be' : 'not a directory');
    }
    return new IoError(rel === '' ? this.root : rel, e);
  }

  private checkChain(rel: string): void {
    const parts = rel === '' ? [] : rel.split('/');
    for (let k = 0; k <= parts.length; k++) {
      const p = parts.slice(0, k).join('/');
      let st: fs.Stats;
      try { st = fs.lstatSync(fsPath(this.root, p)); } catch (e) { throw new IoError(p, e as NodeJS.ErrnoException); }
      if (!st.isDirectory()) throw new UnsafePathError(p === '' ? this.root : p, st.isSymbolicLink() ? 'a symlink stands where a directory should be' : 'not a directory');
    }
  }

  /** Forget cached directory fds at or below `rel` (after it was removed or replaced). */
  forget(rel: string): void {
    for (const [k, fd] of this.fds) {
      if (rel === '' || k === rel || k.startsWith(rel + '/')) { fs.closeSync(fd); this.fds.delete(k); }
    }
  }

  /** `rm -rf rel`, never following a symlink: a link is unlinked, a directory emptied through its own fd. */
  removeTree(rel: string): void {
    const abs = this.path(rel);
    let st: fs.Stats;
    try { st = fs.lstatSync(abs); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new IoError(rel, e as NodeJS.ErrnoException);
    }
    if (!st.isDirectory()) { fs.unlinkSync(abs); return; }
    // Removing a directory: the caller has no write in flight below it (Materializer drains first), so fds
    // evicted while walking it can be closed as we go.
    if (!PROC) { fs.rmSync(abs, { recursive: true, force: true }); return; }
    // Iterative, so deep trees need no deep stack. Each directory is opened O_NOFOLLOW, then emptied through its fd.
    const stack: Array<{ dir: string; expanded: number }> = [{ dir: rel, expanded: 0 }];
    while (stack.length) {
      if (this.evicted.length > 64) this.releasePending();
      const top = stack[stack.length - 1];
      const dir = top.dir;
      if (top.expanded < 3) {
        let fd: number;
        try { fd = this.dirFd(dir); } catch (e) {
          if (e instanceof UnsafePathError) { fs.unlinkSync(this.path(dir)); stack.pop(); continue; }
          throw e;
        }
        top.expanded++;
        const base = Buffer.from(`/proc/self/fd/${fd}/`);
        for (const name of fs.readdirSync(base, { encoding: 'buffer' })) {
          const p = Buffer.concat([base, name]);
          let s: fs.Stats;
          try { s = fs.lstatSync(p); } catch { continue; }
          if (s.isDirectory()) stack.push({ dir: dir === '' ? name.toString('latin1') : dir + '/' + name.toString('latin1'), expanded: 0 });
          else fs.unlinkSync(p);
        }
        if (stack[stack.length - 1] !== top) continue;
      }
      stack.pop();
      this.forget(dir);
      if (dir === '') continue;
      try { fs.rmdirSync(this.path(dir)); } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOTDIR') fs.unlinkSync(this.path(dir));
        // Something appeared meanwhile: empty it again (a bounded number of times).
        else if (code === 'ENOTEMPTY' && top.expanded < 3) stack.push(top);
        else if (code !== 'ENOENT') throw new IoError(dir, e as NodeJS.ErrnoException);
      }
    }
  }

  close(): void {
    this.releasePending();
    for (const fd of this.fds.values()) { try { fs.closeSync(fd); } catch { /* already closed */ } }
    this.fds.clear();
  }
}
