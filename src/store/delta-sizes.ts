/**
 * A layer's delta, flattened, with the size of every file it holds: what `efficiency` (api/efficiency.ts) needs
 * of each layer, and all of it a function of the layer's tree oid alone, so it is kept once computed:
 *
 *   .glayer/glayer/cache/s/TREE    the delta of layer tree TREE (format below)
 *   .glayer/glayer/cache/tmp/      a file being written (`PID-s-TREE`), renamed into place when complete
 *
 * A tree and its blobs never change, so an entry never goes stale: a stack grown by a layer reads the entries of
 * the layers it had and walks only the new layer's tree. An entry appears by one rename of a complete file, so
 * one that exists is complete (a kill leaves at most a `tmp/PID-*` file, which `glayer fsck` removes); one that
 * does not parse (another format version, a damaged disk) is computed again. Nothing is written in read-only
 * mode (`glayer serve`) or when the store cannot be written (read-only file system, another user's store, a
 * full disk): the delta is then computed and used all the same. `glayer gc` removes the entries of trees that
 * are no longer in the store.
 *
 * Format (latin1, as tree entry names are held): the line `glayer-delta-sizes 1 N\n` (N records), then N
 * records, each a kind letter, a path, NUL, and for a file its size in decimal and NUL:
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
import { storeMode } from './store.js';

export interface DeltaSizes {
  /** Files (every non-directory entry that is not a marker), with their content sizes (same order). */
  files: string[];
  sizes: number[];
  dirs: string[];
  /** Paths whiteouts hide, and directories opaque markers empty (both: below this layer). */
  whiteouts: string[];
  opaque: string[];
}

const MAGIC = 'glayer-delta-sizes 1 ';

/** Where the entry of layer tree `tree` is, in the store at `gitdir`. */
export function deltaSizesFile(gitdir: string, tree: string): string {
  return join(gitdir, 'glayer', 'cache', 's', tree);
}

/** The delta of layer tree `tree`, from the cache or by walking the tree (and then kept in the cache). */
export function deltaSizes(objects: ObjectStore, gitdir: string, tree: string): DeltaSizes {
  const file = deltaSizesFile(gitdir, tree);
  let text: string | null = null;
  try { text = fs.readFileSync(file, 'latin1'); } catch { /* not cached (or unreadable: computed again) */ }
  const hit = text === null ? null : parse(text);
  if (hit) return hit;
  const d = walk(objects, tree);
  if (!storeMode.readOnly) {
    try { save(gitdir, tree, format(d)); } catch (e) {
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

export function format(d: DeltaSizes): string {
  const parts: string[] = [`${MAGIC}${d.files.length + d.dirs.length + d.whiteouts.length + d.opaque.length}\n`];
  for (let k = 0; k < d.files.length; k++) parts.push(`f${d.files[k]}\0${d.sizes[k]}\0`);
  for (const p of d.dirs) parts.push(`d${p}\0`);
  for (const p of d.whiteouts) parts.push(`w${p}\0`);
  for (const p of d.opaque) parts.push(`o${p}\0`);
  return parts.join('');
}

/** A cache entry's delta, or null when it is not one this version wrote whole. */
export function parse(text: string): DeltaSizes | null {
  if (!text.startsWith(MAGIC)) return null;
  const nl = text.indexOf('\n');
  const count = Number(text.slice(MAGIC.length, nl));
  if (nl < 0 || !Number.isSafeInteger(count) || count < 0) return null;
  const d: DeltaSizes = { files: [], sizes: [], dirs: [], whiteouts: [], opaque: [] };
  let n = 0;
  let p = nl + 1;
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

/** Write the entry whole under a temporary name, then rename it into place (another process may race: same bytes). */
function save(gitdir: string, tree: string, text: string): void {
  const file = deltaSizesFile(gitdir, tree);
  const tmpDir = join(gitdir, 'glayer', 'cache', 'tmp');
  fs.mkdirSync(join(gitdir, 'glayer', 'cache', 's'), { recursive: true });
  fs.mkdirSync(tmpDir, { recursive: true });
  const tmp = join(tmpDir, `${process.pid}-s-${tree}`);
  try {
    fs.writeFileSync(tmp, text, 'latin1');
    fs.renameSync(tmp, file);
  } catch (e) {
    try { fs.rmSync(tmp, { force: true }); } catch { /* fsck removes it */ }
    throw e;
  }
}

/** The trees the cache holds entries for. */
export function cachedDeltaTrees(gitdir: string): string[] {
  try { return fs.readdirSync(join(gitdir, 'glayer', 'cache', 's')).filter((n) => /^[0-9a-f]{40}$/.test(n)); } catch { return []; }
}
