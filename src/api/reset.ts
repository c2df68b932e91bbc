/**
 * `reset LAYER`: move the current stack's top to LAYER, a layer of its history: one of its first-parent chain,
 * or one it held before (its reflog, `logs/<ref>`, so that a reset, a squash or a pull can be undone).
 *
 * The writable layer is kept on top of the new top (the reconcile of sync.ts brings the view along) unless its
 * changes touch a path the move changes (the same overlap rule as `pull --rebase`): then nothing is done, unless
 * `hard`, which empties the writable layer and makes the view the new union. Every move is appended to the
 * reflog, and the previous top is returned so the caller can print how to undo it.
 */
import { diffTrees } from '../core/changes.js';
import { EMPTY_TREE } from '../core/tree.js';
import { DirtyError, HistoryError, UnknownLayerError, display } from '../errors.js';
import { indexPath, loadIndex, saveIndex } from '../fs/index-file.js';
import { Materializer } from '../fs/materialize.js';
import { readReflog } from '../store/refs.js';
import { withWorkspace } from '../workspace/workspace.js';
import { overlapping, touchedPaths } from './pull.js';
import { resolveLayer, stackName } from './resolve.js';
import { planSync, reconcile } from './sync.js';
import type { WorkspaceOptions } from './types.js';

export interface ResetOptions extends WorkspaceOptions {
  layer: string;
  /** Empty the writable layer instead of refusing on a conflict. */
  hard?: boolean;
}

export interface ResetResult {
  previous: string | null;
  id: string;
  /** What the writable layer held and was dropped (hard), as view paths. */
  discarded: string[];
  warnings: string[];
}

export async function reset(opts: ResetOptions): Promise<ResetResult> {
  return withWorkspace(opts.cwd ?? process.cwd(), async (ws) => {
    const store = ws.store;
    const objects = store.objects;
    const ref = store.stackRef;
    const top = store.head();
    const history = new Set(store.layers(top).map((c) => c.oid));
    for (const e of readReflog(ws.gitdir, ref)) history.add(e.new).add(e.old);
    history.delete('0'.repeat(40));
    // A top the stack held before (in its reflog) is named by its id, though it is no longer in the stack.
    let target: string;
    const prefix = opts.layer.toLowerCase();
    const earlier = /^[0-9a-f]{4,40}$/.test(prefix) ? [...history].filter((h) => h.startsWith(prefix)) : [];
    if (earlier.length > 1) throw new UnknownLayerError(opts.layer, 'ambiguous layer id');
    if (earlier.length === 1 && store.objects.has(earlier[0])) target = earlier[0];
    else target = resolveLayer(store, opts.layer).commit.oid;
    if (!history.has(target)) {
      throw new HistoryError(`cannot reset to ${opts.layer}: layer ${target.slice(0, 12)} is not in the history of stack '${stackName(ref)}' (its layers and the tops it held before)`, { layer: target });
    }
    const plan = planSync(ws);
    const before = plan.lowerTree;
    const after = store.unionTree(target);
    const dirty = plan.upperTree !== EMPTY_TREE;
    let discarded: string[] = [];
    if (dirty && before !== after) {
      const mine = touchedPaths(objects, before, plan.upperTree);
      const moved = diffTrees(objects, before, after).map((c) => c.path);
      const clash = overlapping(mine, moved);
      if (clash.length && !opts.hard) {
        const shown = clash.slice(0, 10).map(display).join(', ') + (clash.length > 10 ? `, ... (${clash.length - 10} more)` : '');
        throw new DirtyError(`cannot reset to ${opts.layer}: the writable layer changes ${clash.length} path${clash.length === 1 ? '' : 's'} the move changes (${shown}); commit them, or use --hard to discard the writable layer`, { paths: clash.map(display) });
      }
    }
    // Record the view's edits in the writable layer first, so that the second reconcile sees only the move.
    await reconcile(ws);
    if (top !== target) store.moveStack(target, top, `reset: moving to ${opts.layer}`);
    if (opts.hard && dirty) {
      discarded = touchedPaths(objects, before, plan.upperTree).map(display);
      const up = loadIndex(indexPath(ws.gitdir, 'upper'), objects);
      await new Materializer(ws.upper, objects, plan.blobs, up.index).apply(diffTrees(objects, plan.upperTree, null));
      saveIndex(indexPath(ws.gitdir, 'upper'), objects, null, up.index);
    }
    const s = await reconcile(ws, { onProgress: opts.onProgress });
    return { previous: top, id: target, discarded, warnings: [...plan.warnings, ...s.warnings] };
  });
}
