/**
 * `push [REMOTE] [STACK]`: publish a stack's layers (its commits) to a remote branch of the same name. Only a
 * fast-forward is accepted (the remote's top must be one of the local stack's layers) unless `force`.
 */
import { UsageError } from '../errors.js';
import { checkRefName, readRef, updateRef } from '../store/refs.js';
import { listRemote, NonFastForwardError, pushRef, safeUrl } from '../store/remote.js';
import type { Store } from '../store/store.js';
import { withWorkspace } from '../workspace/workspace.js';
import { defaultRemote, resolveSource, stackName } from './remote.js';
import type { WorkspaceOptions } from './types.js';

export interface PushOptions extends WorkspaceOptions {
  /** A remote's name, a URL or a path; default: the stack's upstream remote, else origin. */
  remote?: string;
  /** The local stack to push (default: the current one); it goes to the remote branch of the same name. */
  stack?: string;
  /** Replace the remote branch even when that drops layers it has. */
  force?: boolean;
}

export interface PushResult {
  remote: string | null;
  url: string;
  ref: string;
  old: string | null;
  new: string;
  upToDate: boolean;
}

/** Is `ancestor` reachable from `from` (any parent)? Only the local store is searched. */
export function isAncestor(store: Store, ancestor: string, from: string): boolean {
  if (!store.objects.has(ancestor)) return false;
  const seen = new Set<string>();
  const todo = [from];
  while (todo.length) {
    const c = todo.pop()!;
    if (c === ancestor) return true;
    if (seen.has(c)) continue;
    seen.add(c);
    todo.push(...store.readCommit(c).parents);
  }
  return false;
}

export async function push(opts: PushOptions = {}): Promise<PushResult> {
  const cwd = opts.cwd ?? process.cwd();
  return withWorkspace(cwd, async (ws) => {
    const store = ws.store;
    const stack = opts.stack ?? stackName(store.stackRef);
    const ref = `refs/heads/${stack}`;
    try { checkRefName(ref); } catch { throw new UsageError(`invalid stack name: ${stack}`); }
    const oid = readRef(ws.gitdir, ref);
    if (!oid) throw new UsageError(`stack '${stack}' has no layers to push`);
    const name = opts.remote ?? (await defaultRemote(ws, stack));
    if (!name) throw new UsageError("no remote to push to: name one (glayer push URL) or add one (glayer remote add origin URL)");
    const source = await resolveSource(ws.gitdir, name, cwd);
    const listed = await listRemote(source.transport, { onProgress: opts.onProgress });
    const old = listed.refs.get(ref) ?? null;
    const result = { remote: source.name, url: safeUrl(source.url), ref, old, new: oid, upToDate: old === oid };
    if (old !== oid) {
      if (old !== null && !opts.force && !isAncestor(store, old, oid)) {
        throw new NonFastForwardError(source.url, ref, old, oid, store.objects.has(old));
      }
      await pushRef(ws.gitdir, source.transport, { oid, ref, expected: old, force: opts.force }, { onProgress: opts.onProgress });
    }
    if (source.name) {
      const tracking = `refs/remotes/${source.name}/${stack}`;
      const cur = readRef(ws.gitdir, tracking);
      if (cur !== oid) updateRef(ws.gitdir, tracking, oid, cur);
    }
    return result;
  });
}
