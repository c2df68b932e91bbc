/**
 * `gc [--prune=now|never|DATE]`: repack every reachable object into one pack with deltas and remove unreachable
 * objects older than the grace period (two weeks by default, as git), unused union-cache lines and stale state
 * files (see store/gc.ts). Holds the workspace lock, so no glayer writer runs meanwhile.
 */
import { UsageError } from '../errors.js';
import { collectGarbage, type GcReport } from '../store/gc.js';
import { withWorkspace } from '../workspace/workspace.js';
import type { WorkspaceOptions } from './types.js';

export interface GcOptions extends WorkspaceOptions {
  /** `now`, `never`, a date (ISO 8601 or anything Date parses), or git's `N.unit.ago` (`2.weeks.ago`). */
  prune?: string;
  /** The time to measure ages from (tests). */
  now?: number;
}

export type { GcReport };

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

export async function gc(opts: GcOptions = {}): Promise<GcReport> {
  const cutoff = pruneCutoff(opts.prune, opts.now);
  return withWorkspace(opts.cwd ?? process.cwd(), (ws) => collectGarbage(ws.store, { cutoff, onProgress: opts.onProgress }));
}
