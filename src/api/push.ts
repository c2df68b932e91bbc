/**
 * `push [REMOTE] [STACK]`: publish a stack's layers (its commits) to a remote branch of the same name. Only a
 * fast-forward is accepted (the remote's top must be one of the local stack's layers) unless `force`.
 *
 * The stack's image config (`refs/glayer/config/STACK`) goes with it, in the same request: sent when the remote
 * has none or an older one (a fast-forward), replaced with `force`; a config the remote has that the local one
 * does not build on is left as it is, with a warning, and the stack is pushed all the same.
 */
import { UsageError } from '../errors.js';
import { checkRefName, listRefs, readRef, updateRef } from '../store/refs.js';
import { listRemote, NonFastForwardError, peel, pushRef, pushRefs, safeUrl, writeUpstream, type PushRequest } from '../store/remote.js';
import type { Store } from '../store/store.js';
import { withWorkspace } from '../workspace/workspace.js';
import { configBelow, configRef, remoteConfigRef, trackConfig } from './image-config.js';
import { defaultRemote, resolveSource, stackName } from './remote.js';
import type { WorkspaceOptions } from './types.js';

export interface PushOptions extends WorkspaceOptions {
  /** A remote's name, a URL or a path; default: the stack's upstream remote, else origin. */
  remote?: string;
  /** The local stack to push (default: the current one); it goes to the remote branch of the same name. */
  stack?: string;
  /** Replace the remote branch even when that drops layers it has. */
  force?: boolean;
  /** Push every tag the remote lacks instead of the stack (git push --tags); a remote tag is never moved. */
  tags?: boolean;
  /** Make REMOTE's branch the stack's upstream after the push (git push -u). */
  setUpstream?: boolean;
}

export interface PushResult {
  remote: string | null;
  url: string;
  ref: string;
  old: string | null;
  new: string;
  upToDate: boolean;
  /** With `tags`: tags sent, and tags the remote has with another value (left as they are). */
  tags?: string[];
  tagsRejected?: string[];
  upstream?: string | null;
  /**
   * The stack's image config: sent, already there, rejected (the remote's has diverged, or it refused it), or
   * null (the stack has none, or `tags`).
   */
  config: 'sent' | 'up-to-date' | 'rejected' | null;
  /** One line each, for the user (a config left behind). */
  warnings: string[];
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
    if (opts.setUpstream && !source.name) throw new UsageError(`-u needs a named remote (glayer remote add NAME ${name}), not a URL or path`);
    const listed = await listRemote(source.transport, { onProgress: opts.onProgress });
    if (opts.tags) {
      const sent: string[] = [];
      const rejected: string[] = [];
      for (const [tref, tobj] of [...listRefs(ws.gitdir, 'refs/tags/')].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
        const theirs = listed.refs.get(tref);
        if (theirs === undefined) {
          await pushRef(ws.gitdir, source.transport, { oid: tobj, ref: tref, expected: null }, { onProgress: opts.onProgress });
          sent.push(tref.slice(10));
        } else if (theirs !== peel(store.objects, tobj)) rejected.push(tref.slice(10));
      }
      return { remote: source.name, url: safeUrl(source.url), ref: 'refs/tags/*', old: null, new: oid, upToDate: sent.length === 0, tags: sent, tagsRejected: rejected, config: null, warnings: [] };
    }
    const old = listed.refs.get(ref) ?? null;
    const result: PushResult = { remote: source.name, url: safeUrl(source.url), ref, old, new: oid, upToDate: old === oid, config: null, warnings: [] };
    const reqs: PushRequest[] = [];
    if (old !== oid) {
      if (old !== null && !opts.force && !isAncestor(store, old, oid)) {
        throw new NonFastForwardError(source.url, ref, old, oid, store.objects.has(old));
      }
      reqs.push({ oid, ref, expected: old, force: opts.force });
    }
    // The image config: a fast-forward (or --force), decided here from the listing; the remote re-checks it.
    const cref = configRef(stack);
    const mine = readRef(ws.gitdir, cref);
    const theirs = listed.configs.get(cref) ?? null;
    const where = source.name ?? safeUrl(source.url);
    const tracked = source.name ? ` (git log ${remoteConfigRef(source.name, stack)})` : '';
    const leftBehind = (why: string, newer = false): void => {
      result.config = 'rejected';
      result.warnings.push(newer
        ? `the image config of ${stack} was not pushed: ${why}; run 'glayer pull' to take it (fetch first), or push --force to replace it`
        : `the image config of ${stack} was not pushed: ${why}; run 'glayer fetch' and compare${tracked}, or push --force to replace it`);
    };
    if (mine !== null) {
      if (theirs === mine) result.config = 'up-to-date';
      else if (theirs === null || opts.force || isAncestor(store, theirs, mine)) reqs.push({ oid: mine, ref: cref, expected: theirs, force: opts.force, optional: true });
      else if (store.objects.has(theirs) && configBelow(store, mine, theirs)) leftBehind(`${where} has a newer one (${theirs.slice(0, 12)})`, true);
      else leftBehind(store.objects.has(theirs) ? `${where} has one (${theirs.slice(0, 12)}) that has diverged from the local one` : `${where} has one (${theirs.slice(0, 12)}) that the local one does not build on`);
    }
    if (reqs.length === 1 && reqs[0].ref === ref) {
      await pushRef(ws.gitdir, source.transport, reqs[0], { onProgress: opts.onProgress });
    } else if (reqs.length) {
      const done = await pushRefs(ws.gitdir, source.transport, reqs, { onProgress: opts.onProgress });
      const why = done.get(cref);
      if (why === null) result.config = 'sent';
      else if (why !== undefined) leftBehind(why);
    }
    if (source.name) {
      const tracking = `refs/remotes/${source.name}/${stack}`;
      const cur = readRef(ws.gitdir, tracking);
      if (cur !== oid) updateRef(ws.gitdir, tracking, oid, cur);
      if (result.config === 'sent' || result.config === 'up-to-date') {
        trackConfig(store, source.name, stack, mine!);
      }
    }
    if (opts.setUpstream && source.name) {
      await writeUpstream(ws.gitdir, stack, source.name, ref);
      return { ...result, upstream: `${source.name}/${stack}` };
    }
    return result;
  });
}
