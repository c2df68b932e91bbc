/**
 * Make a directory hold a tree: apply the changes between what it holds and what it should hold, writing only
 * the paths that differ. Removals never follow a symlink (a link is removed, not what it points to), and a
 * parent directory is checked to be a real directory before anything is written into it, so a layer's symlink
 * cannot carry a write outside the root.
 */
import * as fs from '../sys/fs.js';
import type { Change } from '../core/changes.js';
import { dirname } from '../core/path.js';
import { walkTree, type Mode, type TreeEntry, type TreeSource } from '../core/tree.js';
import { GlayerError, UnsafePathError, IoError, isSystemRefusal } from '../errors.js';
import { statOf, type Index, type Stat } from './index-file.js';
import type { LinkPartner } from './copy-up.js';
import { BAD_DATA, FileWriter } from './file-writer.js';
import { ConfinedDir } from './safe.js';

/** Where blob contents come from (the store, or a file known to hold them). */
export interface BlobSource {
  /** The content of blob `oid` when it is small enough to hold in memory, else null (then writeFile streams it). */
  readSmall(oid: string): Buffer | null;
  /** Create `dest` (which must not exist) as a regular file holding blob `oid`. */
  writeFile(oid: string, dest: Buffer, mode: number): Promise<void> | void;
  /** The bytes of a blob (a symlink target). */
  read(oid: string): Buffer;
  /**
   * A small blob stored whole in a pack, as its compressed bytes and size, for a writer thread to inflate; null
   * (or no such method) when it is read with readSmall. When those bytes turn out damaged, readSmall is asked.
   */
  packedData?(oid: string): { comp: Buffer; size: number } | null;
}

export interface MaterializeProgress { done: number; total: number }

/** Entries in one subtree from which writing it is worth starting a writer thread (about 30 ms). */
const THREADED_ENTRIES = 1024;


/** The process umask, read once (it only ever clears permission bits we then set back). */
const UMASK = process.umask();

function fileMode(mode: Mode): number {
  return mode === '100755' ? 0o755 : 0o644;
}

export class Materializer {
  private readonly checked = new Set<string>();
  /** Paths under root resolved through directory fds opened without following symlinks (safe.ts). */
  private readonly safe: ConfinedDir;
  written = 0;
  /** Changes of the last apply() made whole, in order; whether the one that failed (if any) was undone. */
  applied = 0;
  undone = false;
  /** Creates the small files of large subtrees on another thread (started by the first such subtree). */
  private writer: FileWriter | undefined;

  constructor(
    private readonly root: string,
    private readonly src: TreeSource,
    private readonly blobs: BlobSource,
    private readonly index: Index,
    private readonly onProgress?: (p: MaterializeProgress) => void,
    /**
     * The other side (view or writable layer): a file it holds at the same path is shared (copy-up.ts), not
     * copied, and its index follows what removing a shared name here does to its files' ctime.
     */
    private readonly partner?: LinkPartner,
  ) {
    this.safe = new ConfinedDir(root);
  }

  /** Apply top-most changes (from diffTrees of what is there to what should be). */
  async apply(changes: readonly Change[]): Promise<void> {
    const total = changes.length;
    let done = 0;
    this.applied = 0;
    this.undone = false;
    try {
      for (const c of changes) {
        try {
          if (c.old) {
            this.remove(c.path, c.old.mode === '40000' ? c.old.oid : null);
          }
          if (c.new) {
            if (c.new.mode === '40000') await this.writeDir(c.path, c.new.oid);
            else await this.writeEntry(c.path, c.new.mode, c.new.oid);
          }
        } catch (e) {
          // Only the system's refusals (a full disk, an I/O error) are undone: a refusal of ours (something
          // appeared at a path meanwhile) leaves what is there alone, that file included.
          if (isSystemRefusal(e)) this.undo(c);
          throw e;
        }
        this.applied++;
        done++;
        if (this.onProgress && (done % 500 === 0 || done === total)) this.onProgress({ done, total });
      }
    } finally {
      // The writer thread first: its writes go through the directory fds closed next.
      await this.writer?.close();
      this.writer = undefined;
      this.safe.close();
      this.partner?.close();
    }
  }

  /**
   * A change that failed half-way (a full disk while writing a directory) is undone as far as it can be: its
   * path removed, so the root holds the first `applied` changes and this path absent, a state the caller can
   * record (see writeView in api/sync.ts). A half-written directory left in place would later read as the user
   * having emptied it. `undone` says whether that worked.
   */
  private undo(c: Change): void {
    try {
      this.writer?.drain().catch(() => undefined);
      this.safe.removeTree(c.path);
      for (const side of [c.old, c.new]) {
        if (side?.mode === '40000') for (const { path } of walkTree(this.src, side.oid, c.path)) { this.index.delete(path); this.checked.delete(path); }
      }
      this.index.delete(c.path);
      this.checked.delete(c.path);
      this.undone = true;
    } catch { /* left as it is: the caller records nothing */ }
  }

  /** Make sure the directory `rel` is a real directory under root (not a symlink), once per run. */
  private checkDir(rel: string): void {
    if (rel === '' || this.checked.has(rel)) return;
    this.safe.assertDir(rel);
    this.checked.add(rel);
  }

  private remove(rel: string, dirTree: string | null): void {
    this.checkDir(dirname(rel));
    // The files removed and their inodes: one shared with the partner changes its ctime (copy-up.ts).
    let removed: Array<{ rel: string; ino: number }> | null = null;
    if (this.partner) {
      removed = [];
      const paths = dirTree ? [...walkTree(this.src, dirTree, rel)].filter((w) => w.entry.mode !== '40000').map((w) => w.path) : [rel];
      for (const p of paths) { const e = this.index.get(p); if (e && e.mode !== '40000') removed.push({ rel: p, ino: e.stat.ino }); }
    }
    const since = Date.now();
    try {
      this.safe.removeTree(rel);
    } catch (e) {
      if (e instanceof GlayerError) throw e;
      throw new IoError(rel, e as NodeJS.ErrnoException);
    }
    this.checked.delete(rel);
    this.index.delete(rel);
    if (dirTree) for (const { path } of walkTree(this.src, dirTree, rel)) { this.index.delete(path); this.checked.delete(path); }
    if (removed?.length) this.partner!.unlinked(removed, since);
  }

  private async writeDir(rel: string, tree: string): Promise<void> {
    this.checkDir(dirname(rel));
    this.mkdir(rel);
    const entries = [...walkTree(this.src, tree, rel)];
    if (entries.length >= THREADED_ENTRIES) return this.writeDirThreaded(entries);
    for (const { path, entry } of entries) {
      if (entry.mode === '40000') this.mkdir(path);
      else await this.writeEntry(path, entry.mode, entry.oid, true);
    }
  }

  /**
   * A large subtree: this thread makes the directories and reads the blobs, a FileWriter creates the small
   * files meanwhile. Directory fds evicted from the cache stay open until the writes handed over are done.
   */
  private async writeDirThreaded(entries: ReadonlyArray<{ path: string; entry: TreeEntry }>): Promise<void> {
    const writer = (this.writer ??= new FileWriter());
    let failed: { rel: string; err: NodeJS.ErrnoException } | null = null;
    // Blobs whose compressed bytes did not inflate on a writer: read again here (readSmall reports the damage, or
    // finds the content elsewhere).
    const again: Array<{ path: string; entry: TreeEntry }> = [];
    // Each directory's files on one writer, directories dealt to the writers in turn.
    const lanes = new Map<string, number>();
    const laneOf = (rel: string): number => {
      const dir = dirname(rel);
      let l = lanes.get(dir);
      if (l === undefined) { l = lanes.size % writer.width; lanes.set(dir, l); }
      return l;
    };
    for (const { path, entry } of entries) {
      if (failed) break;
      if (this.safe.pendingCloses() > 64) { await writer.drain(); this.safe.releasePending(); }
      if (entry.mode === '40000') { this.mkdir(path, false); continue; }
      if (this.shareFromPartner(path, entry.mode, entry.oid)) continue;
      const file = entry.mode === '100644' || entry.mode === '100755';
      const packed = file && this.blobs.packedData ? this.blobs.packedData(entry.oid) : null;
      const data = packed ? packed.comp : file ? this.blobs.readSmall(entry.oid) : null;
      if (!data) {
        // Symlinks, large files, submodule entries: the ordinary way, once nothing is in flight.
        await writer.drain();
        await this.writeEntry(path, entry.mode, entry.oid, true);
        continue;
      }
      const perm = fileMode(entry.mode);
      await writer.write(this.safe.path(path), data, perm, (perm & ~UMASK) !== perm, (r) => {
        if ('code' in r) {
          if (r.code === BAD_DATA) again.push({ path, entry }); else failed ??= { rel: path, err: r };
          return;
        }
        this.written++;
        this.record(path, entry.mode, entry.oid, r as Stat);
      }, packed ? packed.size : -1, laneOf(path));
    }
    await writer.drain();
    if (failed) {
      const { rel, err } = failed as { rel: string; err: NodeJS.ErrnoException };
      throw new IoError(rel, err);
    }
    for (const { path, entry } of again) await this.writeEntry(path, entry.mode, entry.oid, true);
  }

  private mkdir(rel: string, release = true): void {
    // With no write in flight, no path handed out earlier is still in use: evicted directory fds can go.
    if (release) this.safe.releasePending();
    const abs = this.safe.path(rel);
    // Changed under us (renamed or removed meanwhile): a clear error, not a crash.
    const lstat = (): fs.Stats => { try { return fs.lstatSync(abs); } catch (e) { throw new IoError(rel, e as NodeJS.ErrnoException); } };
    try { fs.mkdirSync(abs, { mode: 0o755 }); } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new IoError(rel, e as NodeJS.ErrnoException);
      // Something is already there: only a real directory will do.
      if (!lstat().isDirectory()) throw new UnsafePathError(rel, 'exists and is not a directory');
    }
    this.checked.add(rel);
    this.record(rel, '40000', '', statOf(lstat()));
  }

  private async writeEntry(rel: string, mode: Mode, oid: string, parentChecked = false): Promise<void> {
    if (!parentChecked) this.checkDir(dirname(rel));
    const abs = this.safe.path(rel);
    let st: fs.Stats;
    try {
      if (mode === '160000') throw new UnsafePathError(rel, 'submodule entries are not layer content');
      if (mode === '120000') {
        fs.symlinkSync(this.blobs.read(oid), abs);
        st = fs.lstatSync(abs);
      } else if (this.shareFromPartner(rel, mode, oid, abs)) {
        return;
      } else {
        const perm = fileMode(mode);
        const data = this.blobs.readSmall(oid);
        if (data) {
          // One file at a time on this thread: measured here, a pool of concurrent writes into one directory
          // doubled the kernel time (contention on the directory's lock) for the same wall time.
          // 'wx' (O_CREAT|O_EXCL) never writes through something that appeared at the path.
          const fd = fs.openSync(abs, 'wx', perm);
          try {
            let w = 0;
            while (w < data.length) w += fs.writeSync(fd, data, w, data.length - w);
            if ((perm & ~UMASK) !== perm) fs.fchmodSync(fd, perm);
            st = fs.fstatSync(fd);
          } finally {
            fs.closeSync(fd);
          }
          this.safe.releasePending();
        } else {
          await this.blobs.writeFile(oid, abs, perm);
          // Through an fd opened without following links: a symlink swapped in meanwhile is refused, not chmodded.
          const fd = fs.openSync(abs, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0));
          try {
            if ((perm & ~UMASK) !== perm) fs.fchmodSync(fd, perm);
            st = fs.fstatSync(fd);
          } finally {
            fs.closeSync(fd);
          }
        }
      }
    } catch (e) {
      // Object errors and refusals pass through as they are; only system errors become IoError.
      if ((e as NodeJS.ErrnoException).code && !(e instanceof GlayerError)) throw new IoError(rel, e as NodeJS.ErrnoException);
      throw e;
    }
    this.written++;
    this.record(rel, mode, oid, statOf(st));
  }

  /** Make `rel` share the partner's file at the same path when it holds the blob (copy-up.ts): true if done. */
  private shareFromPartner(rel: string, mode: Mode, oid: string, abs?: Buffer): boolean {
    if (!this.partner || (mode !== '100644' && mode !== '100755')) return false;
    let shared;
    try {
      shared = this.partner.share(rel, mode, oid, abs ?? this.safe.path(rel), this.index);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code && !(e instanceof GlayerError)) throw new IoError(rel, e as NodeJS.ErrnoException);
      throw e;
    }
    if (!shared) return false;
    // The mode is the partner's (the same inode): it was checked to match, and is never chmodded here.
    this.written++;
    this.record(rel, mode, oid, shared.stat, shared.racy);
    return true;
  }

  private record(rel: string, mode: Mode, oid: string, stat: Stat, racy = false): void {
    // We wrote this content ourselves; saveIndex marks it racy if it is too recent when the index is saved.
    this.index.set(rel, { mode, oid, stat, racy });
  }
}
