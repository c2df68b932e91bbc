/** `log`: the stack's layers, top first, with what each adds, changes and deletes, like `docker history`. */
import { diffTrees, statusEntries } from '../core/changes.js';
import { walkTree } from '../core/tree.js';
import { classifyName } from '../core/whiteout.js';
import { withWorkspace } from '../workspace/workspace.js';
import { resolveLayer } from './resolve.js';
import type { WorkspaceOptions } from './types.js';
import type { Commit } from '../store/store.js';

export interface LayerInfo {
  id: string;
  parent: string | null;
  author: { name: string; email: string };
  /** ISO 8601, from the committer date. */
  date: string;
  message: string;
  added: number;
  changed: number;
  deleted: number;
  /** Bytes of the layer's own files and symlinks. */
  bytes: number;
}

/** The fields every listing of a layer shows (log, blame). */
export function layerHeader(commit: Commit): Pick<LayerInfo, 'id' | 'parent' | 'author' | 'date' | 'message'> {
  return {
    id: commit.oid,
    parent: commit.parents[0] ?? null,
    author: { name: commit.author.name, email: commit.author.email },
    date: new Date(commit.committer.timestamp * 1000).toISOString(),
    message: commit.message.replace(/\n+$/, ''),
  };
}

export interface LogOptions extends WorkspaceOptions {
  /** At most this many layers, from the top. */
  limit?: number;
  /** The top layer to list from (a layer name, see resolve.ts; default: HEAD, the current stack's top). */
  from?: string;
}

export async function log(opts: LogOptions = {}): Promise<LayerInfo[]> {
  return withWorkspace(opts.cwd ?? process.cwd(), (ws) => {
    const store = ws.store;
    const top = opts.from === undefined ? store.head() : resolveLayer(store, opts.from).commit.oid;
    const chain = store.layers(top, opts.limit ?? Infinity);
    const out: LayerInfo[] = [];
    for (const { commit, below, above } of store.unionsAlong(chain).reverse()) {
      let added = 0, changed = 0, deleted = 0;
      for (const e of statusEntries(store.objects, diffTrees(store.objects, below, above))) {
        if (e.change === 'A') added++; else if (e.change === 'C') changed++; else deleted++;
      }
      let bytes = 0;
      for (const { entry } of walkTree(store.objects, commit.tree)) {
        if (entry.mode !== '40000' && classifyName(entry.name).kind === 'none') bytes += store.objects.sizeOf(entry.oid);
      }
      out.push({ ...layerHeader(commit), added, changed, deleted, bytes });
    }
    return out;
  }, { lock: false });
}
