/**
 * `stacks`: the local stacks (branches) and the remote-tracking stacks of the store, and the layers they share.
 * Two stacks share the layers below the highest layer both first-parent chains hold, as images share layers.
 */
import { listRefs } from '../store/refs.js';
import { readUpstream } from '../store/remote.js';
import { withWorkspace } from '../workspace/workspace.js';
import type { WorkspaceOptions } from './types.js';

export interface StackShare {
  /** The other stack's name. */
  with: string;
  /** How many layers the two have in common, and the highest of them. */
  layers: number;
  top: string;
}

export interface StackInfo {
  /** `main`, or `origin/main` for a remote-tracking stack. */
  name: string;
  ref: string;
  current: boolean;
  remote: boolean;
  top: string;
  layers: number;
  /** The remote stack this one pulls from (`origin/main`), if set. */
  upstream: string | null;
  shares: StackShare[];
}

export async function stacks(opts: WorkspaceOptions = {}): Promise<StackInfo[]> {
  return withWorkspace(opts.cwd ?? process.cwd(), async (ws) => {
    const store = ws.store;
    const current = store.stackRef;
    const refs = [...listRefs(ws.gitdir, 'refs/heads/'), ...listRefs(ws.gitdir, 'refs/remotes/')]
      .filter(([ref]) => !ref.endsWith('/HEAD'))
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const chains = new Map<string, string[]>();
    for (const [ref, top] of refs) {
      try { chains.set(ref, store.layers(top).map((c) => c.oid)); } catch { chains.set(ref, [top]); }
    }
    const nameOf = (ref: string): string => ref.replace(/^refs\/(heads|remotes)\//, '');
    const out: StackInfo[] = [];
    for (const [ref, top] of refs) {
      const chain = chains.get(ref)!;
      const shares: StackShare[] = [];
      for (const [other] of refs) {
        if (other === ref) continue;
        const set = new Set(chains.get(other)!);
        const k = chain.findIndex((c) => set.has(c));
        if (k >= 0) shares.push({ with: nameOf(other), layers: chain.length - k, top: chain[k] });
      }
      let upstream: string | null = null;
      if (ref.startsWith('refs/heads/')) {
        const up = await readUpstream(ws.gitdir, nameOf(ref));
        if (up) upstream = `${up.remote}/${up.merge.replace(/^refs\/heads\//, '')}`;
      }
      out.push({ name: nameOf(ref), ref, current: ref === current, remote: ref.startsWith('refs/remotes/'), top, layers: chain.length, upstream, shares });
    }
    return out;
  }, { lock: false });
}
