/**
 * `pull [REMOTE] [STACK]`: move the current stack to the upstream's new top.
 *
 * - Fast-forward when the local stack is below the upstream top (or empty).
 * - `rebase`: when both moved, the local layers (those above the fork point: the first layer the upstream
 *   chain, or the upstream top seen at the last fetch, has) are re-parented onto the new upstream top. A layer is
 *   a delta, so a rebase writes new commits with the same trees and new parents. A local layer that touches a
 *   path the upstream changed since the fork point (the path, a directory above it or a path below it) is a
 *   conflict: glayer lists the paths and changes nothing, unless `strategy` says which side wins: `ours` keeps
 *   the local layers as they are (their entries win), `theirs` drops the conflicting parts of the local layers
 *   (the upstream's version shows).
 *
 * Everything fetched is checked first (fetch.ts); the stack moves only after every new object is written; then
 * the writable layer and the view follow (the reconcile of sync.ts), keeping any edit not yet committed.
 *
 * The stack's image config follows the upstream's: fast-forwarded when the local one is absent or older; a local
 * one that has diverged is kept, with one warning.
 */
import { diffTrees } from '../core/changes.js';
import { computeDelta } from '../core/delta.js';
import { editTree } from '../core/edit.js';
import { dirname, isAncestorOrSelf, join } from '../core/path.js';
import { lookup, type TreeEntry, type TreeSource } from '../core/tree.js';
import { applyLayer } from '../core/union.js';
import { classifyEntry } from '../core/whiteout.js';
import { GlayerError, UsageError, display } from '../errors.js';
import { formatCommit, type Commit } from '../store/commits.js';
import { readRef } from '../store/refs.js';
import { readUpstream, safeUrl } from '../store/remote.js';
import type { Store } from '../store/store.js';
import { withWorkspace } from '../workspace/workspace.js';
import { fetchChecked, updateTracking } from './fetch.js';
import { followConfig, trackConfig } from './image-config.js';
import { defaultRemote, resolveSource, stackName } from './remote.js';
import { reconcile } from './sync.js';
import type { WorkspaceOptions } from './types.js';

export type Strategy = 'ours' | 'theirs';

export class DivergedError extends GlayerError {
  constructor(stack: string, upstream: string, local: number) {
    super(
      'E_DIVERGED',
      `the stack ${stack} and ${upstream} have diverged (${local} local layer${local === 1 ? '' : 's'} the upstream does not have, and the upstream moved); run 'glayer pull --rebase' to move the local layers onto the new upstream top`,
      { stack, upstream, local },
      1,
    );
  }
}

export class RebaseConflictError extends GlayerError {
  constructor(upstream: string, paths: string[]) {
    const shown = paths.slice(0, 20).map(display).join(', ') + (paths.length > 20 ? `, ... (${paths.length - 20} more)` : '');
    super(
      'E_REBASE_CONFLICT',
      `cannot rebase onto ${upstream}: local layers and the upstream both changed ${paths.length} path${paths.length === 1 ? '' : 's'}: ${shown}; nothing was changed (choose a side with --strategy ours or --strategy theirs)`,
      { upstream, paths: paths.map(display) },
      1,
    );
  }
}

export interface PullOptions extends WorkspaceOptions {
  /** A remote's name, a URL or a path; default: the stack's upstream remote, else origin. */
  remote?: string;
  /** The remote stack (branch) to pull; default: the stack's upstream branch, else the same name. */
  stack?: string;
  /** Re-parent local layers onto the new upstream top when both moved. */
  rebase?: boolean;
  /** Which side wins a conflict during a rebase. */
  strategy?: Strategy;
}

export interface PullResult {
  remote: string | null;
  url: string;
  /** The remote ref pulled, and its top. */
  upstream: string;
  upstreamTop: string;
  old: string | null;
  new: string | null;
  mode: 'up-to-date' | 'fast-forward' | 'rebase';
  /** Local layers moved by a rebase: old id -> new id, bottom first. */
  rebased: Array<{ old: string; new: string }>;
  /** Paths both sides changed, resolved by the strategy. */
  conflicts: string[];
  warnings: string[];
  /** The image config: moved to the upstream's, already so (or ahead), kept (diverged), or null (none upstream). */
  config: 'fast-forward' | 'up-to-date' | 'kept' | null;
}

export async function pull(opts: PullOptions = {}): Promise<PullResult> {
  const cwd = opts.cwd ?? process.cwd();
  if (opts.strategy !== undefined && opts.strategy !== 'ours' && opts.strategy !== 'theirs') throw new UsageError(`unknown strategy '${opts.strategy}' (ours or theirs)`);
  if (opts.strategy !== undefined && !opts.rebase) throw new UsageError('--strategy applies to pull --rebase');
  return withWorkspace(cwd, async (ws) => {
    const store = ws.store;
    const stack = stackName(store.stackRef);
    const up = await readUpstream(ws.gitdir, stack);
    const name = opts.remote ?? up?.remote ?? (await defaultRemote(ws, stack));
    if (!name) throw new UsageError("no remote to pull from: name one (glayer pull URL) or add one (glayer remote add origin URL)");
    const remoteRef = opts.stack !== undefined ? `refs/heads/${opts.stack}`
      : up && (opts.remote === undefined || opts.remote === up.remote) ? up.merge : `refs/heads/${stack}`;
    const source = await resolveSource(ws.gitdir, name, cwd);
    const label = source.name ? `${source.name}/${remoteRef.replace(/^refs\/heads\//, '')}` : `${remoteRef} of ${safeUrl(source.url)}`;
    const tracking = source.name && remoteRef.startsWith('refs/heads/') ? `refs/remotes/${source.name}/${remoteRef.slice(11)}` : null;
    const seen = tracking ? readRef(ws.gitdir, tracking) : null;

    const f = await fetchChecked(store, source, [remoteRef], opts.onProgress);
    const U = f.tops.get(remoteRef)!;
    const L = store.head();
    const result: PullResult = {
      remote: source.name, url: safeUrl(source.url), upstream: remoteRef, upstreamTop: U,
      old: L, new: L, mode: 'up-to-date', rebased: [], conflicts: [], warnings: [], config: null,
    };
    const remoteStack = remoteRef.startsWith('refs/heads/') ? remoteRef.slice(11) : null;
    const cfg = remoteStack !== null ? f.configs.get(remoteStack) ?? null : null;
    const finish = (): void => {
      if (source.name) updateTracking(store, source.name, f.tops);
      if (cfg === null) return;
      if (source.name) trackConfig(store, source.name, remoteStack!, cfg);
      result.config = followConfig(store, stack, cfg);
    };
    const configWarning = (): string[] => (result.config === 'kept'
      ? [`the image config of ${stack} and ${label}'s have diverged; kept the local one (the upstream's is ${cfg!.slice(0, 12)}; see 'git log' of it, set what you need with 'glayer image-config', or push --force to publish the local one)`]
      : []);

    const localChain = store.layers(L);
    if (L === U || localChain.some((c) => c.oid === U)) {
      finish();
      // A pull that moved the stack and then failed (a full disk) left the view behind: bring it up to date.
      result.warnings = [...configWarning(), ...(await reconcile(ws, { onProgress: opts.onProgress })).warnings];
      return result;
    }
    const upChain = new Set(store.layers(U).map((c) => c.oid));
    let newTop: string;
    if (L === null || upChain.has(L)) {
      newTop = U;
      result.mode = 'fast-forward';
    } else {
      const local: Commit[] = [];
      let base: string | null = null;
      for (const c of localChain) {
        if (upChain.has(c.oid) || c.oid === seen) { base = c.oid; break; }
        local.push(c);
      }
      if (!opts.rebase) throw new DivergedError(stack, label, local.length);
      if (base === null) throw new GlayerError('E_NO_BASE', `the stack ${stack} shares no layer with ${label}: there is no base to rebase onto; nothing was changed`, { stack, upstream: label }, 1);
      const r = rebaseLayers(store, local.reverse(), base, U, opts.strategy, label);
      newTop = r.top;
      result.rebased = r.moved;
      result.conflicts = r.conflicts.map(display);
      result.mode = 'rebase';
    }
    store.moveStack(newTop, L);
    result.new = newTop;
    finish();
    const s = await reconcile(ws, { onProgress: opts.onProgress });
    result.warnings = [...configWarning(), ...s.warnings];
    return result;
  });
}

/**
 * The paths a layer's delta touches over `lower` (a union): each entry it sets (a directory only when it
 * replaces or creates one; a directory merged into a lower one is walked instead), each whiteout's target, and
 * each opaque directory as a whole.
 */
export function touchedPaths(src: TreeSource, lower: string | null, delta: string, prefix = '', out: string[] = []): string[] {
  for (const e of src.readTree(delta)) {
    const m = classifyEntry(e);
    if (m.kind === 'opaque') { out.push(prefix); continue; }
    if (m.kind === 'whiteout') { out.push(join(prefix, m.target)); continue; }
    const p = join(prefix, e.name);
    const low: TreeEntry | null = lower ? src.readTree(lower).find((x) => x.name === e.name) ?? null : null;
    if (e.mode === '40000' && low && low.mode === '40000') touchedPaths(src, low.oid, e.oid, p, out);
    else out.push(p);
  }
  return out;
}

/** The paths of `mine` that overlap (are, contain or lie inside) one of `theirs`, reported at the deeper path. */
export function overlapping(mine: readonly string[], theirs: readonly string[]): string[] {
  const exact = new Set(theirs);
  const above = new Set<string>();
  for (const q of theirs) for (let d = q; d !== ''; ) { d = dirname(d); above.add(d); }
  const out = new Set<string>();
  for (const p of mine) {
    let hit = false;
    for (let a = p; ; a = dirname(a)) { if (exact.has(a)) { hit = true; break; } if (a === '') break; }
    if (hit) out.add(p);
    if (above.has(p) || (p === '' && theirs.length)) for (const q of theirs) if (isAncestorOrSelf(p, q)) out.add(q);
  }
  return [...out].sort();
}

interface Rebased { top: string; moved: Array<{ old: string; new: string }>; conflicts: string[] }

function rebaseLayers(store: Store, local: Commit[], base: string, upstreamTop: string, strategy: Strategy | undefined, label: string): Rebased {
  const objects = store.objects;
  const baseUnion = store.unionTree(base);
  const upUnion = store.unionTree(upstreamTop);
  const upstreamPaths = diffTrees(objects, baseUnion, upUnion).map((c) => c.path);

  // Conflicts, layer by layer, over the unions the layers were built on.
  let below = baseUnion;
  const perLayer: Array<{ commit: Commit; below: string | null; above: string; touched: string[]; conflicts: string[] }> = [];
  const all = new Set<string>();
  for (const c of local) {
    const touched = touchedPaths(objects, below, c.tree);
    const conflicts = overlapping(touched, upstreamPaths);
    const above = applyLayer(objects, below, c.tree, { layer: c.oid.slice(0, 12), clean: store.clean });
    perLayer.push({ commit: c, below, above, touched, conflicts });
    for (const p of conflicts) all.add(p);
    below = above;
  }
  const conflicts = [...all].sort();
  if (conflicts.length && !strategy) throw new RebaseConflictError(label, conflicts);

  // New commits: same trees (or, for `theirs`, the layer without its conflicting parts), new parents.
  const w = objects.writer();
  let parent = upstreamTop;
  let union: string | null = upUnion;
  const moved: Array<{ old: string; new: string }> = [];
  const committer = store.signature('COMMITTER');
  for (const l of perLayer) {
    let tree = l.commit.tree;
    if (strategy === 'theirs' && l.conflicts.length) {
      const clash = new Set(l.touched.filter((p) => overlapping([p], upstreamPaths).length > 0));
      const edits = new Map<string, TreeEntry | null>();
      for (const p of l.touched) {
        if (clash.has(p)) continue;
        const want = lookup(objects, l.above, p);
        if (want === null && lookup(objects, union, p) === null) continue;
        edits.set(p, want);
      }
      const target = editTree(objects, union, edits);
      tree = computeDelta(objects, union, target);
      objects.persistTrees(w, tree);
    }
    union = applyLayer(objects, union, tree, { layer: l.commit.oid.slice(0, 12), clean: store.clean });
    const oid = w.add('commit', formatCommit({
      tree,
      parents: [parent, ...l.commit.parents.slice(1)],
      author: l.commit.author,
      committer,
      message: l.commit.message,
    }));
    moved.push({ old: l.commit.oid, new: oid });
    parent = oid;
  }
  if (union) objects.persistTrees(w, union);
  w.flush();
  if (union) store.rememberUnion(parent, union);
  return { top: parent, moved, conflicts };
}
