/**
 * From views back to layers: the delta that, applied over a lower union, gives a target view
 * (`applyLayer(lower, computeDelta(lower, target)) === target`), written the way overlayfs writes an upper
 * directory:
 *
 * - a path only the lower has: a `.wh.NAME` marker (one for a whole directory, never one per child);
 * - a path only the target has, or whose kind or content differs: the target's entry, whole (copy-up);
 * - a directory in both: the delta of its children, or nothing when they are equal; when `opaque(path)` says
 *   the directory was deleted and re-created, an opaque marker and the target's children instead;
 * - equal entries: nothing (a layer holds no no-op entries).
 *
 * Walks are sorted merges in byte order (tree.ts).
 */
import { join } from './path.js';
import { EMPTY_TREE, mergeEntries, sameEntry, type TreeEntry, type TreeSink } from './tree.js';
import { OPAQUE_MARKER, markerEntry, whiteoutName } from './whiteout.js';

export function computeDelta(
  sink: TreeSink,
  lower: string | null,
  target: string,
  opaque: (path: string) => boolean = () => false,
): string {
  return deltaDir(sink, lower, target, '', opaque) ?? EMPTY_TREE;
}

interface DeltaFrame {
  readonly path: string;
  readonly name: string;
  /** The merged entries of the lower and the target directory. */
  readonly pairs: Array<[string, TreeEntry | null, TreeEntry | null]>;
  i: number;
  readonly out: TreeEntry[];
}

/**
 * The delta of one directory, or null when it has nothing. Iterative (an explicit stack of directories), so
 * trees of any depth cost no call stack; directories are visited in the same order as a recursive walk.
 */
function deltaDir(sink: TreeSink, lower: string | null, target: string, path: string, opaque: (p: string) => boolean): string | null {
  if (lower === target) return null;
  const open = (low: string | null, tgt: string, p: string, name: string): DeltaFrame => {
    const pairs: DeltaFrame['pairs'] = [];
    mergeEntries(low ? sink.readTree(low) : [], sink.readTree(tgt), (n, a, b) => { pairs.push([n, a, b]); });
    return { path: p, name, pairs, i: 0, out: [] };
  };
  const stack: DeltaFrame[] = [open(lower, target, path, '')];
  for (;;) {
    const f = stack[stack.length - 1];
    if (f.i < f.pairs.length) {
      const [name, low, tgt] = f.pairs[f.i++];
      if (!tgt) { f.out.push(markerEntry(whiteoutName(name))); continue; }
      const p = join(f.path, name);
      if (low && tgt.mode === '40000' && low.mode === '40000') {
        if (opaque(p)) f.out.push({ name, mode: '40000', oid: withOpaqueMarker(sink, tgt.oid) });
        else if (low.oid !== tgt.oid) stack.push(open(low.oid, tgt.oid, p, name));
        continue;
      }
      if (!sameEntry(low, tgt)) f.out.push(tgt);
      continue;
    }
    stack.pop();
    // Markers sort among the names; keep the list in byte order.
    f.out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const oid = f.out.length ? sink.writeTree(f.out) : null;
    if (stack.length === 0) return oid;
    if (oid !== null) stack[stack.length - 1].out.push({ name: f.name, mode: '40000', oid });
  }
}

function withOpaqueMarker(sink: TreeSink, tree: string): string {
  const entries = [...sink.readTree(tree), markerEntry(OPAQUE_MARKER)];
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return sink.writeTree(entries);
}

export { EMPTY_TREE };
