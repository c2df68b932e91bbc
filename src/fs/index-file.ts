/**
 * The stat cache of a directory glayer keeps in sync (the view, the writable layer), like git's index: for each
 * path its mode, oid and the lstat fields that tell whether it changed. Directories are listed too, with their
 * tree oid and inode (the inode tells a directory deleted and re-created from one that was kept), so the file
 * describes a whole tree by itself and loading it rebuilds that tree without hashing anything.
 *
 * Format: JSON with one array per field (columns), paths in pre-order, byte order (the order of walkTree).
 * V8 parses that far faster than any record format we could parse in JS. Written to a temporary file,
 * fsynced and renamed; a file that does not parse is treated as absent (everything is hashed again).
 */
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import type { Mode, TreeEntry, TreeSink, TreeSource } from '../core/tree.js';
import { walkTree } from '../core/tree.js';
import { basename, dirname as parentOf } from '../core/path.js';

/** A stat this close (ms) to the moment it was taken cannot prove a later scan that nothing changed. */
export const RACY_MS = 20;

export interface Stat { mtime: number; ctime: number; size: number; ino: number }

export interface IndexEntry {
  mode: Mode;
  /** Blob oid for files and symlinks; tree oid for directories. */
  oid: string;
  stat: Stat;
  /** Modified too close to when it was read for the stat to prove it unchanged later: hash again. */
  racy: boolean;
}

export type Index = Map<string, IndexEntry>;

/** A sink that can take a tree whose oid is already known (no hashing). */
export interface AdoptingSink extends TreeSink {
  adoptTree?(oid: string, entries: readonly TreeEntry[]): void;
}

interface IndexFile {
  v: 2;
  root: string | null;
  p: string[]; m: string[]; o: string[];
  t: number[]; c: number[]; s: number[]; i: number[]; r: number[];
}

const NO_STAT: Stat = { mtime: 0, ctime: 0, size: -1, ino: 0 };

export function saveIndex(file: string, src: TreeSource, root: string | null, index: Index): void {
  // git's racy-clean rule: a stat taken in the same clock tick as the index is written proves nothing.
  const fresh = Date.now() - RACY_MS;
  const f: IndexFile = { v: 2, root, p: [], m: [], o: [], t: [], c: [], s: [], i: [], r: [] };
  if (root) {
    for (const { path, entry } of walkTree(src, root)) {
      const e = index.get(path);
      const st = e?.stat ?? NO_STAT;
      // An entry with no stat, or one that does not match the tree, is racy: the next scan hashes it again.
      const racy = !e || e.racy || st.ctime >= fresh || e.mode !== entry.mode || (entry.mode !== '40000' && e.oid !== entry.oid);
      f.p.push(path); f.m.push(entry.mode); f.o.push(entry.oid);
      f.t.push(st.mtime); f.c.push(st.ctime); f.s.push(st.size); f.i.push(st.ino); f.r.push(racy ? 1 : 0);
    }
  }
  const tmp = `${file}.tmp${process.pid}`;
  fs.mkdirSync(dirname(file), { recursive: true });
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeFileSync(fd, JSON.stringify(f), 'utf8');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** Load an index, giving its trees to `sink`. Returns the root tree (null: nothing recorded). */
export function loadIndex(file: string, sink: AdoptingSink): { root: string | null; index: Index } {
  const index: Index = new Map();
  let f: IndexFile;
  try { f = JSON.parse(fs.readFileSync(file, 'utf8')) as IndexFile; } catch { return { root: null, index }; }
  const n = f?.p?.length;
  if (f?.v !== 2 || typeof f.root !== 'string' || ![f.m, f.o, f.t, f.c, f.s, f.i, f.r].every((a) => Array.isArray(a) && a.length === n)) {
    return { root: null, index };
  }
  const children = new Map<string, TreeEntry[]>([['', []]]);
  for (let k = 0; k < n; k++) {
    const path = f.p[k];
    const mode = f.m[k] as Mode;
    if (mode === '40000') children.set(path, []);
    const list = children.get(parentOf(path));
    if (!list) return { root: null, index: new Map() }; // not in pre-order: damaged, start over
    list.push({ name: basename(path), mode, oid: f.o[k] });
    index.set(path, { mode, oid: f.o[k], stat: { mtime: f.t[k], ctime: f.c[k], size: f.s[k], ino: f.i[k] }, racy: f.r[k] === 1 });
  }
  for (const [path, entries] of children) {
    const oid = path === '' ? f.root : index.get(path)!.oid;
    if (sink.adoptTree) sink.adoptTree(oid, entries);
    else if (sink.writeTree(entries) !== oid) return { root: null, index: new Map() };
  }
  return { root: f.root, index };
}

export function indexPath(gitdir: string, name: string): string {
  return join(gitdir, 'glayer', `${name}.index`);
}
