/**
 * Scan a directory into a tree, like `git status` does a work tree: lstat everything, and hash a file only when
 * its stat differs from the index entry (or that entry is racy). Symlinks are read, never followed. The walk
 * is iterative (a tree 10,000 directories deep needs no deep stack) and each directory's entries are sorted in
 * byte order (core/tree.ts).
 */
import * as fs from 'node:fs';
import { blobHasher, hashObject } from '../core/hash.js';
import { join, nameProblem } from '../core/path.js';
import { byName, type Mode, type TreeEntry, type TreeSink } from '../core/tree.js';
import { isReserved } from '../core/whiteout.js';
import { IoError } from '../errors.js';
import { RACY_MS, type Index, type IndexEntry, type Stat } from './index-file.js';
import { fsPath } from './paths.js';

const CHUNK = 1 << 20;

export interface ScanOptions {
  /** Keep `.wh.*` names as entries (the writable layer) instead of setting them aside (the view). */
  markers: boolean;
  /** The root tree the index `prev` describes, and its number of entries: an unchanged directory keeps its tree. */
  prevRoot?: string | null;
  prevRootCount?: number;
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
}

/** Past this many bytes a directory is reached through an fd of its own, so trees deeper than PATH_MAX scan. */
const LONG_PATH = 2048;
const PROC_FD = (() => { try { return fs.statSync('/proc/self/fd').isDirectory(); } catch { return false; } })();
const DIR_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_DIRECTORY ?? 0) | (fs.constants.O_NOFOLLOW ?? 0);

interface Frame {
  rel: string; abs: Buffer; names: Buffer[]; i: number; out: TreeEntry[]; stat: Stat;
  /** An fd this frame opened for its directory (a long path), closed when the frame ends. */
  fd?: number;
  /** Wall-clock time before this directory's entries were stat'ed (for the racy rule). */
  now: number;
  /** Every entry so far was proved unchanged against the index (so the directory's tree may be too). */
  same: boolean;
}

function statOf(st: fs.Stats): Stat {
  return { mtime: st.mtimeMs, ctime: st.ctimeMs, size: st.size, ino: st.ino };
}

function readdir(abs: Buffer, rel: string): Buffer[] {
  try {
    return fs.readdirSync(abs, { encoding: 'buffer' });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw new IoError(rel, e as NodeJS.ErrnoException);
  }
}

export function scanTree(root: string, prev: Index, sink: TreeSink, opts: ScanOptions): ScanResult {
  const result: ScanResult = { root: null, index: new Map(), hashed: 0, restat: 0, unrepresentable: [], skipped: [] };
  let rootStat: fs.Stats;
  try { rootStat = fs.lstatSync(root); } catch { return result; }
  if (!rootStat.isDirectory()) return result;
  const buf = Buffer.allocUnsafe(CHUNK);
  const frames: Frame[] = [{ rel: '', abs: fsPath(root, ''), names: readdir(fsPath(root, ''), ''), i: 0, out: [], stat: statOf(rootStat), same: true, now: Date.now() }];
  // Like git's cache-tree: a directory whose entries all matched the index keeps its recorded tree oid.
  const unchangedTree = (f: Frame): string | null => {
    if (!f.same) return null;
    // Every entry matched one of the index: if the counts agree too, the names are the same.
    const before = f.rel === '' ? opts.prevRoot : prev.get(f.rel)?.oid;
    const count = f.rel === '' ? opts.prevRootCount : prev.get(f.rel)?.count;
    return before && count === f.out.length ? before : null;
  };
  try {
  while (frames.length) {
    const f = frames[frames.length - 1];
    if (f.i >= f.names.length) {
      frames.pop();
      if (f.fd !== undefined) { fs.closeSync(f.fd); f.fd = undefined; }
      let oid = unchangedTree(f);
      if (oid === null) {
        f.out.sort(byName);
        oid = sink.writeTree(f.out);
      }
      if (frames.length === 0) { result.root = oid; break; }
      const parent = frames[frames.length - 1];
      parent.out.push({ name: f.rel.slice(f.rel.lastIndexOf('/') + 1), mode: '40000', oid });
      const before = prev.get(f.rel);
      if (!before || before.mode !== '40000' || before.oid !== oid) parent.same = false;
      result.index.set(f.rel, { mode: '40000', oid, stat: f.stat, racy: false });
      continue;
    }
    const nameBuf = f.names[f.i++];
    const name = nameBuf.toString('latin1');
    const rel = join(f.rel, name);
    if (nameProblem(name) || (!opts.markers && isReserved(name))) { result.unrepresentable.push(rel); f.same = false; continue; }
    const abs = Buffer.allocUnsafe(f.abs.length + 1 + nameBuf.length);
    f.abs.copy(abs, 0);
    abs[f.abs.length] = 0x2f;
    nameBuf.copy(abs, f.abs.length + 1);
    let st: fs.Stats | undefined;
    try { st = fs.lstatSync(abs, { throwIfNoEntry: false }); } catch (e) {
      throw new IoError(rel, e as NodeJS.ErrnoException);
    }
    if (!st) { f.same = false; continue; } // vanished during the scan: it is gone
    if (st.isDirectory()) {
      let dirPath = abs;
      let fd: number | undefined;
      if (abs.length > LONG_PATH && PROC_FD) {
        // The parent's path is short by construction; hold this directory by an fd and name it through /proc.
        try { fd = fs.openSync(abs, DIR_FLAGS); } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') { f.same = false; continue; }
          throw new IoError(rel, e as NodeJS.ErrnoException);
        }
        dirPath = Buffer.from(`/proc/self/fd/${fd}`);
      }
      frames.push({ rel, abs: dirPath, names: readdir(dirPath, rel), i: 0, out: [], stat: statOf(st), same: true, fd, now: Date.now() });
      continue;
    }
    let mode: Mode;
    if (st.isSymbolicLink()) mode = '120000';
    else if (st.isFile()) mode = st.mode & 0o100 ? '100755' : '100644';
    else { result.skipped.push(rel); f.same = false; continue; }
    // ctime follows both content and mode changes. `f.now` was taken before this lstat, which only makes
    // more entries racy, never fewer.
    const racy = st.ctimeMs >= f.now - RACY_MS;
    const old = prev.get(rel);
    let oid: string | null = null;
    if (old && !old.racy && old.mode === mode && old.stat.mtime === st.mtimeMs && old.stat.ctime === st.ctimeMs && old.stat.size === st.size && old.stat.ino === st.ino) {
      oid = old.oid;
      if (!racy) {
        // The common case, kept free of allocations but the tree entry: the index entry is reused as it is.
        f.out.push({ name, mode, oid });
        result.index.set(rel, old);
        continue;
      }
    } else {
      result.restat++;
      f.same = false;
      try {
        oid = mode === '120000' ? hashObject('blob', fs.readlinkSync(abs, { encoding: 'buffer' })) : hashFile(abs, st.size, buf);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw new IoError(rel, e as NodeJS.ErrnoException);
      }
      result.hashed++;
    }
    f.out.push({ name, mode, oid });
    const entry: IndexEntry = { mode, oid, stat: statOf(st), racy };
    result.index.set(rel, entry);
  }
  } finally {
    for (const f of frames) if (f.fd !== undefined) fs.closeSync(f.fd);
  }
  return result;
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
