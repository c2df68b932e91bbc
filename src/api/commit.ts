/**
 * `commit`: freeze the writable layer into a new layer on top of the stack. Every object is written (and
 * synced) before the stack's ref moves; the writable layer is emptied only after. A kill at any point leaves
 * the old stack or the new one, and the writable layer's content either still there or committed.
 */
import { EMPTY_TREE } from '../core/tree.js';
import { applyLayer } from '../core/union.js';
import { diffTrees } from '../core/changes.js';
import { GlayerError, NothingToCommitError, ReservedNameError, UsageError } from '../errors.js';
import { indexPath, saveIndex } from '../fs/index-file.js';
import { Materializer } from '../fs/materialize.js';
import { withWorkspace } from '../workspace/workspace.js';
import { addLayerObjects } from './layer-objects.js';
import { reconcile } from './sync.js';
import type { WorkspaceOptions } from './types.js';

export interface CommitOptions extends WorkspaceOptions {
  message: string;
}

export interface CommitResult { id: string; parent: string | null; warnings: string[] }

export async function commit(opts: CommitOptions): Promise<CommitResult> {
  if (!opts.message || opts.message.trim() === '') throw new UsageError('a commit message is required (-m MSG)');
  return withWorkspace(opts.cwd ?? process.cwd(), async (ws) => {
    const s = await reconcile(ws, opts);
    if (s.unrepresentable.length) throw new ReservedNameError(s.unrepresentable);
    if (s.upperTree === EMPTY_TREE) throw new NothingToCommitError();
    const store = ws.store;
    const objects = store.objects;
    // The new union is the view; check the engine agrees before anything is written.
    const union = applyLayer(objects, s.lowerTree, s.upperTree, { layer: 'writable layer', clean: store.clean });
    if (union !== s.viewTree) throw new GlayerError('E_INTERNAL', 'internal error: the writable layer does not reproduce the view; please report this bug', {}, 70);
    const w = objects.writer();
    await addLayerObjects(store, w, s.upperTree, ws.upper);
    const id = store.makeCommit(w, s.upperTree, s.head ? [s.head] : [], opts.message);
    objects.persistTrees(w, union);
    w.flush();
    store.moveStack(id, s.head);
    store.rememberUnion(id, union);
    // Now the layer is safe in the store: empty the writable layer.
    await new Materializer(ws.upper, objects, s.blobs, s.upperIndex).apply(diffTrees(objects, s.upperTree, null));
    saveIndex(indexPath(ws.gitdir, 'upper'), objects, null, s.upperIndex);
    ws.writeState({ ...s.state, lower: id });
    return { id, parent: s.head, warnings: s.warnings };
  });
}
