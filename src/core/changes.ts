/**
 * Differences between two trees, structurally: equal oids end the walk, so the cost follows the size of the
 * difference. Walks are sorted merges in byte order (tree.ts).
 */
import { join } from './path.js';
import { mergeEntries, sameEntry, walkTree, type TreeEntry, type TreeSource } from './tree.js';

/** One difference at the top-most path where the two trees differ (a removed directory is one Change). */
export interface Change {
  readonly path: string;
  readonly old: TreeEntry | null;
  readonly new: TreeEntry | null;
}

/** Top-most differences from tree `a` to tree `b` (either may be null: no tree). */
export function diffTrees(src: TreeSource, a: string | null, b: string | null, prefix = ''): Change[] {
  const out: Change[] = [];
  diffInto(src, a, b, prefix, out);
  return out;
}

// Iterative (an explicit stack of directories), so trees of any depth cost no call stack; the order of the
// changes is that of a recursive walk.
function diffInto(src: TreeSource, a: string | null, b: string | null, prefix: string, out: Change[]): void {
  if (a === b) return;
  type Frame = { path: string; pairs: Array<[string, TreeEntry | null, TreeEntry | null]>; i: number };
  const open = (x: string | null, y: string | null, path: string): Frame => {
    const pairs: Frame['pairs'] = [];
    mergeEntries(x ? src.readTree(x) : [], y ? src.readTree(y) : [], (name, p, q) => { pairs.push([name, p, q]); });
    return { path, pairs, i: 0 };
  };
  const stack: Frame[] = [open(a, b, prefix)];
  while (stack.length) {
    const f = stack[stack.length - 1];
    if (f.i >= f.pairs.length) { stack.pop(); continue; }
    const [name, x, y] = f.pairs[f.i++];
    if (sameEntry(x, y)) continue;
    const path = join(f.path, name);
    if (x && y && x.mode === '40000' && y.mode === '40000') stack.push(open(x.oid, y.oid, path));
    else out.push({ path, old: x, new: y });
  }
}

export type ChangeKind = 'A' | 'C' | 'D';

export interface StatusEntry {
  readonly path: string;
  readonly change: ChangeKind;
  readonly old: TreeEntry | null;
  readonly new: TreeEntry | null;
}

/**
 * Changes as `docker diff` lists them: `D` once for a removed path (a directory is one entry), `C` for a path
 * whose content, mode or kind changed, `A` for an added path and for everything inside an added directory.
 */
export function statusEntries(src: TreeSource, changes: readonly Change[]): StatusEntry[] {
  const out: StatusEntry[] = [];
  for (const c of changes) {
    if (!c.new) { out.push({ path: c.path, change: 'D', old: c.old, new: null }); continue; }
    out.push({ path: c.path, change: c.old ? 'C' : 'A', old: c.old, new: c.new });
    if (c.new.mode === '40000') {
      for (const { path, entry } of walkTree(src, c.new.oid, c.path)) out.push({ path, change: 'A', old: null, new: entry });
    }
  }
  return out;
}
