/** `status`: the writable layer's changes against the stack, as `docker diff` lists them. */
import { diffTrees, statusEntries, type ChangeKind } from '../core/changes.js';
import { kindOf, type Kind } from '../core/tree.js';
import { display } from '../errors.js';
import { withWorkspace } from '../workspace/workspace.js';
import { reconcileIfWritable } from './sync.js';
import type { WorkspaceOptions } from './types.js';

export interface StatusItem {
  /** Relative, '/'-separated (UTF-8 where the name decodes). */
  path: string;
  change: ChangeKind;
  /** Kind after the change (before it, for a deletion). */
  kind: Kind;
}

export interface StatusResult {
  changes: StatusItem[];
  warnings: string[];
  /** View files no layer can hold (reserved '.wh.' names): commit refuses them. */
  unrepresentable: string[];
}

export async function status(opts: WorkspaceOptions = {}): Promise<StatusResult> {
  return withWorkspace(opts.cwd ?? process.cwd(), async (ws) => {
    const s = await reconcileIfWritable(ws, opts);
    const entries = statusEntries(ws.store.objects, diffTrees(ws.store.objects, s.lowerTree, s.viewTree));
    return {
      changes: entries.map((e) => ({ path: display(e.path), change: e.change, kind: kindOf((e.new ?? e.old)!.mode) })),
      warnings: s.warnings,
      unrepresentable: s.unrepresentable.map(display),
    };
  }, { lock: false });
}
