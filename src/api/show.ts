/** `show`: one layer, like `git show`: its id, author, date and message, then its diff against the union beneath it. */
import { UsageError } from '../errors.js';
import { withWorkspace } from '../workspace/workspace.js';
import { diffViews, type DiffContentOptions, type FileDiff } from './diff.js';
import { resolveLayer, resolveViewPaths } from './resolve.js';
import type { WorkspaceOptions } from './types.js';

export interface ShownLayer {
  id: string;
  parent: string | null;
  author: { name: string; email: string; date: string; timestamp: number; tz: string };
  committer: { name: string; email: string; date: string; timestamp: number; tz: string };
  message: string;
}

export interface ShowOptions extends WorkspaceOptions, DiffContentOptions {
  /** A layer name (see resolve.ts); default: HEAD, the stack top. */
  layer?: string;
  paths?: string[];
  /** Called with the layer before its first file. */
  onLayer?: (layer: ShownLayer) => void | Promise<void>;
}

export interface ShowResult {
  layer: ShownLayer;
  files: FileDiff[];
  count: number;
}

export async function show(opts: ShowOptions = {}): Promise<ShowResult> {
  const cwd = opts.cwd ?? process.cwd();
  if (opts.layer === '') throw new UsageError('empty layer name');
  return withWorkspace(cwd, async (ws) => {
    const paths = resolveViewPaths(ws, cwd, opts.paths ?? []);
    const store = ws.store;
    const { commit } = resolveLayer(store, opts.layer ?? 'HEAD');
    const parent = commit.parents[0] ?? null;
    const sig = (s: typeof commit.author) => ({ name: s.name, email: s.email, date: new Date(s.timestamp * 1000).toISOString(), timestamp: s.timestamp, tz: s.tz });
    const layer: ShownLayer = {
      id: commit.oid,
      parent,
      author: sig(commit.author),
      committer: sig(commit.committer),
      message: commit.message,
    };
    if (opts.onLayer) await opts.onLayer(layer);
    // The parent first: its union is then the cached base of this layer's.
    const below = store.unionTree(parent);
    const above = store.unionTree(commit.oid);
    const r = await diffViews(ws, below, above, paths, opts, null, { a: store.unionManifest(parent), b: store.unionManifest(commit.oid) });
    return { layer, ...r };
  }, { lock: false });
}
