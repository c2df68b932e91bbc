/**
 * A layer's delta, flattened, with the size of every file it holds, and the little of its commit that a walk
 * down the stack needs (first parent, tree, first line of the message): what `efficiency` (api/efficiency.ts)
 * needs of each layer. All of it is a function of the layer's commit oid alone, so it is kept once computed:
 *
 *   .glayer/glayer/cache/s/LAYER   the delta of layer LAYER (a commit oid; format below)
 *   .glayer/glayer/cache/tmp/      a file being written (`PID-s-LAYER`), renamed into place when complete
 *
 * Commits, trees and blobs never change, so an entry never goes stale: a stack grown by a layer reads the
 * entries of the layers it had (no object is inflated) and walks only the new layer's tree. An entry appears by
 * one rename of a complete file, so one that exists is complete (a kill leaves at most a `tmp/PID-*` file,
 * which `glayer fsck` removes); one that does not parse (another format version, a damaged disk) is computed
 * again. Nothing is written in read-only mode (`glayer serve`) or when the store cannot be written (read-only
 * file system, another user's store, a full disk): the delta is then computed and used all the same.
 * `glayer gc` removes the entries of layers that are no longer reachable.
 *
 * Format (latin1, as tree entry names are held): the line `glayer-layer-sizes 1 N\n` (N records), the line
 * `PARENT TREE\n` (PARENT `-` for none), the first line of the message as a JSON string in ASCII and `\n`,
 * then N records, each a kind letter, a path, NUL, and for a file its size in decimal and NUL:
 *   f PATH SIZE   a file, symlink or any other non-directory entry (the metadata manifest included), and its bytes
 *   d PATH        a directory
 *   w PATH        a whiteout: PATH (the marker's target, with its directory) is hidden below this layer
 *   o PATH        an opaque marker in directory PATH ('' for the root)
 * Invalid markers are left out (they hide nothing and hold no bytes here).
 */
import * as fs from '../sys/fs.js';
import { join } from 'node:path';
import { isAbsent, isSystemRefusal } from '../errors.js';
import { join as joinRel } from '../core/path.js';
import { classifyEntry } from '../core/whiteout.js';
import type { ObjectStore } from './objects.js';
import { storeMode, type Store } from './store.js';

export interface DeltaSizes {
  /** Files (every non-directory entry that is not a marker), with their content sizes (same order). */
  files: string[];
  sizes: number[];
  dirs: string[];
  /** Paths whiteouts hide, and directories opaque markers empty (both: below this layer). */
  whiteouts: string[];
  opaque: string[];
}

/** A layer: its commit's first parent, tree and first message line, and its delta. */
export interface LayerSizes extends DeltaSizes {
  oid: string;
  parent: string | null;
  tree: string;
  message: string;
}

const MAGIC = 'glayer-layer-sizes 1 ';

/** Where the entry of layer `commit` is, in the store at `gitdir`. */
export function layerSizesFile(gitdir: string, commit: string): string {
  return join(gitdir, 'glayer', 'cache', 's', commit);
}

/** Layer `commit`, from the cache or from its commit and a walk of its tree (and then kept in the cache). */
export function layerSizes(store: Store, commit: string): LayerSizes {
  const file = layerSizesFile(store.commonDir, commit);
  let text: string | null = null;
  try { text = fs.readFileSync(file, 'latin1'); } catch { /* not cached (or unreadable: computed again) */ }
  const hit = text === null ? null : parse(commit, text);
  if (hit) return hit;
  const c = store.readCommit(commit);
  const d: LayerSizes = { oid: commit, parent: c.parents[0] ?? null, tree: c.tree, message: c.message.split('\n')[0], ...walk(store.objects, c.tree) };
  if (!storeMode.readOnly) {
    try { save(store.commonDir, commit, format(d)); } catch (e) {
      // A cache: a store that cannot be written is measured all the same. (A recursive mkdir on a read-only
      // file system fails with ENOENT, not EROFS, when the parent is missing too.)
      if (!isSystemRefusal(e) && !isAbsent(e)) throw e;
    }
  }
  return d;
}

/** Depth first through the layer's tree: every entry once, every file's size by a header read. */
export function walk(objects: ObjectStore, tree: string): DeltaSizes {
  const d: DeltaSizes = { files: [], sizes: [], dirs: [], whiteouts: [], opaque: [] };
  const todo: Array<{ tree: string; prefix: string }> = [{ tree, prefix: '' }];
  while (todo.length) {
    const { tree: t, prefix } = todo.pop()!;
    for (const e of objects.readTree(t)) {
      const m = classifyEntry(e);
      if (m.kind === 'opaque') { d.opaque.push(prefix); continue; }
      if (m.kind === 'whiteout') { d.whiteouts.push(joinRel(prefix, m.target)); continue; }
      if (m.kind === 'invalid') continue;
      const p = joinRel(prefix, e.name);
      if (e.mode === '40000') { todo.push({ tree: e.oid, prefix: p }); d.dirs.push(p); continue; }
      d.files.push(p);
      d.sizes.push(objects.sizeOf(e.oid));
    }
  }
  return d;
}

/** The message line as a JSON string of ASCII characters (any other escaped), so that latin1 keeps it. */
function asciiJson(text: string): string {
  return JSON.stringify(text).replace(/[\u007f-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function format(d: LayerSizes): string {
  const parts: string[] = [
    `${MAGIC}${d.files.length + d.dirs.length + d.whiteouts.length + d.opaque.length}\n`,
    `${d.parent ?? '-'} ${d.tree}\n${asciiJson(d.message)}\n`,
  ];
  for (let k = 0; k < d.files.length; k++) parts.push(`f${d.files[k]}\0${d.sizes[k]}\0`);
  for (const p of d.dirs) parts.push(`d${p}\0`);
  for (const p of d.whiteouts) parts.push(`w${p}\0`);
  for (const p of d.opaque) parts.push(`o${p}\0`);
  return parts.join('');
}

/** The cache entry of layer `oid`, or null when it is not one this version wrote whole. */
export function parse(oid: string, text: string): LayerSizes | null {
  if (!text.startsWith(MAGIC)) return null;
  const nl = text.indexOf('\n');
  const nl2 = nl < 0 ? -1 : text.indexOf('\n', nl + 1);
  const nl3 = nl2 < 0 ? -1 : text.indexOf('\n', nl2 + 1);
  if (nl3 < 0) return null;
  const count = Number(text.slice(MAGIC.length, nl));
  const ids = /^(-|[0-9a-f]{40}) ([0-9a-f]{40})$/.exec(text.slice(nl + 1, nl2));
  if (!Number.isSafeInteger(count) || count < 0 || !ids) return null;
  let message: unknown;
  try { message = JSON.parse(text.slice(nl2 + 1, nl3)); } catch { return null; }
  if (typeof message !== 'string') return null;
  const d: LayerSizes = { oid, parent: ids[1] === '-' ? null : ids[1], tree: ids[2], message, files: [], sizes: [], dirs: [], whiteouts: [], opaque: [] };
  let n = 0;
  let p = nl3 + 1;
  while (p < text.length) {
    const end = text.indexOf('\0', p);
    if (end < 0) return null;
    const kind = text[p];
    const path = text.slice(p + 1, end);
    p = end + 1;
    if (kind === 'f') {
      const e2 = text.indexOf('\0', p);
      if (e2 < 0) return null;
      const digits = text.slice(p, e2);
      if (!/^\d{1,15}$/.test(digits)) return null;
      d.files.push(path);
      d.sizes.push(Number(digits));
      p = e2 + 1;
    } else if (kind === 'd') d.dirs.push(path);
    else if (kind === 'w') d.whiteouts.push(path);
    else if (kind === 'o') d.opaque.push(path);
    else return null;
    n++;
  }
  return n === count ? d : null;
}

/** Stores whose cache directories this process made (or found): one mkdir each, not one per entry. */
const madeDirs = new Set<string>();

/** Write the entry whole under a temporary name, then rename it into place (another process may race: same bytes). */
function save(gitdir: string, commit: string, text: string, again = false): void {
  const file = layerSizesFile(gitdir, commit);
  const tmpDir = join(gitdir, 'glayer', 'cache', 'tmp');
  const known = madeDirs.has(gitdir);
  if (!known) {
    fs.mkdirSync(join(gitdir, 'glayer', 'cache', 's'), { recursive: true });
    fs.mkdirSync(tmpDir, { recursive: true });
    madeDirs.add(gitdir);
  }
  const tmp = join(tmpDir, `${process.pid}-s-${commit}`);
  try {
    fs.writeFileSync(tmp, text, 'latin1');
    fs.renameSync(tmp, file);
  } catch (e) {
    try { fs.rmSync(tmp, { force: true }); } catch { /* fsck removes it */ }
    // The directories went since this process made them (the cache was removed by hand): make them again, once.
    if (known && !again && isAbsent(e)) { madeDirs.delete(gitdir); save(gitdir, commit, text, true); return; }
    throw e;
  }
}

/** The layers the cache holds entries for. */
export function cachedLayers(gitdir: string): string[] {
  try { return fs.readdirSync(join(gitdir, 'glayer', 'cache', 's')).filter((n) => /^[0-9a-f]{40}$/.test(n)); } catch { return []; }
}
