/** `info`: where things are. */
import { withWorkspace } from '../workspace/workspace.js';
import { liveMountAt } from '../mount/live.js';
import type { WorkspaceOptions } from './types.js';

export interface InfoResult {
  root: string;
  /** The git directory of the store. */
  store: string;
  /** The stack's full ref name. */
  ref: string;
  /** Top layer id, or null for an empty stack. */
  head: string | null;
  /** The writable layer's directory. */
  upper: string;
  /** The view's directory, or null before mount-view. */
  view: string | null;
  layers: number;
  /** The view is a live mount: with which backend, and whether it is mounted now. */
  live: { backend: 'kernel' | 'fuse'; mounted: boolean; head: string | null } | null;
}

export async function info(opts: WorkspaceOptions = {}): Promise<InfoResult> {
  return withWorkspace(opts.cwd ?? process.cwd(), (ws) => {
    const head = ws.store.head();
    const state = ws.readState();
    return {
      root: ws.root,
      store: ws.gitdir,
      ref: ws.store.stackRef,
      head,
      upper: ws.upper,
      view: state.view,
      layers: ws.store.layers(head).length,
      live: state.live && state.view
        ? { backend: state.live.backend, mounted: liveMountAt(ws, state.view, state.live) !== null, head: state.live.head }
        : null,
    };
  }, { lock: false });
}
