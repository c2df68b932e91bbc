/**
 * The stat cache of a directory glayer keeps in sync (the view, the writable layer), like git's index: for each
 * path its mode, oid and the lstat fields that tell whether it changed. Directories are listed too, with their
 * tree oid and inode (the inode tells a directory deleted and re-created from one that was kept), so the file
 * describes a whole tree by itself and loading it rebuilds that tree without hashing anything.
 *
 * Format: JSON with one array per field (columns), paths in pre-order, byte order (the order of walkTree).
 * V8 parses that far faster than any record format we could parse in JS. Written to a temporary file and
 * renamed, so a killed process leaves the old index or the new one. Not fsynced, like git's index: on ext4 an
 * fsync right after a view is written waits for all of the view's data to reach the disk (about a quarter of
 * the time of a 20,000-file mount-view here), and an index lost to a power cut only costs a rehash (a file that
 * does not parse is treated as absent; a stale one makes the reconcile count the view's content as edits,
 * so nothing is lost).
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
  /** For a directory: how many entries its tree has (lets a scan keep an unchanged tree without reading it). */
  count?: number;
  /** Blob oid for files and symlinks; tree oid for directories. */
  oid: string;
  stat: Stat;
  /** Modified too close to when it was read for the stat to prove it unchanged later: hash again. */
  racy: boolean;
}

export type Index = Map<string, IndexEntry>;

/** A sink that can be given trees whose oids are already known, lazily (no hashing, no work until asked). */
export interface AdoptingSink extends TreeSink {
  addTreeProvider?(provide: (oid: string) => readonly TreeEntry[] | undefined): void;
}

interface IndexFile {
  v: 3;
  root: string | null;
  /** Entries in the root tree. */
  rn: number;
  p: string[]; m: string[]; o: string[];
  t: number[]; c: number[]; s: number[]; i: number[]; r: number[];
  /** Entries in each directory's tree (0 for files). */
  n: number[];
}

export interface LoadedIndex { root: string | null; rootCount: number; index: Index }

const NO_STAT: Stat = { mtime: 0, ctime: 0, size: -1, ino: 0 };

export function saveIndex(file: string, src: TreeSource, root: string | null, index: Index): void {
  // git's racy-clean rule: a stat taken in the same clock tick as the index is written proves nothing.
  const fresh = Date.now() - RACY_MS;
  const f: IndexFile = { v: 3, root, rn: root ? src.readTree(root).length : 0, p: [], m: [], o: [], t: [], c: [], s: [], i: [], r: [], n: [] };
  if (root) {
    for (const { path, entry } of walkTree(src, root)) {
      f.n.push(entry.mode === '40000' ? src.readTree(entry.oid).length : 0);
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
  fs.writeFileSync(tmp, JSON.stringify(f), 'utf8');
  fs.renameSync(tmp, file);
}

/**
 * Load an index. Its trees are handed to `sink` lazily: a scan that finds nothing changed never needs them,
 * so they are built only when something reads one.
 */
export function loadIndex(file: string, sink: AdoptingSink): LoadedIndex {
  const index: Index = new Map();
  const none = { root: null, rootCount: 0, index };
  let f: IndexFile;
  try { f = JSON.parse(fs.readFileSync(file, 'utf8')) as IndexFile; } catch { return none; }
  const n = f?.p?.length;
  if (f?.v !== 3 || typeof f.root !== 'string' || ![f.m, f.o, f.t, f.c, f.s, f.i, f.r, f.n].every((a) => Array.isArray(a) && a.length === n)) {
    return none;
  }
  for (let k = 0; k < n; k++) {
    const mode = f.m[k] as Mode;
    index.set(f.p[k], { mode, oid: f.o[k], stat: { mtime: f.t[k], ctime: f.c[k], size: f.s[k], ino: f.i[k] }, racy: f.r[k] === 1, count: mode === '40000' ? f.n[k] : undefined });
  }
  const build = (): Map<string, TreeEntry[]> | null => {
    const children = new Map<string, TreeEntry[]>([['', []]]);
    for (let k = 0; k < n; k++) {
      const path = f.p[k];
      const mode = f.m[k] as Mode;
      if (mode === '40000') children.set(path, []);
      const list = children.get(parentOf(path));
      if (!list) return null; // not in pre-order: damaged
      list.push({ name: basename(path), mode, oid: f.o[k] });
    }
    const byOid = new Map<string, TreeEntry[]>();
    for (const [path, entries] of children) byOid.set(path === '' ? f.root! : index.get(path)!.oid, entries);
    return byOid;
  };
  if (sink.addTreeProvider) {
    let trees: Map<string, TreeEntry[]> | null | undefined;
    sink.addTreeProvider((oid) => {
      if (trees === undefined) trees = build();
      return trees?.get(oid);
    });
  } else {
    const trees = build();
    if (!trees) return none;
    for (const [oid, entries] of trees) if (sink.writeTree(entries) !== oid) return none;
  }
  return { root: f.root, rootCount: f.rn, index };
}

export function indexPath(gitdir: string, name: string): string {
  return join(gitdir, 'glayer', `${name}.index`);
}
