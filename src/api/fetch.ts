/**
 * `fetch`: bring a remote's stacks into the store, checked before anything uses them.
 *
 * Objects arrive first (they are content-addressed: having them changes nothing); then every new layer is put
 * through the union engine (entry names, markers, submodules) and its tree walked for missing objects; only when
 * every fetched stack passes do the remote-tracking refs (`refs/remotes/NAME/STACK`) move. A bad remote gives
 * one line naming the object and the path, and nothing local changes.
 *
 * Each fetched stack's image config (`refs/glayer/config/STACK` on the remote) comes along, is checked (a commit
 * whose tree holds a JSON config.json), and lands in `refs/glayer/remote-config/NAME/STACK`.
 */
import { walkTree } from '../core/tree.js';
import { GlayerError, ObjectError, UsageError } from '../errors.js';
import { deleteRef, listRefs, readRef, updateRef, writeSymbolicHead, checkRefName } from '../store/refs.js';
import {
  addRemoteConfig, fetchObjects, listRemote, peel, safeUrl, writeUpstream, type RemoteRefs,
} from '../store/remote.js';
import type { Store } from '../store/store.js';
import { checkConfigCommit, configRef, followConfig, remoteConfigRef, trackConfig } from './image-config.js';
import { Workspace, withWorkspace } from '../workspace/workspace.js';
import { defaultRemote, resolveSource, stackName, type Source } from './remote.js';
import type { Progress, WorkspaceOptions } from './types.js';

/** What a remote sent breaks the layer format or is incomplete. */
export class RemoteContentError extends GlayerError {
  constructor(url: string, ref: string, reason: string) {
    super('E_REMOTE_CONTENT', `refusing ${ref} from ${safeUrl(url)}: ${reason}; nothing was changed`, { url: safeUrl(url), ref, reason });
  }
}

/** Commits on the first-parent chains of the store's stacks and remote-tracking refs: already checked. */
function knownLayers(store: Store): Set<string> {
  const known = new Set<string>();
  const tips = new Set([...listRefs(store.gitdir, 'refs/heads/').values(), ...listRefs(store.gitdir, 'refs/remotes/').values()]);
  for (const tip of tips) {
    for (let c: string | null = tip; c && !known.has(c); ) {
      known.add(c);
      try { c = store.readCommit(c).parents[0] ?? null; } catch { break; }
    }
  }
  return known;
}

/**
 * Check the stack whose top is `top` before it is used: every layer not yet known must be a valid layer (the
 * union engine refuses bad names, markers and submodules) and complete (every object its tree names is here).
 */
export function checkStack(store: Store, top: string, known: Set<string>, url: string, ref: string): void {
  try {
    const fresh: string[] = [];
    for (let c: string | null = top; c && !known.has(c); ) {
      fresh.push(c);
      c = store.readCommit(c).parents[0] ?? null;
    }
    store.unionTree(top);
    store.unionManifest(top);
    for (const c of fresh) {
      const tree = store.readCommit(c).tree;
      for (const { path, entry } of walkTree(store.objects, tree)) {
        if (entry.mode !== '40000' && !store.objects.has(entry.oid)) throw new ObjectError(entry.oid, `missing (named by ${path} in layer ${c.slice(0, 12)})`);
      }
    }
    for (const c of fresh) known.add(c);
  } catch (e) {
    if (e instanceof GlayerError) throw new RemoteContentError(url, ref, e.message);
    throw e;
  }
}

export interface Fetched {
  source: Source;
  listed: RemoteRefs;
  /** Remote ref (full name) -> the commit it names, for every ref fetched and checked. */
  tops: Map<string, string>;
  /** Remote ref -> the object it names as received (an annotated tag's own object), where known. */
  raw: Map<string, string>;
  /** Remote stack name -> its image config commit (fetched and checked), for the branches fetched that have one. */
  configs: Map<string, string>;
}

/**
 * Fetch `wanted` (full remote ref names; default: every branch) from `source` into `store` and check each.
 * Writes objects and the union cache only, never a ref.
 */
export async function fetchChecked(store: Store, source: Source, wanted: string[] | null, onProgress?: Progress): Promise<Fetched> {
  const listed = await listRemote(source.transport, { onProgress });
  const refs = wanted ?? [...listed.refs.keys()].filter((r) => r.startsWith('refs/heads/'));
  // A tag not here yet is fetched even when its layer is: an annotated tag's own object may be missing.
  const missing = refs.filter((r) => !listed.refs.has(r) || !store.objects.has(listed.refs.get(r)!) || (r.startsWith('refs/tags/') && readRef(store.gitdir, r) === null));
  // The image configs of the branches fetched, in the same request.
  const cfgRefs = new Map<string, string>();
  for (const r of refs) {
    if (!r.startsWith('refs/heads/')) continue;
    const c = configRef(r.slice(11));
    if (listed.configs.has(c)) cfgRefs.set(r.slice(11), c);
  }
  for (const c of cfgRefs.values()) if (!store.objects.has(listed.configs.get(c)!)) missing.push(c);
  const got = await fetchObjects(store.gitdir, source.transport, missing, { onProgress });
  store.objects.rescan();
  const tops = new Map<string, string>();
  const rawRefs = new Map<string, string>();
  const configs = new Map<string, string>();
  try {
    const known = knownLayers(store);
    for (const ref of refs) {
      const raw = got.refs.get(ref) ?? listed.refs.get(ref);
      if (!raw) throw new UsageError(`${safeUrl(source.url)} has no ${ref}`);
      let top: string;
      try { top = peel(store.objects, raw); } catch (e) {
        if (e instanceof GlayerError) throw new RemoteContentError(source.url, ref, e.message);
        throw e;
      }
      checkStack(store, top, known, source.url, ref);
      tops.set(ref, top);
      rawRefs.set(ref, raw);
    }
    for (const [stack, c] of cfgRefs) {
      const oid = got.refs.get(c) ?? listed.configs.get(c)!;
      try { checkConfigCommit(store, oid); } catch (e) {
        if (e instanceof GlayerError) throw new RemoteContentError(source.url, c, e.message);
        throw e;
      }
      configs.set(stack, oid);
    }
  } catch (e) {
    // Refused: take back every object that arrived, so the store is as it was.
    got.discard();
    store.objects.rescan();
    throw e;
  }
  return { source, listed, tops, raw: rawRefs, configs };
}

export interface RefUpdate { ref: string; old: string | null; new: string }

/** Move `refs/remotes/NAME/*` to what was fetched (branches only). */
export function updateTracking(store: Store, remote: string, tops: Map<string, string>): RefUpdate[] {
  const out: RefUpdate[] = [];
  for (const [ref, oid] of tops) {
    if (!ref.startsWith('refs/heads/')) continue;
    const local = `refs/remotes/${remote}/${ref.slice(11)}`;
    try { checkRefName(local); } catch { continue; }
    const old = readRef(store.gitdir, local);
    if (old === oid) continue;
    updateRef(store.gitdir, local, oid, old);
    out.push({ ref: local, old, new: oid });
  }
  return out;
}

export interface FetchOptions extends WorkspaceOptions {
  /** A remote's name, a URL or a path; default: the stack's upstream remote, else origin. */
  remote?: string;
  /** Bring the remote's tags too (default true); an existing local tag is never moved. */
  tags?: boolean;
  /** Delete remote-tracking stacks whose branch the remote no longer has. */
  prune?: boolean;
}

export interface FetchResult {
  remote: string | null;
  url: string;
  /** Remote-tracking refs that moved (none when fetching from a URL that is not a named remote). */
  updated: RefUpdate[];
  /** Every branch the remote has, with its top layer. */
  stacks: Array<{ ref: string; top: string }>;
  /** Tags created locally, and tags the remote has that differ from a local tag of the same name (kept). */
  tags: RefUpdate[];
  tagsRejected: string[];
  /** Remote-tracking stacks deleted by `prune`. */
  pruned: string[];
  /** Image configs of the remote's stacks that moved (`refs/glayer/remote-config/NAME/STACK`), and those pruned. */
  configs: RefUpdate[];
  configsPruned: string[];
}

export async function fetch(opts: FetchOptions = {}): Promise<FetchResult> {
  const cwd = opts.cwd ?? process.cwd();
  return withWorkspace(cwd, async (ws) => {
    const name = opts.remote ?? (await defaultRemote(ws, stackName(ws.store.stackRef)));
    if (!name) throw new UsageError("no remote to fetch from: name one (glayer fetch URL) or add one (glayer remote add origin URL)");
    const source = await resolveSource(ws.gitdir, name, cwd);
    const listed = await listRemote(source.transport, { onProgress: opts.onProgress });
    const wanted = [...listed.refs.keys()].filter((r) => r.startsWith('refs/heads/') || (opts.tags !== false && r.startsWith('refs/tags/')));
    const f = await fetchChecked(ws.store, source, wanted, opts.onProgress);
    const heads = new Map([...f.tops].filter(([r]) => r.startsWith('refs/heads/')));
    const updated = source.name ? updateTracking(ws.store, source.name, heads) : [];
    const configs: RefUpdate[] = [];
    if (source.name) {
      for (const [stack, oid] of f.configs) {
        const ref = remoteConfigRef(source.name, stack);
        const old = readRef(ws.gitdir, ref);
        if (trackConfig(ws.store, source.name, stack, oid)) configs.push({ ref, old, new: oid });
      }
    }
    const tags: RefUpdate[] = [];
    const tagsRejected: string[] = [];
    for (const [ref, top] of f.tops) {
      if (!ref.startsWith('refs/tags/')) continue;
      try { checkRefName(ref); } catch { continue; }
      const obj = f.raw.get(ref) ?? top;
      const local = readRef(ws.gitdir, ref);
      if (local === null) { ws.store.moveRef(ref, obj, null, `fetch: tag from ${safeUrl(source.url)}`); tags.push({ ref, old: null, new: obj }); }
      else if (local !== obj && peel(ws.store.objects, local) !== top) tagsRejected.push(ref.slice(10));
    }
    const pruned: string[] = [];
    if (opts.prune && source.name) {
      for (const [ref, oid] of listRefs(ws.gitdir, `refs/remotes/${source.name}/`)) {
        if (ref.endsWith('/HEAD') || listed.refs.has(`refs/heads/${ref.slice(14 + source.name.length)}`)) continue;
        deleteRef(ws.gitdir, ref, oid);
        pruned.push(ref);
      }
    }
    // The configs of stacks gone from the remote, or whose config is gone, go too.
    const configsPruned: string[] = [];
    if (opts.prune && source.name) {
      const prefix = remoteConfigRef(source.name, '');
      for (const [ref, oid] of listRefs(ws.gitdir, prefix)) {
        const stack = ref.slice(prefix.length);
        if (listed.refs.has(`refs/heads/${stack}`) && listed.configs.has(configRef(stack))) continue;
        deleteRef(ws.gitdir, ref, oid);
        configsPruned.push(ref);
      }
    }
    return { remote: source.name, url: safeUrl(source.url), updated, stacks: [...heads].map(([ref, top]) => ({ ref, top })), tags, tagsRejected, pruned, configs, configsPruned };
  });
}

// ---- init --from ------------------------------------------------------------------------------------------

/** Split SOURCE#REF (REF optional). */
export function splitSourceRef(text: string): { source: string; ref: string | null } {
  const i = text.lastIndexOf('#');
  if (i <= 0) return { source: text, ref: null };
  return { source: text.slice(0, i), ref: text.slice(i + 1) || null };
}

/** The remote ref REF names: a branch, a tag or a full ref name; without REF, the remote's HEAD branch. */
export function pickRemoteRef(listed: RemoteRefs, ref: string | null, url: string): string | null {
  if (ref !== null) {
    for (const r of ref.startsWith('refs/') ? [ref] : [`refs/heads/${ref}`, `refs/tags/${ref}`]) if (listed.refs.has(r)) return r;
    throw new UsageError(`${safeUrl(url)} has no stack '${ref}'${listed.refs.size ? ` (it has: ${[...listed.refs.keys()].map((r) => r.replace(/^refs\/(heads|tags)\//, '')).join(', ')})` : ''}`);
  }
  if (listed.head && listed.refs.has(listed.head)) return listed.head;
  if (listed.refs.has('refs/heads/main')) return 'refs/heads/main';
  const heads = [...listed.refs.keys()].filter((r) => r.startsWith('refs/heads/'));
  return heads.length ? heads[0] : null;
}

export interface StartFromResult { head: string | null; ref: string; remoteRef: string | null; url: string }

/**
 * Seed a new, empty store (`store`, not yet a workspace) from SOURCE#REF: fetch and check that stack, record
 * SOURCE as the remote `origin` with the stack's upstream, and make the new stack's top that stack's top. The
 * stack takes the remote ref's name unless `stack` is given. A SOURCE that is a remote's name is looked up in
 * the workspace around `cwd`.
 */
export async function startFrom(store: Store, from: string, opts: { cwd: string; stack?: string; onProgress?: Progress }): Promise<StartFromResult> {
  const { source: text, ref } = splitSourceRef(from);
  let outer: string | null = null;
  try { const ws = Workspace.find(opts.cwd); outer = ws.gitdir; ws.close(); } catch { /* not inside a workspace */ }
  const source = await resolveSource(outer, text, opts.cwd);
  const listed = await listRemote(source.transport, { onProgress: opts.onProgress });
  const remoteRef = pickRemoteRef(listed, ref, source.url);
  let stack = opts.stack ?? (remoteRef ? remoteRef.replace(/^refs\/(heads|tags)\//, '') : 'main');
  const stackRef = `refs/heads/${stack}`;
  try { checkRefName(stackRef); } catch { stack = 'main'; }
  if (`refs/heads/${stack}` !== store.stackRef) writeSymbolicHead(store.gitdir, `refs/heads/${stack}`);
  await addRemoteConfig(store.gitdir, 'origin', source.url);
  if (!remoteRef) return { head: null, ref: `refs/heads/${stack}`, remoteRef: null, url: safeUrl(source.url) };
  const f = await fetchChecked(store, source, [remoteRef], opts.onProgress);
  const top = f.tops.get(remoteRef)!;
  updateTracking(store, 'origin', f.tops);
  if (remoteRef.startsWith('refs/heads/')) await writeUpstream(store.gitdir, stack, 'origin', remoteRef);
  // The stack's image config comes with it (under the local stack's name).
  const cfg = remoteRef.startsWith('refs/heads/') ? f.configs.get(remoteRef.slice(11)) : undefined;
  if (cfg) {
    trackConfig(store, 'origin', remoteRef.slice(11), cfg);
    followConfig(store, stack, cfg);
  }
  store.moveStack(top, null);
  return { head: top, ref: `refs/heads/${stack}`, remoteRef, url: safeUrl(source.url) };
}
