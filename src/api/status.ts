/** `status`: the writable layer's changes against the stack, as `docker diff` lists them. */
import { diffTrees, statusEntries, type ChangeKind } from '../core/changes.js';
import { kindOf, type Kind } from '../core/tree.js';
import { display } from '../errors.js';
import { withWorkspace } from '../workspace/workspace.js';
import { planSync, reconcile } from './sync.js';
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

export interface StatusOptions extends WorkspaceOptions {
  /**
   * Work out the changes without writing anything and without the workspace lock (`glayer serve`): the view's
   * edits not yet recorded in the writable layer are included, but neither side nor any index is updated.
   */
  readOnly?: boolean;
}

export async function status(opts: StatusOptions = {}): Promise<StatusResult> {
  return withWorkspace(opts.cwd ?? process.cwd(), async (ws) => {
    const s = opts.readOnly ? planSync(ws) : await reconcile(ws, opts);
    const entries = statusEntries(ws.store.objects, diffTrees(ws.store.objects, s.lowerTree, s.viewTree));
    return {
      changes: entries.map((e) => ({ path: display(e.path), change: e.change, kind: kindOf((e.new ?? e.old)!.mode) })),
      warnings: s.warnings,
      unrepresentable: s.unrepresentable.map(display),
    };
  }, { lock: !opts.readOnly });
}
