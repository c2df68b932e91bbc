/**
 * Copy-up without a second copy. The view and the writable layer are both glayer's, so when one of them must
 * hold a file that the other already holds at the same path (a file edited or added in the view is copied up
 * into the writable layer; a file dropped into the writable layer is brought into the view), the two paths share
 * the file's bytes instead of copying them: a hardlink where both are on one file system, else a reflink
 * (copy-on-write clone; `COPYFILE_FICLONE`), else a copy. With a hardlink the two paths are one inode, so an
 * in-place edit through either path is the same change, which is what overlayfs means too (the view shows the
 * upper file itself); an editor's save-by-rename gives the edited path a new inode and breaks the link, and the
 * next reconcile sees one side changed and records it (the other side's ctime changed too: it is rehashed once,
 * found unchanged, and kept).
 *
 * Only the same path is ever shared (never another path holding equal bytes: an in-place edit of one must not
 * change the other), and only a file proved to hold the blob: its index entry says so and its lstat still
 * matches that entry (a racy entry, which the stat cannot prove, is hashed after linking).
 *
 * A link changes the shared inode's ctime, and so does removing one of its names later (emptying the writable
 * layer after a commit). Either would make the other side's stat cache miss and rehash every shared file on the
 * next scan, so the partner's index entry is brought up to date here, but only when nothing else can have
 * changed: same inode, same mtime and size, same executable bit, and a ctime no older than the operation.
 * Anything else is left as it is, and the next scan hashes that file again (never a missed change).
 */
import * as fs from '../sys/fs.js';
import { join } from 'node:path';
import type { Mode } from '../core/tree.js';
import { RACY_MS, statOf, type Index, type IndexEntry, type Stat } from './index-file.js';
import { ConfinedDir } from './safe.js';
import { hashFile } from './scan.js';

export interface Shared {
  /** The stat of the file now at the destination (its own inode for a clone or copy). */
  stat: Stat;
  /** The stat cannot prove the content (the next scan hashes it again). */
  racy: boolean;
  /** How the bytes were shared. */
  how: 'link' | 'clone';
}

/** Counts of how files were brought over (for tests and the bench). */
export interface ShareCounts { link: number; clone: number; refreshed: number }

/**
 * The other side (the view, when writing the writable layer; the writable layer, when writing the view): its
 * root and the index that describes it, kept up to date when a link changes its files' ctime.
 */
export class LinkPartner {
  private readonly safe: ConfinedDir;
  /** False once links proved impossible here (another file system): everything then goes the ordinary way. */
  private linkable: boolean;
  /** The partner's index was changed (its owner must save it). */
  touched = false;
  readonly counts: ShareCounts = { link: 0, clone: 0, refreshed: 0 };

  constructor(readonly root: string, readonly index: Index, ownRoot: string) {
    this.safe = new ConfinedDir(root);
    let same = false;
    try { same = fs.statSync(root).dev === fs.statSync(ownRoot).dev; } catch { /* either is missing */ }
    this.linkable = same;
  }

  /** The partner's entry for `rel` and its file's lstat, when that file provably holds blob `oid` as `mode`. */
  private holder(rel: string, mode: Mode, oid: string): { e: IndexEntry; st: fs.Stats; abs: Buffer } | null {
    const e = this.index.get(rel);
    if (!e || e.oid !== oid || e.mode !== mode) return null;
    let abs: Buffer;
    let st: fs.Stats | undefined;
    try {
      abs = this.safe.path(rel);
      st = fs.lstatSync(abs, { throwIfNoEntry: false });
    } catch { return null; } // a directory on the way went away or is no longer a real directory
    if (!st || !st.isFile() || st.ino !== e.stat.ino || st.mtimeMs !== e.stat.mtime || st.size !== e.stat.size) return null;
    if (execBit(st) !== (mode === '100755')) return null;
    if (st.ctimeMs !== e.stat.ctime) {
      // A file with several names (a hardlink in the tree): linking one of them moved the ctime of all. That
      // is still proof when the entry had the ctime the inode had when it was proved, and nothing moved it
      // since our last link.
      const k = this.linked.get(st.ino);
      if (!k || k.from !== e.stat.ctime || k.to !== st.ctimeMs) return null;
    }
    return { e, st, abs };
  }

  /** Inodes linked here: the ctime each had when proved unchanged, the ctime our last link gave it, its paths. */
  private readonly linked = new Map<number, { from: number; to: number; rels: string[] }>();

  /**
   * Create `dest` (absent, a confined path) holding what the partner's file at the same path `rel` holds, as
   * blob `oid` with `mode`, by sharing its bytes: a hardlink, else a clone (a reflink, or a copy where the file
   * system has none). Null when the partner holds no such file or it cannot be shared (the caller writes the
   * blob the ordinary way).
   */
  share(rel: string, mode: Mode, oid: string, dest: Buffer, own?: Index): Shared | null {
    if (mode !== '100644' && mode !== '100755') return null;
    if (!this.linkable) return null;
    const h = this.holder(rel, mode, oid);
    if (!h) return null;
    let how: Shared['how'] = 'link';
    try {
      fs.linkSync(h.abs, dest);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw e;
      if (code === 'EXDEV') { this.linkable = false; return null; }
      // Refused for this file (protected_hardlinks: not the caller's file; too many links; no hardlinks on
      // this file system): a clone still shares the bytes where the file system can.
      if (code !== 'EPERM' && code !== 'EMLINK' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') return null;
      how = 'clone';
      try {
        fs.copyFileSync(h.abs, dest, fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE);
      } catch (e2) {
        if ((e2 as NodeJS.ErrnoException).code === 'EEXIST') throw e2;
        fs.rmSync(dest, { force: true });
        return null;
      }
    }
    let st: fs.Stats;
    try { st = fs.lstatSync(dest); } catch { return null; }
    // The source may have changed between its lstat and the link: then the stat proves nothing.
    const src = how === 'link' ? st : fs.lstatSync(h.abs, { throwIfNoEntry: false });
    let racy = false;
    if (h.e.racy || !src || src.ino !== h.st.ino || src.mtimeMs !== h.st.mtimeMs || src.size !== h.st.size) {
      // Hash what is there: it must be the blob, or this was not a copy-up of it.
      const hashedAt = Date.now();
      let ok = false;
      try { ok = hashFile(dest, st.size) === oid; } catch { /* gone */ }
      if (!ok) { fs.rmSync(dest, { force: true }); return null; }
      // Proved now; a write after this hash moves the mtime unless it falls in the tick of the last one.
      racy = st.mtimeMs >= hashedAt - RACY_MS;
    }
    if (how === 'link') {
      // The shared inode's ctime moved: the partner's entry follows, so its next scan does not rehash it; and so
      // do the entries of its other names linked before (both sides), which this link moved too.
      const stat = statOf(st);
      this.index.set(rel, { ...h.e, stat, racy });
      const k = this.linked.get(st.ino) ?? { from: h.e.stat.ctime, to: 0, rels: [] };
      for (const r of k.rels) {
        for (const index of own ? [this.index, own] : [this.index]) {
          const o = index.get(r);
          if (o && o.stat.ino === st.ino && o.stat.ctime === k.to) index.set(r, { ...o, stat });
        }
      }
      k.to = st.ctimeMs;
      k.rels.push(rel);
      this.linked.set(st.ino, k);
      this.touched = true;
      this.counts.link++;
    } else {
      this.counts.clone++;
    }
    return { stat: statOf(st), racy, how };
  }

  /**
   * After files were removed from the other side: a removed name that shared its inode with the partner's file
   * at the same path changed that file's ctime. Bring the partner's entry up to date when nothing else about
   * the file changed. `removed`: each removed path with the inode it had; `since`: Date.now() before removing.
   */
  unlinked(removed: ReadonlyArray<{ rel: string; ino: number }>, since: number): void {
    for (const { rel, ino } of removed) {
      const e = this.index.get(rel);
      if (!e || e.mode === '40000' || e.mode === '120000' || e.stat.ino !== ino) continue;
      let st: fs.Stats | undefined;
      try { st = fs.lstatSync(this.safe.path(rel), { throwIfNoEntry: false }); } catch { continue; }
      if (!st || !st.isFile() || st.ino !== ino || st.mtimeMs !== e.stat.mtime || st.size !== e.stat.size) continue;
      if (execBit(st) !== (e.mode === '100755') || st.ctimeMs === e.stat.ctime) continue;
      // The file timestamps come from the kernel's coarse clock, which may lag Date.now() by a tick.
      if (st.ctimeMs < since - RACY_MS) continue;
      this.index.set(rel, { ...e, stat: statOf(st) });
      this.touched = true;
      this.counts.refreshed++;
    }
  }

  /** Release the directory fds (the partner can be used again after; they are reopened on demand). */
  close(): void {
    this.safe.close();
  }
}

function execBit(st: fs.Stats): boolean {
  return (st.mode & 0o100) !== 0;
}

/**
 * Stop sharing: every file of `root` (described by `index`) that is one inode with the file at the same path
 * under `other` gets its own copy (a clone where the file system can), so that `other` can be left alone
 * (a view detached by a mount-view elsewhere) without its edits reaching `root`. Returns how many were copied.
 * Each copy is made in `tmpDir` (on the same file system; a leftover `unshare.tmp<pid>` there is removed by
 * `glayer fsck`) and renamed over the shared name, so a kill leaves the shared file or the copy, never half of one.
 */
export function unshare(root: string, index: Index, other: string, tmpDir: string): number {
  const safe = new ConfinedDir(root);
  const theirs = new ConfinedDir(other);
  let n = 0;
  try {
    for (const [rel, oid, link] of index.files()) {
      if (link) continue;
      let st: fs.Stats | undefined;
      let ot: fs.Stats | undefined;
      let abs: Buffer;
      try {
        abs = safe.path(rel);
        st = fs.lstatSync(abs, { throwIfNoEntry: false });
        if (!st || !st.isFile() || st.nlink < 2) continue;
        ot = fs.lstatSync(theirs.path(rel), { throwIfNoEntry: false });
      } catch { continue; }
      if (!ot || ot.ino !== st.ino || ot.dev !== st.dev) continue;
      const tmp = join(tmpDir, `unshare.tmp${process.pid}`);
      fs.rmSync(tmp, { force: true });
      fs.copyFileSync(abs, tmp, fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE);
      // The copy keeps the mode (copyFile sets it); the owner and the times are kept too where we may.
      try { if (process.getuid?.() === 0) fs.chownSync(tmp, st.uid, st.gid); fs.utimesSync(tmp, st.atime, st.mtime); } catch { /* best effort */ }
      const after = fs.lstatSync(abs);
      try { fs.renameSync(tmp, abs); } catch (e) { fs.rmSync(tmp, { force: true }); throw e; }
      const now = fs.lstatSync(abs);
      const e = index.get(rel);
      // Changed while it was copied: the stat proves nothing, the next scan hashes it.
      const changed = after.ino !== st.ino || after.mtimeMs !== st.mtimeMs || after.size !== st.size;
      if (e && e.oid === oid) index.set(rel, { ...e, stat: statOf(now), racy: e.racy || changed });
      n++;
    }
  } finally {
    safe.close();
    theirs.close();
  }
  return n;
}
