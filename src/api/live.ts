/**
 * Live views (`glayer mount-view --live`): the union mounted (kernel overlayfs or fuse-overlayfs, src/mount/)
 * instead of copied. The writable layer is the mount's upper directory, so it holds exactly the changes:
 * `status`, `diff` and `commit` read it alone, O(changes) instead of O(tree).
 *
 * - status/diff: the upper directory read as a layer (both whiteout forms, mount/upper.ts) over the stack;
 *   written nothing (the mount owns the upper while it is mounted).
 * - commit: the new layer is taken from the upper directory while the view stays mounted (like `docker commit`),
 *   then the view is remounted on the new stack with an empty upper directory: the old mount is detached (a
 *   process holding a file open in it keeps it), the old upper directory moved aside and removed.
 * - A stack that moved under a live view (pull, a commit killed before its remount) is remounted by the next
 *   command that reconciles; direct edits to `upper/` show after the next `mount-view` (a remount).
 */
import { computeDelta } from '../core/delta.js';
import { hashObject } from '../core/hash.js';
import { META_NAME, formatManifest, manifestDelta, withManifest } from '../core/meta.js';
import { lookup, EMPTY_BLOB, EMPTY_TREE, walkTree } from '../core/tree.js';
import { applyLayer } from '../core/union.js';
import { OPAQUE_MARKER } from '../core/whiteout.js';
import { GlayerError, NothingToCommitError, ObjectError, display } from '../errors.js';
import type { BackendName } from '../mount/backend.js';
import { addFile, chooseBackend, emptyDir, emptyUpper, mountLive, prepareTarget, samePath, unmountLive, upperAfterUmount } from '../mount/live.js';
import { observeLiveUpper, readLiveUpper, writeUpperManifest, type LiveUpper } from '../mount/upper.js';
import { IS_ROOT } from '../fs/observe-meta.js';
import type { State, Workspace } from '../workspace/workspace.js';
import { WorkspaceBlobs, checkUpperManifest, type SyncPlan } from './sync.js';
import type { CommitResult } from './commit.js';
import type { Progress } from './types.js';

export interface LivePlan extends SyncPlan { live: LiveUpper }

/** The reconcile of a live view: the upper directory alone, read as a layer over the stack. */
export function planLive(ws: Workspace, state: State): LivePlan {
  const store = ws.store;
  const objects = store.objects;
  const head = store.head();
  const lowerTree = store.unionTree(head);
  const up = readLiveUpper(ws.gitdir, ws.upper, objects);
  const U1 = up.tree;
  const Vu = applyLayer(objects, lowerTree, U1, { layer: 'writable layer', clean: store.clean });
  // What the mount did, in glayer's canonical form: no no-op copy-ups (a `touch` copies a file up), markers only
  // where they hide something.
  const Ustar = computeDelta(objects, lowerTree, Vu, (p) => lookup(objects, U1, `${p}/${OPAQUE_MARKER}`) !== null);
  const blobs = new WorkspaceBlobs(ws);
  blobs.addRoot(ws.upper, up.index);
  const warnings = [...up.warnings];
  if (state.live && state.view && state.live.head !== head) warnings.push(`the live view ${state.view} shows an older stack top; 'glayer mount-view --live' remounts it`);
  // The view's metadata is the upper directory's entries as the mount shows them over the stack's manifest; the
  // layer's manifest is what takes the stack's to it (as in a copied view, sync.ts).
  const lowerMeta = store.unionManifest(head);
  const viewMeta = observeLiveUpper(ws.upper, objects, lowerTree, lowerMeta, U1, Vu, state.live?.lowers ?? [], IS_ROOT);
  const upperMeta = formatManifest(manifestDelta(objects, lowerTree, lowerMeta, Ustar, Vu, viewMeta));
  let upperTree = Ustar;
  if (upperMeta) {
    const oid = hashObject('blob', upperMeta);
    upperTree = withManifest(objects, Ustar, oid);
    blobs.addMemory(oid, upperMeta);
  }
  return {
    state, head, lowerTree, upperTree, upperIndex: up.index, viewTree: Vu, viewIndex: null, warnings,
    unrepresentable: [], blobs, upperNow: U1, upperDirty: false, viewNow: null, viewDirty: false, live: up,
    lowerMeta, viewMeta, viewMetaNow: viewMeta, upperMeta, metaNotApplied: [], shared: null, hashed: { upper: 0, view: 0 },
  };
}

/**
 * The end of a reconcile of a live view: save the upper's stat cache; when the stack moved under the mount (a
 * pull, a commit killed before its remount), remount the view on the stack top, keeping the upper directory.
 */
export async function finishLive(ws: Workspace, plan: LivePlan): Promise<void> {
  plan.live.save();
  const { state } = plan;
  if (state.live && state.view && state.live.head !== plan.head) {
    const i = plan.warnings.findIndex((w) => w.includes('shows an older stack top'));
    if (i >= 0) plan.warnings.splice(i, 1);
    await remount(ws, state, state.view, state.live.backend, plan.head, plan.warnings, false, plan.upperMeta);
  }
}

/** `commit` in a live view (see the top of this file). */
export async function commitLive(ws: Workspace, plan: LivePlan, message: string, onProgress?: Progress): Promise<CommitResult> {
  if (plan.upperTree === EMPTY_TREE) throw new NothingToCommitError();
  const store = ws.store;
  const objects = store.objects;
  const union = plan.viewTree;
  // The layer's manifest must give the view's metadata, as in a copied view's commit.
  checkUpperManifest(ws, plan, union);
  const w = objects.writer();
  const files = [...walkTree(objects, plan.upperTree)].filter(({ entry }) => entry.mode !== '40000');
  const has = objects.presence();
  let done = 0;
  for (const { path, entry } of files) {
    if (onProgress && (++done % 500 === 0 || done === files.length)) onProgress({ phase: 'commit', done, total: files.length });
    if (entry.oid === EMPTY_BLOB) { w.add('blob', Buffer.alloc(0)); continue; }
    if (has(entry.oid)) continue;
    if (path === META_NAME && plan.upperMeta) { w.add('blob', plan.upperMeta); continue; }
    const src = plan.blobs.fileFor(entry.oid);
    if (!src) throw new GlayerError('E_INTERNAL', `internal error: no file holds ${display(path)} (${entry.oid}); please report this bug`, {}, 70);
    const oid = await addFile(w, src, entry.oid);
    if (oid !== entry.oid) throw new ObjectError(entry.oid, `not what ${display(path)} holds now: it changed during the commit; run it again`);
  }
  objects.persistTrees(w, plan.upperTree);
  const id = store.makeCommit(w, plan.upperTree, plan.head ? [plan.head] : [], message);
  objects.persistTrees(w, union);
  w.flush();
  store.moveStack(id, plan.head);
  store.rememberUnion(id, union);
  store.rememberUnionManifest(id, plan.viewMeta);

  // The layer is safe in the store: remount the view on it with an empty upper directory.
  const warnings = [...plan.warnings];
  const state = { ...plan.state, lower: id };
  ws.writeState(state);
  if (state.live && state.view) await remount(ws, state, state.view, state.live.backend, id, warnings, true);
  else emptyUpper(ws);
  return { id, parent: plan.head, warnings };
}

/**
 * Remount the live view at `target` on `head`. `fresh`: the upper directory's content is committed; the old
 * mount is detached at once (processes keep their open files) and the view comes back with an empty upper.
 */
async function remount(ws: Workspace, state: State, target: string, backend: BackendName, head: string | null, warnings: string[], fresh: boolean, meta: Buffer | null = null): Promise<void> {
  unmountLive(ws, target, state.live, warnings, fresh);
  // A kept upper directory's records go through a manifest, which the mount gives back to its entries.
  if (fresh) emptyUpper(ws); else writeUpperManifest(ws.upper, meta);
  const after: State = { ...state, live: null };
  await mountLive(ws, after, target, chooseBackend(backend), head);
}

export interface MountLiveOptions {
  target?: string;
  backend?: BackendName;
  force?: boolean;
}

export interface MountLiveResult {
  view: string;
  backend: BackendName;
  lowers: number;
  extracted: number;
  /** A copied view replaced by this mount (its edits were recorded in the writable layer first). */
  replacedCopy: boolean;
  warnings: string[];
}

/**
 * `mount-view --live`: mount (or remount) the live view. A copied view is reconciled first (its edits go to the
 * writable layer) and then emptied if the live view takes its place.
 */
export async function mountViewLive(ws: Workspace, state: State, target: string, opts: MountLiveOptions, reconcileCopy: () => Promise<State>): Promise<MountLiveResult> {
  const warnings: string[] = [];
  const backend = chooseBackend(opts.backend);
  let replacedCopy = false;
  if (state.live && state.view) {
    // Remount (the stack or the upper may have changed), possibly somewhere else; the upper's records go through
    // a manifest, which the mount gives back to its entries.
    const meta = planLive(ws, state).upperMeta;
    unmountLive(ws, state.view, state.live, warnings);
    writeUpperManifest(ws.upper, meta);
    state = { ...state, live: null, view: null };
    ws.writeState(state);
  } else if (state.view) {
    // A copied view: record its edits, then stop tracking it before anything in it is removed.
    state = await reconcileCopy();
    const copy = state.view!;
    state = { ...state, view: null };
    ws.writeState(state);
    if (samePath(copy, target)) { emptyDir(copy); replacedCopy = true; }
  }
  prepareTarget(ws, target, opts.force === true);
  const m = await mountLive(ws, state, target, backend, ws.store.head());
  return { view: target, backend: m.backend, lowers: m.lowers, extracted: m.extracted, replacedCopy, warnings };
}

/** `umount`: unmount the live view; the writable layer keeps its changes (in the `.wh.` form again). */
export function umountLive(ws: Workspace, state: State, target: string | undefined): { view: string; warnings: string[] } {
  const warnings: string[] = [];
  if (!state.live || !state.view) throw new GlayerError('E_NOT_LIVE', 'there is no live view to unmount (see glayer info)', {}, 2);
  if (target !== undefined && !samePath(target, state.view)) throw new GlayerError('E_NOT_LIVE', `${target} is not this workspace's live view (${state.view})`, { target }, 2);
  // The upper directory's metadata is its entries' own while mounted; a copied view reads it from a manifest.
  const meta = planLive(ws, state).upperMeta;
  unmountLive(ws, state.view, state.live, warnings);
  ws.writeState({ ...state, view: null, live: null });
  upperAfterUmount(ws, ws.store);
  writeUpperManifest(ws.upper, meta);
  return { view: state.view, warnings };
}

