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

/** The delta of one directory, or null when it has nothing. */
function deltaDir(sink: TreeSink, lower: string | null, target: string, path: string, opaque: (p: string) => boolean): string | null {
  if (lower === target) return null;
  const out: TreeEntry[] = [];
  mergeEntries(lower ? sink.readTree(lower) : [], sink.readTree(target), (name, low, tgt) => {
    if (!tgt) { out.push(markerEntry(whiteoutName(name))); return; }
    const p = join(path, name);
    if (low && tgt.mode === '40000' && low.mode === '40000') {
      if (opaque(p)) {
        out.push({ name, mode: '40000', oid: withOpaqueMarker(sink, tgt.oid) });
        return;
      }
      const sub = deltaDir(sink, low.oid, tgt.oid, p, opaque);
      if (sub !== null) out.push({ name, mode: '40000', oid: sub });
      return;
    }
    if (!sameEntry(low, tgt)) out.push(tgt);
  });
  // Markers sort among the names; keep the list in byte order.
  out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return out.length ? sink.writeTree(out) : null;
}

function withOpaqueMarker(sink: TreeSink, tree: string): string {
  const entries = [...sink.readTree(tree), markerEntry(OPAQUE_MARKER)];
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return sink.writeTree(entries);
}

export { EMPTY_TREE };
