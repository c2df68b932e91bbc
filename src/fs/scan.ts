/**
 * Scan a directory into a tree, like `git status` does a work tree: lstat everything, and hash a file only when
 * its stat differs from the index entry (or that entry is racy). Symlinks are read, never followed. The walk
 * is iterative (a tree 10,000 directories deep needs no deep stack) and each directory's entries are sorted in
 * byte order (core/tree.ts).
 */
import * as fs from '../sys/fs.js';
import { blobHasher, hashObject } from '../core/hash.js';
import { join, nameProblem } from '../core/path.js';
import { EMPTY_BLOB, type Mode, type TreeEntry, type TreeSink } from '../core/tree.js';
import { isReserved } from '../core/whiteout.js';
import { IoError, isAbsent } from '../errors.js';
import { Columns, DIR_CODE, Index, MODES, RACY_MS, statOf, type IndexEntry, type Stat } from './index-file.js';
import { fsPath } from './paths.js';

const CHUNK = 1 << 20;

export interface ScanOptions {
  /** Keep `.wh.*` names as entries (the writable layer) instead of setting them aside (the view). */
  markers: boolean;
  /** The root tree the index `prev` describes, and its number of entries: an unchanged directory keeps its tree. */
  prevRoot?: string | null;
  prevRootCount?: number;
  /**
   * Metadata too (the view): devices and fifos become entries (an empty file; their type is metadata), and every
   * entry whose stat did not prove it unchanged is reported in `observed` with its old and new stat.
   */
  meta?: boolean;
}

/** An entry the scan looked at again (its ctime, or more, changed; or it is new), for metadata. */
export interface Observed {
  /** Its lstat now, and as the index had it (null: not in the index, or not the same kind of entry). */
  stat: Stat;
  prev: Stat | null;
  /** The oid the index had for it (with `prev`). */
  prevOid: string | null;
  nlink: number;
  rdev: number;
}

export interface ScanResult {
  /** Tree of what is there (null: the directory does not exist). */
  root: string | null;
  index: Index;
  /** Files whose content was read and hashed (the rest were proved unchanged by their stat). */
  hashed: number;
  /** Entries whose stat did not prove them unchanged (hashed, or gone before they could be). */
  restat: number;
  /** User files that a layer cannot hold: names starting with `.wh.` (view only) or otherwise invalid. */
  unrepresentable: string[];
  /** Special files (sockets, fifos, devices), which layers do not hold. */
  skipped: string[];
  /**
   * Directories that were directories in the old index too, with another inode: deleted and re-created since
   * (overlayfs records such a directory as opaque).
   */
  recreated: Set<string>;
  /** With `meta`: entries looked at again, by path ('' the root). */
  observed: Map<string, Observed>;
}

/** Past this many bytes a directory is reached through an fd of its own, so trees deeper than PATH_MAX scan. */
const LONG_PATH = 2048;
const PROC_FD = (() => { try { return fs.statSync('/proc/self/fd').isDirectory(); } catch { return false; } })();
const DIR_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_DIRECTORY ?? 0) | (fs.constants.O_NOFOLLOW ?? 0);

interface Frame {
  rel: string;
  /** The directory's path: bytes, and as a string too when it is ASCII (a string path is cheaper to pass). */
  abs: Buffer; ascii: string | null;
  /** The directory's names in byte order (latin1 strings, one char a byte), and the next one to look at. */
  names: string[]; i: number;
  /** The tree's entries so far: an entry, or the position in the old index of one that is unchanged. */
  out: Array<TreeEntry | number>;
  stat: Stat;
  /** This directory's position in the old index (-1: the root, or not there), and the cursor over its entries. */
  at: number; next: number; end: number;
  /** An fd this frame opened for its directory (a long path), closed when the frame ends. */
  fd?: number;
  /** Wall-clock time before this directory's entries were stat'ed (for the racy rule). */
  now: number;
  /** Every entry so far was proved unchanged against the index (so the directory's tree may be too). */
  same: boolean;
}


/** A directory's names in byte order (the order of the index and of trees), as latin1 strings (a byte a char). */
function readdir(abs: Buffer, rel: string): string[] {
  try {
    return fs.readdirSync(abs, { encoding: 'latin1' }).sort();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw new IoError(rel, e as NodeJS.ErrnoException);
  }
}

const ASCII = /^[\x00-\x7f]*$/;

const EMPTY_COLUMNS = Columns.fromEntries([]);

/**
 * The scan is a sorted merge, in byte order, of each directory's names with that directory's entries in the old
 * index (read by position, see index-file.ts): an entry whose stat matches is kept by its position, with no
 * object made for it, and a directory all of whose entries were kept keeps its tree oid (git's cache-tree).
 */
export function scanTree(root: string, prev: Index, sink: TreeSink, opts: ScanOptions): ScanResult {
  const cols = prev.columns ?? (prev.size ? Columns.fromEntries(prev) : EMPTY_COLUMNS);
  const kept = new Uint8Array(cols.n);
  const added = new Map<string, IndexEntry>();
  const result: ScanResult = { root: null, index: new Index(), hashed: 0, restat: 0, unrepresentable: [], skipped: [], recreated: new Set(), observed: new Map() };
  let rootStat: fs.Stats;
  // Only a root that is not there is gone; an I/O error or a refusal is not "the view was deleted".
  try { rootStat = fs.lstatSync(root); } catch (e) { if (isAbsent(e)) return result; throw new IoError(root, e as NodeJS.ErrnoException); }
  if (!rootStat.isDirectory()) return result;
  const buf = Buffer.allocUnsafe(CHUNK);
  const { names: oldNames, modes, stats, racy: oldRacy, desc } = cols;
  const rootAbs = fsPath(root, '');
  const frames: Frame[] = [{
    rel: '', abs: rootAbs, ascii: ASCII.test(root) ? root : null, names: readdir(rootAbs, ''), i: 0, out: [], stat: statOf(rootStat), same: true, now: Date.now(),
    at: -1, next: 0, end: cols.n,
  }];
  // Like git's cache-tree: a directory whose entries all matched the index keeps its recorded tree oid.
  const unchangedTree = (f: Frame): string | null => {
    if (!f.same || f.next < f.end) return null;
    if (f.rel === '') return opts.prevRoot && opts.prevRootCount === f.out.length ? opts.prevRoot : null;
    return f.at >= 0 && cols.counts[f.at] === f.out.length ? cols.oid(f.at) : null;
  };
  const entryAt = (k: number): TreeEntry => ({ name: oldNames[k], mode: MODES[modes[k]], oid: cols.oid(k) });
  const observe = opts.meta ? (rel: string, k: number, st: Stat, nlink: number, rdev: number): void => {
    result.observed.set(rel, { stat: st, prev: k >= 0 ? cols.entry(k).stat : null, prevOid: k >= 0 ? cols.oid(k) : null, nlink, rdev });
  } : null;
  try {
  while (frames.length) {
    const f = frames[frames.length - 1];
    if (f.i >= f.names.length) {
      frames.pop();
      if (f.fd !== undefined) { fs.closeSync(f.fd); f.fd = undefined; }
      let oid = unchangedTree(f);
      if (oid === null) oid = sink.writeTree(f.out.map((e) => (typeof e === 'number' ? entryAt(e) : e)));
      // The root directory's own metadata comes from manifests only (the view's root is where the user put it).
      if (observe && f.rel !== '' && !(f.at >= 0 && sameStat(stats, f.at, f.stat))) observe(f.rel, f.at, f.stat, 2, 0);
      if (frames.length === 0) { result.root = oid; break; }
      const parent = frames[frames.length - 1];
      const name = f.rel.slice(f.rel.lastIndexOf('/') + 1);
      if (f.at >= 0 && cols.oid(f.at) === oid && sameStat(stats, f.at, f.stat)) {
        kept[f.at] = 1;
        parent.out.push(f.at);
      } else {
        if (f.at < 0 || cols.oid(f.at) !== oid) parent.same = false;
        parent.out.push({ name, mode: '40000', oid });
        added.set(f.rel, { mode: '40000', oid, stat: f.stat, racy: false, count: f.out.length });
      }
      continue;
    }
    const name = f.names[f.i++];
    // The merge: old entries before this name are gone from the directory.
    while (f.next < f.end && oldNames[f.next] < name) { f.same = false; f.next += 1 + desc[f.next]; }
    let k = -1;
    if (f.next < f.end && oldNames[f.next] === name) { k = f.next; f.next += 1 + desc[k]; }
    const rel = join(f.rel, name);
    if (nameProblem(name) || (!opts.markers && isReserved(name))) { result.unrepresentable.push(rel); f.same = false; continue; }
    let abs: string | Buffer;
    if (f.ascii !== null && ASCII.test(name)) abs = f.ascii + '/' + name;
    else {
      abs = Buffer.allocUnsafe(f.abs.length + 1 + name.length);
      f.abs.copy(abs, 0);
      abs[f.abs.length] = 0x2f;
      abs.write(name, f.abs.length + 1, 'latin1');
    }
    let st: fs.Stats | undefined;
    try { st = fs.lstatSync(abs, { throwIfNoEntry: false }); } catch (e) {
      throw new IoError(rel, e as NodeJS.ErrnoException);
    }
    if (!st) { f.same = false; continue; } // vanished during the scan: it is gone
    if (st.isDirectory()) {
      let dirPath = typeof abs === 'string' ? Buffer.from(abs, 'latin1') : abs;
      let ascii = typeof abs === 'string' ? abs : null;
      let fd: number | undefined;
      if (dirPath.length > LONG_PATH && PROC_FD) {
        // The parent's path is short by construction; hold this directory by an fd and name it through /proc.
        try { fd = fs.openSync(abs, DIR_FLAGS); } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') { f.same = false; continue; }
          throw new IoError(rel, e as NodeJS.ErrnoException);
        }
        ascii = `/proc/self/fd/${fd}`;
        dirPath = Buffer.from(ascii);
      }
      const at = k >= 0 && modes[k] === DIR_CODE ? k : -1;
      if (at >= 0 && stats[4 * at + 3] !== st.ino) result.recreated.add(rel);
      frames.push({
        rel, abs: dirPath, ascii, names: readdir(dirPath, rel), i: 0, out: [], stat: statOf(st), same: true, fd, now: Date.now(),
        at, next: at + 1, end: at < 0 ? 0 : at + 1 + desc[at],
      });
      continue;
    }
    let mode: Mode;
    let special = false;
    if (st.isSymbolicLink()) mode = '120000';
    else if (st.isFile()) mode = st.mode & 0o100 ? '100755' : '100644';
    else if (opts.meta && (st.isFIFO() || st.isCharacterDevice() || st.isBlockDevice())) { mode = '100644'; special = true; }
    else { result.skipped.push(rel); f.same = false; continue; }
    // ctime follows both content and mode changes. `f.now` was taken before this lstat, which only makes
    // more entries racy, never fewer.
    const racy = st.ctimeMs >= f.now - RACY_MS;
    let oid: string | null = null;
    const s = 4 * k;
    if (k >= 0 && !oldRacy[k] && MODES[modes[k]] === mode && stats[s] === st.mtimeMs && stats[s + 1] === st.ctimeMs && stats[s + 2] === st.size && stats[s + 3] === st.ino) {
      if (!racy) {
        // The common case, free of allocations: the old entry is kept by its position.
        kept[k] = 1;
        f.out.push(k);
        continue;
      }
      oid = cols.oid(k);
    } else {
      result.restat++;
      f.same = false;
      try {
        // A device or fifo is an empty file in the tree (never opened: a fifo's open waits for a writer).
        oid = special ? EMPTY_BLOB : mode === '120000' ? hashObject('blob', fs.readlinkSync(abs, { encoding: 'buffer' })) : hashFile(abs, st.size, buf);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw new IoError(rel, e as NodeJS.ErrnoException);
      }
      result.hashed++;
    }
    f.out.push({ name, mode, oid });
    const stat = statOf(st);
    added.set(rel, { mode, oid, stat, racy });
    if (observe) observe(rel, k >= 0 && MODES[modes[k]] === mode ? k : -1, stat, st.nlink, st.rdev);
  }
  } finally {
    for (const f of frames) if (f.fd !== undefined) fs.closeSync(f.fd);
  }
  result.index = new Index(cols, kept, added);
  return result;
}

function sameStat(stats: Float64Array, k: number, st: Stat): boolean {
  const s = 4 * k;
  return stats[s] === st.mtime && stats[s + 1] === st.ctime && stats[s + 2] === st.size && stats[s + 3] === st.ino;
}

/** Hash a file's content as a blob; reads in chunks so a large file costs no memory. */
export function hashFile(abs: Buffer | string, size: number, buf = Buffer.allocUnsafe(CHUNK)): string {
  const fd = fs.openSync(abs, 'r');
  try {
    if (size < CHUNK) {
      const data = Buffer.allocUnsafe(size);
      let got = 0;
      while (got < size) { const n = fs.readSync(fd, data, got, size - got, got); if (n === 0) break; got += n; }
      return hashObject('blob', got === size ? data : data.subarray(0, got));
    }
    // Large: stream through the hash. The size header must be right, so re-hash if the file changed size.
    const h = blobHasher(size);
    let pos = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      pos += n;
    }
    if (pos !== size) return hashFile(abs, pos, buf);
    return h.digest('hex');
  } finally {
    fs.closeSync(fd);
  }
}
