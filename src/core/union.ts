/**
 * The union engine: the view of a stack, from the bottom layer up, by the rules in whiteout.ts and the spec:
 *
 * - directory over directory: merge children;
 * - any other pair: the upper entry replaces the lower one (a replaced directory hides everything below it);
 * - a directory whited out in layer N and re-created in N+1 brings back nothing from below N;
 * - the result never contains a marker, nor the metadata manifest `.wh..wh..meta` of a layer's root (its records
 *   merge separately: core/meta.ts, applyManifest).
 *
 * It is structural: `applyLayer(lower, delta)` walks only the directories the delta has. A lower subtree the
 * delta does not touch is reused whole by its oid, so the cost of a layer follows the size of its delta, not of
 * the tree below it, and a stack of any depth costs the sum of its deltas (and one step, with a cached union).
 * Walks are sorted merges in byte order (tree.ts).
 */
import { InvalidLayerError } from '../errors.js';
import { join, nameProblem } from './path.js';
import { classifyEntry } from './whiteout.js';
import { mergeEntries, type TreeEntry, type TreeSink } from './tree.js';

export interface UnionContext {
  /** Names the layer in errors (a commit id, or "writable layer"). */
  readonly layer: string;
  /** Tree oids already known to hold no markers and only valid names (a cache across calls). */
  readonly clean?: Set<string>;
}

/**
 * The union of `lower` (a union tree, no markers; null for nothing) and the layer tree `delta`.
 * Returns the oid of the resulting tree. Refuses an invalid layer with InvalidLayerError.
 */
export function applyLayer(sink: TreeSink, lower: string | null, delta: string, ctx: UnionContext): string {
  return applyDir(sink, lower, delta, '', ctx);
}

interface UnionFrame {
  readonly path: string;
  readonly name: string;
  readonly lower: string | null;
  readonly delta: string;
  /** The merged entries: final ones, or a directory of the delta still to apply (over `below`). */
  readonly items: Array<TreeEntry | { name: string; below: string | null; up: string }>;
  i: number;
  readonly out: TreeEntry[];
}

// Iterative (an explicit stack of directories), so a layer of any depth costs no call stack.
function applyDir(sink: TreeSink, lower: string | null, delta: string, path: string, ctx: UnionContext): string {
  const first = openDir(sink, lower, delta, path, '', ctx);
  if (typeof first === 'string') return first;
  const stack: UnionFrame[] = [first];
  for (;;) {
    const f = stack[stack.length - 1];
    if (f.i < f.items.length) {
      const it = f.items[f.i++];
      if ('mode' in it) { f.out.push(it); continue; }
      const child = openDir(sink, it.below, it.up, join(f.path, it.name), it.name, ctx);
      if (typeof child === 'string') f.out.push({ name: it.name, mode: '40000', oid: child });
      else stack.push(child);
      continue;
    }
    stack.pop();
    const oid = sink.writeTree(f.out);
    if (f.lower === null && oid === f.delta) ctx.clean?.add(f.delta);
    if (stack.length === 0) return oid;
    stack[stack.length - 1].out.push({ name: f.name, mode: '40000', oid });
  }
}

/** Validate one directory of a layer and merge it with the lower one; a known-clean tree is its own result. */
function openDir(sink: TreeSink, lower: string | null, delta: string, path: string, name: string, ctx: UnionContext): UnionFrame | string {
  if (lower === null && ctx.clean?.has(delta)) return delta;
  const entries = sink.readTree(delta);
  let opaque = false;
  const hidden = new Set<string>();
  const own: TreeEntry[] = [];
  for (const e of entries) {
    const where = join(path, e.name);
    const problem = nameProblem(e.name);
    if (problem) throw new InvalidLayerError(ctx.layer, where, problem);
    if (e.mode === '160000') throw new InvalidLayerError(ctx.layer, where, 'submodule entries are not layer content');
    const marker = classifyEntry(e);
    switch (marker.kind) {
      case 'none': own.push(e); break;
      case 'opaque': opaque = true; break;
      // The layer's metadata manifest (core/meta.ts merges it): never in the view, and only at the root.
      case 'meta': if (path !== '') throw new InvalidLayerError(ctx.layer, where, "the metadata manifest must be at the layer's root"); break;
      case 'whiteout': hidden.add(marker.target); break;
      case 'invalid': throw new InvalidLayerError(ctx.layer, where, marker.reason);
    }
  }
  // What survives of the lower directory: nothing if opaque, else all but the whited-out names.
  const base = lower === null || opaque ? [] : sink.readTree(lower).filter((e) => !hidden.has(e.name));
  const items: UnionFrame['items'] = [];
  mergeEntries(base, own, (n, low, up) => {
    if (!up) { items.push(low!); return; }
    if (up.mode !== '40000') { items.push(up); return; }
    items.push({ name: n, below: low && low.mode === '40000' ? low.oid : null, up: up.oid });
  });
  return { path, name, lower, delta, items, i: 0, out: [] };
}

/** The union of a whole stack of layer trees, bottom first. */
export function unionOf(sink: TreeSink, layers: ReadonlyArray<{ tree: string; name: string }>, clean?: Set<string>): string | null {
  let result: string | null = null;
  for (const l of layers) result = applyLayer(sink, result, l.tree, { layer: l.name, clean });
  return result;
}
