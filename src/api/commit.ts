/**
 * `commit`: freeze the writable layer into a new layer on top of the stack.
 *
 * The layer's blobs are read straight from the files that hold them (view or writable layer), with no copy
 * into the writable layer first. Every object is written and synced before the stack's ref moves (under its
 * lock file); the writable layer is emptied only after. A kill at any point leaves the old stack or the new
 * one; the edits are then either still in the view and the writable layer, or in the new layer, and the next
 * reconcile makes the writable layer agree (see sync.ts).
 */
import * as fs from '../sys/fs.js';
import { EMPTY_BLOB, EMPTY_TREE, walkTree } from '../core/tree.js';
import { applyLayer } from '../core/union.js';
import { META_NAME } from '../core/meta.js';
import { GlayerError, NothingToCommitError, ObjectError, ReservedNameError, UsageError, display, isSystemRefusal } from '../errors.js';
import { withDeepPath } from '../fs/paths.js';
import { withWorkspace } from '../workspace/workspace.js';
import { checkUpperManifest, emptyUpper, planSync, saveView, writeView } from './sync.js';
import type { WorkspaceOptions } from './types.js';
import { commitLive, type LivePlan } from './live.js';

export interface CommitOptions extends WorkspaceOptions {
  message: string;
}

export interface CommitResult { id: string; parent: string | null; warnings: string[] }

export async function commit(opts: CommitOptions): Promise<CommitResult> {
  if (!opts.message || opts.message.trim() === '') throw new UsageError('a commit message is required (-m MSG)');
  return withWorkspace(opts.cwd ?? process.cwd(), async (ws) => {
    const plan = planSync(ws);
    if ((plan as LivePlan).live) return commitLive(ws, plan as LivePlan, opts.message, opts.onProgress);
    if (plan.unrepresentable.length) throw new ReservedNameError(plan.unrepresentable);
    if (plan.upperTree === EMPTY_TREE) throw new NothingToCommitError();
    const store = ws.store;
    const objects = store.objects;
    // The new union is the view; check the engine agrees before anything is written.
    const union = applyLayer(objects, plan.lowerTree, plan.upperTree, { layer: 'writable layer', clean: store.clean });
    if (union !== plan.viewTree) throw new GlayerError('E_INTERNAL', 'internal error: the writable layer does not reproduce the view; please report this bug', {}, 70);
    // And its manifest the view's metadata.
    checkUpperManifest(ws, plan, union);

    let id: string;
    const files = [...walkTree(objects, plan.upperTree)].filter(({ entry }) => entry.mode !== '40000');
    // Count what the pack will hold first, so it is written in one pass (its header holds the count).
    const trees = objects.missingTrees([plan.upperTree, union]);
    const newBlobs = new Set<string>();
    const has = objects.presence();
    for (const { entry } of files) if (!has(entry.oid)) newBlobs.add(entry.oid);
    const w = objects.writer(newBlobs.size + trees.length + 1);
    try {
      let done = 0;
      for (const { path, entry } of files) {
        if (opts.onProgress && (++done % 500 === 0 || done === files.length)) opts.onProgress({ phase: 'commit', done, total: files.length });
        if (entry.oid === EMPTY_BLOB) { w.add('blob', Buffer.alloc(0)); continue; }
        if (!newBlobs.has(entry.oid)) continue;
        // The writable layer's manifest is made by the reconcile; no file of the view holds it.
        if (path === META_NAME && plan.upperMeta) { w.add('blob', plan.upperMeta); continue; }
        const src = plan.blobs.fileFor(entry.oid);
        if (!src) throw new GlayerError('E_INTERNAL', `internal error: no file holds ${display(path)} (${entry.oid}); please report this bug`, {}, 70);
        const oid = await withDeepPath(src.root, src.rel, (p) => src.link
          ? w.add('blob', fs.readlinkSync(p, { encoding: 'buffer' }))
          : w.addFile(p, fs.lstatSync(p).size, entry.oid));
        if (oid !== entry.oid) throw new ObjectError(entry.oid, `not what ${display(path)} holds now: it changed during the commit; run it again`);
      }
      for (const data of trees) w.add('tree', data);
      id = store.makeCommit(w, plan.upperTree, plan.head ? [plan.head] : [], opts.message);
      w.flush();
    } catch (e) {
      w.discard();
      throw e;
    }
    store.moveStack(id, plan.head);

    // The layer is safe in the store and the stack is on it: the commit is done. Bring the view up to date, then
    // empty the writable layer. If the system refuses that (a full disk), the next command's reconcile finishes it
    // (an upper that still holds what the stack holds is recorded as no change): a warning, not a failure.
    try {
      store.rememberUnion(id, union);
      store.rememberUnionManifest(id, plan.viewMeta);
      await writeView(ws, plan, opts);
      await emptyUpper(ws, plan);
      saveView(ws, plan);
      ws.writeState({ ...plan.state, lower: id });
    } catch (e) {
      if (!isSystemRefusal(e)) throw e;
      plan.warnings.push(`the layer is committed, but emptying the writable layer failed (${(e as Error).message}); the next glayer command finishes it`);
    }
    return { id, parent: plan.head, warnings: plan.warnings };
  });
}
