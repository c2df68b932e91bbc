/**
 * `gc [--prune=now|never|DATE]`: repack every reachable object into one pack with deltas and remove unreachable
 * objects older than the grace period (two weeks by default, as git), unused union-cache lines and stale state
 * files (see store/gc.ts), and layer-cache entries no stack's live mount uses (mount/cache.ts). Holds the
 * workspace lock, so no glayer writer runs meanwhile.
 */
import { UsageError } from '../errors.js';
import { relative } from 'node:path';
import { cacheRoot, pruneCache } from '../mount/cache.js';
import { collectGarbage, type GcReport } from '../store/gc.js';
import { listRefs } from '../store/refs.js';
import { Workspace, storeWorkspaces, withWorkspace } from '../workspace/workspace.js';
import type { WorkspaceOptions } from './types.js';

export interface GcOptions extends WorkspaceOptions {
  /** `now`, `never`, a date (ISO 8601 or anything Date parses), or git's `N.unit.ago` (`2.weeks.ago`). */
  prune?: string;
  /** The time to measure ages from (tests). */
  now?: number;
}

export interface GcResult extends GcReport {
  /** Layer-cache entries removed (no stack's live mount uses them). */
  cacheEntriesRemoved: number;
}

const UNITS: Record<string, number> = { second: 1e3, minute: 60e3, hour: 3600e3, day: 86400e3, week: 7 * 86400e3, month: 30 * 86400e3, year: 365 * 86400e3 };

/** The cutoff time for `--prune`: unreachable objects written before it go. */
export function pruneCutoff(prune: string | undefined, now = Date.now()): number {
  if (prune === undefined) return now - 14 * 86400e3;
  if (prune === 'now') return Infinity;
  if (prune === 'never') return -Infinity;
  const ago = /^(\d+)[. ]?(second|minute|hour|day|week|month|year)s?[. ]ago$/.exec(prune.trim());
  if (ago) return now - Number(ago[1]) * UNITS[ago[2]];
  const t = Date.parse(prune);
  if (Number.isNaN(t)) throw new UsageError(`--prune takes now, never, a date or N.unit.ago (2.weeks.ago), not '${prune}'`);
  return t;
}

export async function gc(opts: GcOptions = {}): Promise<GcResult> {
  const cutoff = pruneCutoff(opts.prune, opts.now);
  return withWorkspace(opts.cwd ?? process.cwd(), (ws) => {
    const report = collectGarbage(ws.store, { cutoff, onProgress: opts.onProgress });
    // Layer-cache entries that no stack's mount uses (nor the live view's, mounted now).
    const use = cacheUse(ws);
    return { ...report, cacheEntriesRemoved: pruneCache(ws.store, ws.sharedDir, use.tops, use.inUse) };
  });
}

/**
 * What the layer cache serves: every layer a ref names (and the stack's top), whose mounts may use entries, and the
 * entries (`kind/key`) the live views of every workspace of the store use now (linked ones share the cache).
 */
export function cacheUse(ws: Workspace): { tops: Set<string>; inUse: Set<string> } {
  const tops = new Set<string>();
  for (const [, oid] of listRefs(ws.gitdir, 'refs/')) {
    try { ws.store.readCommit(oid); tops.add(oid); } catch { /* not a layer (an annotated tag's object, a config blob) */ }
  }
  const head = ws.store.head();
  if (head) tops.add(head);
  const root = cacheRoot(ws.sharedDir);
  const inUse = new Set<string>();
  for (const w of storeWorkspaces(ws.store.commonDir)) {
    let lowers: string[] = [];
    try { const other = w.gitdir === ws.gitdir ? ws : new Workspace(w.root); lowers = other.readState().live?.lowers ?? []; if (other !== ws) other.close(); } catch { /* gone */ }
    for (const d of lowers) inUse.add(relative(root, d));
  }
  return { tops, inUse };
}
