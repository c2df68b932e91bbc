/**
 * `blame`: every layer of the stack that added, changed or deleted a path (or anything under it), top first:
 * dive's "where did this file change" across layers. Each layer is compared with the union beneath it, so a
 * whiteout shows as the deletion it causes and a layer that rewrites a file with the same content is not listed.
 */
import { lookup, sameEntry, kindOf, type Kind, type TreeEntry } from '../core/tree.js';
import { display, UsageError } from '../errors.js';
import type { ObjectStore } from '../store/objects.js';
import { withWorkspace } from '../workspace/workspace.js';
import { filePairs, limitedChanges } from './diff.js';
import { resolveLayer, resolveViewPaths } from './resolve.js';
import type { WorkspaceOptions } from './types.js';
import { layerHeader } from './log.js';

export interface BlameOptions extends WorkspaceOptions {
  /** A user path (see resolve.ts). */
  path: string;
  /** The top layer to look down from (a layer name, see resolve.ts; default: HEAD, the current stack's top). */
  layer?: string;
}

export interface BlameEntry {
  id: string;
  parent: string | null;
  author: { name: string; email: string };
  /** ISO 8601, from the committer date (as `log`). */
  date: string;
  message: string;
  /** What the layer did to the path: added it (A), changed it or something under it (C), deleted it (D). */
  change: 'A' | 'C' | 'D';
  /** The path's kind after the layer (before it, for a deletion). */
  kind: Kind;
  /** Bytes at the path after the layer (a directory: all the files under it); null when deleted. */
  size: number | null;
  /** Files (and symlinks) the layer added, changed and deleted at or under the path. */
  files: { added: number; changed: number; deleted: number };
}

export interface BlameResult {
  /** The view path, UTF-8 where it decodes ('' for the whole view). */
  path: string;
  /** Top first. */
  entries: BlameEntry[];
}

export async function blame(opts: BlameOptions): Promise<BlameResult> {
  const cwd = opts.cwd ?? process.cwd();
  if (opts.path === undefined) throw new UsageError('blame needs a PATH');
  return withWorkspace(cwd, (ws) => {
    const [path] = resolveViewPaths(ws, cwd, [opts.path]);
    const store = ws.store;
    const sizes = new Sizes(store.objects);
    const entries: BlameEntry[] = [];
    const top = opts.layer === undefined ? store.head() : resolveLayer(store, opts.layer).commit.oid;
    for (const { commit, below, above } of store.unionsAlong(store.layers(top))) {
      const before = lookup(store.objects, below, path);
      const after = lookup(store.objects, above, path);
      if (sameEntry(before, after)) continue;
      const files = { added: 0, changed: 0, deleted: 0 };
      for (const p of filePairs(store.objects, limitedChanges(store.objects, below, above, [path]))) {
        if (p.typeChange) { if (p.old) files.changed++; }
        else if (p.old && p.new) files.changed++;
        else if (p.new) files.added++;
        else files.deleted++;
      }
      entries.push({
        ...layerHeader(commit),
        change: !before ? 'A' : !after ? 'D' : 'C',
        kind: kindOf((after ?? before)!.mode),
        size: after ? sizes.of(after) : null,
        files,
      });
    }
    return { path: display(path), entries: entries.reverse() };
  }, { lock: false });
}

/** Sizes of entries, memoized by oid (a directory's is the sum of the sizes of its files). */
class Sizes {
  private readonly memo = new Map<string, number>();
  constructor(private readonly objects: ObjectStore) {}

  of(e: TreeEntry): number {
    const hit = this.memo.get(e.oid);
    if (hit !== undefined) return hit;
    let n = 0;
    if (e.mode === '40000') for (const c of this.objects.readTree(e.oid)) n += this.of(c);
    else n = this.objects.sizeOf(e.oid);
    this.memo.set(e.oid, n);
    return n;
  }
}
