/**
 * `stack`: the stacks (branches, `refs/heads/NAME`) of one workspace. `listStacks` lists the local ones (the
 * remote-aware listing, with shared layers, is `stacks`); `newStack` starts one at a layer; `switchStack`
 * points the workspace at another (HEAD, written atomically) and the view follows through the reconcile of
 * sync.ts; `deleteStack` removes one that is not checked out (its layers stay while anything names them).
 *
 * Switching is refused while the writable layer has changes, unless `carry`: then they are kept on top of the
 * new stack, as `git switch` carries a clean-merging working tree.
 */
import { EMPTY_TREE } from '../core/tree.js';
import { DirtyError, RefExistsError, UnknownRefError, UsageError } from '../errors.js';
import { checkRefName, deleteRef, listRefs, readRef, readSymbolicHead, writeSymbolicHead } from '../store/refs.js';
import { storeWorkspaces, withWorkspace } from '../workspace/workspace.js';
import { resolveLayer, stackName } from './resolve.js';
import { planSync, reconcile } from './sync.js';
import type { WorkspaceOptions } from './types.js';

export interface LocalStack {
  name: string;
  current: boolean;
  /** The top layer (null only for the current stack before its first layer). */
  top: string | null;
  layers: number;
}

function stackRef(name: string): string {
  const ref = `refs/heads/${name}`;
  try { checkRefName(ref); } catch { throw new UsageError(`'${name}' is not a valid stack name`, { name }); }
  if (name === 'HEAD' || /[~^:?*[\\\s]/.test(name)) throw new UsageError(`'${name}' is not a valid stack name`, { name });
  return ref;
}

export async function listStacks(opts: WorkspaceOptions = {}): Promise<LocalStack[]> {
  return withWorkspace(opts.cwd ?? process.cwd(), (ws) => {
    const store = ws.store;
    const current = store.stackRef;
    const refs = listRefs(ws.gitdir, 'refs/heads/');
    const out: LocalStack[] = [];
    for (const [ref, top] of refs) out.push({ name: stackName(ref), current: ref === current, top, layers: store.layers(top).length });
    if (!refs.has(current)) out.push({ name: stackName(current), current: true, top: null, layers: 0 });
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }, { lock: false });
}

export async function newStack(opts: WorkspaceOptions & { name: string; from?: string }): Promise<LocalStack> {
  return withWorkspace(opts.cwd ?? process.cwd(), (ws) => {
    const store = ws.store;
    const ref = stackRef(opts.name);
    if (readRef(ws.gitdir, ref) || ref === store.stackRef) throw new RefExistsError('stack', opts.name);
    const top = resolveLayer(store, opts.from ?? 'HEAD').commit.oid;
    store.moveRef(ref, top, null, `stack: created from ${opts.from ?? 'HEAD'}`);
    return { name: opts.name, current: false, top, layers: store.layers(top).length };
  });
}

export interface SwitchResult { from: string; to: string; top: string; carried: boolean; warnings: string[] }

export async function switchStack(opts: WorkspaceOptions & { name: string; carry?: boolean }): Promise<SwitchResult> {
  return withWorkspace(opts.cwd ?? process.cwd(), async (ws) => {
    const store = ws.store;
    const ref = stackRef(opts.name);
    const top = readRef(ws.gitdir, ref);
    if (!top) throw new UnknownRefError('stack', opts.name);
    const from = store.stackRef;
    const plan = planSync(ws);
    const dirty = plan.upperTree !== EMPTY_TREE;
    if (dirty && !opts.carry) {
      throw new DirtyError(`cannot switch to stack '${opts.name}': the writable layer has changes (commit them, or use --carry to keep them on top of '${opts.name}')`, { stack: opts.name });
    }
    if (from === ref) return { from: stackName(from), to: opts.name, top, carried: false, warnings: plan.warnings };
    // The view's edits go into the writable layer first, so the second reconcile sees only the stack move.
    const first = await reconcile(ws);
    writeSymbolicHead(ws.gitdir, ref);
    const s = await reconcile(ws, { onProgress: opts.onProgress });
    return { from: stackName(from), to: opts.name, top, carried: dirty, warnings: [...first.warnings, ...s.warnings] };
  });
}

export async function deleteStack(opts: WorkspaceOptions & { name: string }): Promise<{ name: string; top: string }> {
  return withWorkspace(opts.cwd ?? process.cwd(), (ws) => {
    const ref = stackRef(opts.name);
    const top = readRef(ws.gitdir, ref);
    if (ref === ws.store.stackRef) throw new UsageError(`cannot delete stack '${opts.name}': it is checked out (switch to another stack first)`, { name: opts.name });
    for (const w of storeWorkspaces(ws.store.commonDir)) {
      let head: string | null = null;
      try { head = readSymbolicHead(w.gitdir); } catch { /* damaged: not this stack */ }
      if (head === ref) throw new UsageError(`cannot delete stack '${opts.name}': the workspace ${w.root} has it checked out`, { name: opts.name, workspace: w.root });
    }
    if (!top) throw new UnknownRefError('stack', opts.name);
    deleteRef(ws.gitdir, ref, top);
    return { name: opts.name, top };
  });
}
