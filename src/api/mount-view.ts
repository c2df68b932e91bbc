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
import { Index, indexPath, saveIndex } from '../fs/index-file.js';
import { Materializer } from '../fs/materialize.js';
import { withWorkspace } from '../workspace/workspace.js';
import { reconcile } from './sync.js';
import type { WorkspaceOptions } from './types.js';

export interface MountViewOptions extends WorkspaceOptions {
  /** Where to put the view; default: the workspace's current view, else `view/` in the workspace. */
  target?: string;
  /** Replace the contents of a non-empty directory that is not this workspace's view. */
  force?: boolean;
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
    try {
      const m = new Materializer(staging, ws.store.objects, s.blobs, index, opts.onProgress && ((p) => opts.onProgress!({ phase: 'write', ...p })));
      await m.apply(diffTrees(ws.store.objects, null, s.viewTree));
      written = m.written;
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
      saveIndex(indexPath(ws.gitdir, 'view'), ws.store.objects, s.viewTree, index);
      fs.rmSync(pending, { force: true });
    } catch (e) {
      if (!isSystemRefusal(e)) throw e;
      s.warnings.push(`could not save the view's stat cache (${(e as Error).message}); the next command rebuilds it`);
    }
    return { view: target, written, refreshed: false, detached, warnings: s.warnings };
  });
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
