/**
 * `mount-view`: materialize the union of the stack and the writable layer into a directory.
 *
 * The workspace's current view is refreshed in place (reconcile writes only the paths that changed). A new
 * target is built in a staging directory beside it and renamed into place, so it is either absent or
 * complete; an existing target that is not empty is refused unless `force`, and then only its contents are
 * replaced. Nothing outside the target (and its staging sibling) is ever written or deleted.
 */
import * as fs from '../sys/fs.js';
import { basename, dirname, join, resolve } from 'node:path';
import { diffTrees } from '../core/changes.js';
import { GlayerError, TargetNotEmptyError, UnsafePathError, IoError, isSystemRefusal } from '../errors.js';
import { EMPTY_TREE } from '../core/tree.js';
import { LinkPartner, unshare } from '../fs/copy-up.js';
import { Index, indexPath, saveIndex } from '../fs/index-file.js';
import { Materializer } from '../fs/materialize.js';
import { applyMeta } from '../fs/apply-meta.js';
import { formatManifest, metaChanges } from '../core/meta.js';
import { withWorkspace, type State, type Workspace } from '../workspace/workspace.js';
import type { BackendName } from '../mount/backend.js';
import { mountViewLive, umountLive } from './live.js';
import { notAppliedWarning, reconcile } from './sync.js';
import type { WorkspaceOptions } from './types.js';

export interface MountViewOptions extends WorkspaceOptions {
  /** Where to put the view; default: the workspace's current view, else `view/` in the workspace. */
  target?: string;
  /** Replace the contents of a non-empty directory that is not this workspace's view. */
  force?: boolean;
  /** Mount the union (kernel overlayfs or fuse-overlayfs) instead of copying it (live.ts). */
  live?: boolean;
  /** With `live`: the backend to use (default: the kernel when the process may mount, else fuse). */
  backend?: BackendName;
}

export interface MountViewResult {
  view: string;
  /** Files and symlinks written (on a refresh: only those that changed). */
  written: number;
  /** True when an existing view was refreshed in place. */
  refreshed: boolean;
  /** A previous view left in place, no longer tracked. */
  detached: string | null;
  warnings: string[];
  /** A live view: its backend, how many lower directories it mounts and how many the cache had to extract. */
  live?: { backend: BackendName; lowers: number; extracted: number };
}

export async function mountView(opts: MountViewOptions = {}): Promise<MountViewResult> {
  const cwd = opts.cwd ?? process.cwd();
  return withWorkspace(cwd, async (ws) => {
    const state = ws.readState();
    if (state.view !== null && !fs.existsSync(state.view)) {
      // The old view was removed: mounting a new one is the fix, so no warning about it.
      state.view = null;
      ws.writeState(state);
    }
    const target = opts.target !== undefined ? resolve(cwd, opts.target) : state.view ?? ws.defaultView;
    checkTarget(ws.root, ws.gitdir, ws.upper, target);
    if (opts.live) {
      const r = await mountViewLive(ws, state, target, opts, async () => { await reconcile(ws, opts); return ws.readState(); });
      return { view: r.view, written: 0, refreshed: false, detached: null, warnings: r.warnings, live: { backend: r.backend, lowers: r.lowers, extracted: r.extracted } };
    }
    if (state.live) {
      // Back to a copied view: unmount the live one first (its changes stay in the writable layer).
      const u = umountLive(ws, state, undefined);
      state.view = null;
      state.live = null;
      const s = await mountCopy(ws, cwd, opts, state, target);
      return { ...s, warnings: [...u.warnings, ...s.warnings] };
    }
    return mountCopy(ws, cwd, opts, state, target);
  });
}

async function mountCopy(ws: Workspace, cwd: string, opts: MountViewOptions, state: State, target: string): Promise<MountViewResult> {
  {
    void cwd;
    let written = 0;
    const countingProgress = opts.onProgress;
    if (state.view !== null && samePath(state.view, target) && fs.existsSync(target)) {
      const s = await reconcile(ws, { onProgress: countingProgress });
      return { view: target, written: s.viewWritten, refreshed: true, detached: null, warnings: s.warnings };
    }
    // A new target: bring the current view's edits in first, then build the new one.
    const s = await reconcile(ws, opts);
    let st: fs.Stats | null = null;
    try { st = fs.lstatSync(target); } catch { /* absent */ }
    if (st && st.isSymbolicLink()) throw new UnsafePathError(target, 'the view target is a symlink');
    if (st && !st.isDirectory()) throw new UnsafePathError(target, 'the view target exists and is not a directory');
    if (st && fs.readdirSync(target).length > 0 && !opts.force) throw new TargetNotEmptyError(target);
    const parent = dirname(target);
    fs.mkdirSync(parent, { recursive: true });
    const staging = join(parent, `.${basename(target)}.glayer-staging-${process.pid}`);
    fs.rmSync(staging, { recursive: true, force: true });
    // Tell `glayer fsck` where to look for leftovers if this process is killed before the swap.
    const pending = join(ws.stateDir, 'pending-views');
    fs.writeFileSync(pending, target + '\n');
    fs.mkdirSync(staging);
    const index = new Index();
    // The view left behind keeps its files, but no longer as the writable layer's: an edit there must not reach
    // the workspace (copy-up.ts shares a path's file between the view and the writable layer).
    const old = state.view !== null && fs.existsSync(state.view) ? state.view : null;
    const unshared = old ? unshare(ws.upper, s.upperIndex, old, ws.stateDir) : 0;
    const partner = new LinkPartner(ws.upper, s.upperIndex, parent);
    try {
      const m = new Materializer(staging, ws.store.objects, s.blobs, index, opts.onProgress && ((p) => opts.onProgress!({ phase: 'write', ...p })), partner);
      await m.apply(diffTrees(ws.store.objects, null, s.viewTree));
      written = m.written;
      // Owners, modes, devices, hardlinks, xattrs and mtimes of the manifest (what the process may apply).
      const applied = applyMeta(staging, index, metaChanges(ws.store.objects, s.viewTree, new Map(), s.viewMeta, []));
      if (applied.notApplied.length) s.warnings.push(notAppliedWarning(applied.notApplied));
      // Swap into place: an empty target is replaced by rename; a forced one has its old contents moved out first.
      if (st) {
        const trash = join(parent, `.${basename(target)}.glayer-old-${process.pid}`);
        fs.renameSync(target, trash);
        fs.renameSync(staging, target);
        fs.rmSync(trash, { recursive: true, force: true });
      } else {
        fs.renameSync(staging, target);
      }
    } catch (e) {
      fs.rmSync(staging, { recursive: true, force: true });
      if ((e as NodeJS.ErrnoException).code && !(e instanceof GlayerError)) throw new IoError(target, e as NodeJS.ErrnoException);
      throw e;
    }
    const detached = state.view !== null && !samePath(state.view, target) && fs.existsSync(state.view) ? state.view : null;
    // Record the view first: a view in place that the state does not name would be refused as "not empty" by the
    // next mount-view. If that fails (a full disk), take the new view away again: the old state, whole.
    try {
      ws.writeState({ ...s.state, view: target, lower: s.head });
    } catch (e) {
      if (!st) fs.rmSync(target, { recursive: true, force: true });
      throw e;
    }
    // Then the view's stat cache, and the leftovers note: without them the next command rehashes the view once.
    try {
      saveIndex(indexPath(ws.gitdir, 'view'), ws.store.objects, s.viewTree, index, formatManifest(s.viewMeta));
      if (unshared || partner.touched) saveIndex(indexPath(ws.gitdir, 'upper'), ws.store.objects, s.upperTree === EMPTY_TREE ? null : s.upperTree, s.upperIndex);
      fs.rmSync(pending, { force: true });
    } catch (e) {
      if (!isSystemRefusal(e)) throw e;
      s.warnings.push(`could not save the view's stat cache (${(e as Error).message}); the next command rebuilds it`);
    }
    return { view: target, written, refreshed: false, detached, warnings: s.warnings };
  }
}

function samePath(a: string, b: string): boolean {
  return resolve(a) === resolve(b);
}

/** The view may not be, contain or sit inside the store or the writable layer, nor be the workspace root. */
function checkTarget(root: string, gitdir: string, upper: string, target: string): void {
  const inside = (a: string, b: string): boolean => a === b || a.startsWith(b + '/');
  for (const p of [gitdir, upper]) {
    if (inside(target, p) || inside(p, target)) throw new UnsafePathError(target, `the view cannot overlap ${p}`);
  }
  if (samePath(target, root)) throw new UnsafePathError(target, 'the view cannot be the workspace root');
}
