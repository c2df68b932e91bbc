/**
 * `workspace add|list|remove`: more workspaces on one store, as `git worktree` gives a repository more work
 * trees. A linked workspace has its own stack pointer (HEAD), writable layer, view and stat caches, and shares
 * everything else: objects, stacks, tags, remotes, config, union caches and the layer cache, so a layer is
 * stored once and extracted once however many workspaces (and live views) show it. Its `.glayer` is a file
 * naming its private git dir, `<store>/worktrees/NAME`, in git's own layout.
 *
 * Several workspaces may be on one stack: a commit in one moves the stack, and the others' views follow at their
 * next command (as after a pull). A stack checked out by a workspace cannot be deleted.
 */
import { resolve } from 'node:path';
import { DirtyError, GlayerError, UnknownRefError, UsageError } from '../errors.js';
import { readRef, readSymbolicHead } from '../store/refs.js';
import { Workspace, addLinkedWorkspace, linkedWorkspaces, removeLinkedWorkspace, withWorkspace } from '../workspace/workspace.js';
import { stackName } from './resolve.js';
import type { WorkspaceOptions } from './types.js';

export interface WorkspaceInfo {
  /** The workspace's directory. */
  root: string;
  /** The stack it is on. */
  stack: string;
  /** The first workspace of the store (the one whose `.glayer` holds it). */
  main: boolean;
  /** The workspace the command ran in. */
  current: boolean;
  /** Its view, when it has one, and whether that is a live mount. */
  view: string | null;
  live: boolean;
}

export interface AddWorkspaceOptions extends WorkspaceOptions {
  path: string;
  /** The stack of the new workspace (default: the current workspace's). */
  stack?: string;
}

export async function addWorkspace(opts: AddWorkspaceOptions): Promise<WorkspaceInfo> {
  const cwd = opts.cwd ?? process.cwd();
  return withWorkspace(cwd, (ws) => {
    let ref = ws.store.stackRef;
    if (opts.stack !== undefined) {
      ref = `refs/heads/${opts.stack}`;
      if (readRef(ws.gitdir, ref) === null) throw new UnknownRefError('stack', opts.stack);
    }
    const root = resolve(cwd, opts.path);
    addLinkedWorkspace(ws.store.commonDir, root, ref);
    return { root, stack: stackName(ref), main: false, current: false, view: null, live: false };
  });
}

export async function listWorkspaces(opts: WorkspaceOptions = {}): Promise<WorkspaceInfo[]> {
  return withWorkspace(opts.cwd ?? process.cwd(), (ws) => all(ws), { lock: false });
}

function all(ws: Workspace): WorkspaceInfo[] {
  const common = ws.store.commonDir;
  const out: WorkspaceInfo[] = [];
  const describe = (root: string, gitdir: string, main: boolean): void => {
    let stack = '?';
    try { stack = stackName(readSymbolicHead(gitdir)); } catch { /* damaged: shown as ? */ }
    let view: string | null = null;
    let live = false;
    try {
      const other = new Workspace(root);
      try { const s = other.readState(); view = s.view; live = !!s.live; } finally { other.close(); }
    } catch { /* gone */ }
    out.push({ root, stack, main, current: gitdir === ws.gitdir, view, live });
  };
  describe(resolve(common, '..'), common, true);
  for (const w of linkedWorkspaces(common)) describe(w.root, w.gitdir, false);
  return out;
}

export interface RemoveWorkspaceOptions extends WorkspaceOptions {
  path: string;
  /** Remove it even with uncommitted changes in its writable layer. */
  force?: boolean;
}

export async function removeWorkspace(opts: RemoveWorkspaceOptions): Promise<WorkspaceInfo> {
  const cwd = opts.cwd ?? process.cwd();
  return withWorkspace(cwd, async (ws) => {
    const root = resolve(cwd, opts.path);
    const w = linkedWorkspaces(ws.store.commonDir).find((l) => l.root === root);
    if (!w) throw new UsageError(`${root} is not a linked workspace of this store (see glayer workspace list)`);
    if (w.gitdir === ws.gitdir) throw new UsageError('cannot remove the workspace the command runs in; run it from another one');
    const info = all(ws).find((i) => i.root === root)!;
    const other = new Workspace(root);
    await other.lock();
    try {
      const state = other.readState();
      if (state.live) throw new GlayerError('E_LIVE', `${root} has a live view mounted at ${state.view}; unmount it first (glayer umount -C ${root})`, { root }, 1);
      if (!opts.force && other.hasChanges()) throw new DirtyError(`${root} has uncommitted changes in its writable layer; commit them or use --force`, { root });
      removeLinkedWorkspace(w);
    } finally {
      other.close();
    }
    return info;
  });
}
