/**
 * The stat cache of a directory glayer keeps in sync (the view, the writable layer), like git's index: for each
 * path its mode, blob oid and the lstat fields that tell whether it changed. Directories are listed too (their
 * inode tells a directory deleted and re-created from one that was kept); their tree oids are recomputed on
 * load, so the file describes a whole tree by itself.
 *
 * Format: records separated by NUL (paths cannot hold NUL), each `mode oid mtime ctime size ino racy path`,
 * in pre-order, byte order (the order of walkTree). Written to a temporary file, fsynced and renamed.
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
  /** Blob oid for files and symlinks; tree oid for directories (recomputed on load). */
  oid: string;
  stat: Stat;
  /** Modified too close to when it was read for the stat to prove it unchanged later: hash again. */
  racy: boolean;
}

export type Index = Map<string, IndexEntry>;

const HEADER = 'glayer-index 1\0';

export function saveIndex(file: string, src: TreeSource, root: string | null, index: Index): void {
  // git's racy-clean rule: a stat taken in the same clock tick as the index is written proves nothing.
  const fresh = Date.now() - RACY_MS;
  const parts: string[] = [HEADER, root ?? '-', '\0'];
  if (root) {
    for (const { path, entry } of walkTree(src, root)) {
      const e = index.get(path);
      const s = e?.stat ?? { mtime: 0, ctime: 0, size: -1, ino: 0 };
      // An entry with no stat (or a stale one) is marked racy so the next scan hashes it again.
      const racy = !e || e.racy || s.ctime >= fresh || e.mode !== entry.mode || (entry.mode !== '40000' && e.oid !== entry.oid);
      parts.push(`${entry.mode} ${entry.mode === '40000' ? '-' : entry.oid} ${s.mtime} ${s.ctime} ${s.size} ${s.ino} ${racy ? 1 : 0} ${path}\0`);
    }
  }
  const tmp = `${file}.tmp${process.pid}`;
  fs.mkdirSync(dirname(file), { recursive: true });
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeFileSync(fd, Buffer.from(parts.join(''), 'latin1'));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** Load an index, rebuilding its trees into `sink`. Returns the root tree (null: nothing recorded). */
export function loadIndex(file: string, sink: TreeSink): { root: string | null; index: Index } {
  const index: Index = new Map();
  let text: string;
  try { text = fs.readFileSync(file, 'latin1'); } catch { return { root: null, index }; }
  if (!text.startsWith(HEADER)) return { root: null, index };
  const recs = text.slice(HEADER.length).split('\0');
  if (recs[0] === '-') return { root: null, index };
  const paths: string[] = [];
  for (let k = 1; k < recs.length; k++) {
    const r = recs[k];
    if (r === '') continue;
    let p = 0;
    const field = (): string => { const sp = r.indexOf(' ', p); const v = r.slice(p, sp); p = sp + 1; return v; };
    const mode = field() as Mode;
    const oid = field();
    const mtime = Number(field()), ctime = Number(field()), size = Number(field()), ino = Number(field());
    const racy = field() === '1';
    const path = r.slice(p);
    index.set(path, { mode, oid: oid === '-' ? '' : oid, stat: { mtime, ctime, size, ino }, racy });
    paths.push(path);
  }
  // Rebuild trees bottom-up: in pre-order every child follows its directory, so reverse order sees children first.
  const children = new Map<string, TreeEntry[]>();
  children.set('', []);
  for (const p of paths) if (index.get(p)!.mode === '40000') children.set(p, []);
  for (let k = paths.length - 1; k >= 0; k--) {
    const p = paths[k];
    const e = index.get(p)!;
    if (e.mode === '40000') {
      const kids = children.get(p)!.reverse();
      e.oid = sink.writeTree(kids);
    }
    const parent = children.get(parentOf(p));
    if (!parent) return { root: null, index: new Map() }; // damaged: start over, everything will be hashed
    parent.push({ name: basename(p), mode: e.mode, oid: e.oid });
  }
  return { root: sink.writeTree(children.get('')!.reverse()), index };
}

export function indexPath(gitdir: string, name: string): string {
  return join(gitdir, 'glayer', `${name}.index`);
}
