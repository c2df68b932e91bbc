/**
 * `squash [BASE]`: the layers above BASE (default: every layer of the stack) become one layer whose union is
 * exactly the old top's union.
 *
 * The new layer's tree is the delta from the union at BASE to the union at the top (core/delta.ts): a whiteout
 * is written only for a path the union at BASE holds (whiteouts that hide nothing below BASE are dropped), and
 * only what the top's union shows is kept (anything a later layer of the range hid or replaced is dropped). A
 * directory that a layer of the range made opaque, and that is a directory at both ends, stays one opaque
 * marker rather than a whiteout per child. The new commit's parent is BASE; the old layers are not touched, so
 * every tag or other stack that names them keeps them. The writable layer and the view do not change (the union
 * is the same). Objects are written and synced before the ref moves under its lock: a kill leaves the old top
 * or the new one.
 */
import { computeDelta } from '../core/delta.js';
import { hashObject } from '../core/hash.js';
import { applyManifest, formatManifest, manifestDelta, parseManifest, withManifest } from '../core/meta.js';
import { OPAQUE_MARKER } from '../core/whiteout.js';
import { walkTree } from '../core/tree.js';
import { GlayerError, HistoryError, UnknownLayerError } from '../errors.js';
import type { Commit } from '../store/store.js';
import { withWorkspace } from '../workspace/workspace.js';
import { resolveLayer, stackName } from './resolve.js';
import type { WorkspaceOptions } from './types.js';

export interface SquashOptions extends WorkspaceOptions {
  /** A layer of the stack below the top; default: squash the whole stack into one root layer. */
  base?: string;
  /** The new layer's message; default: "squash of N layers" and the squashed layers' subjects. */
  message?: string;
}

export interface SquashResult {
  /** The new top, its parent (BASE, or null) and the top it replaces. */
  id: string;
  base: string | null;
  previous: string;
  /** How many layers were squashed into one. */
  squashed: number;
  /** The union tree (unchanged). */
  union: string;
}

export async function squash(opts: SquashOptions = {}): Promise<SquashResult> {
  return withWorkspace(opts.cwd ?? process.cwd(), (ws) => {
    const store = ws.store;
    const objects = store.objects;
    const top = store.head();
    if (!top) throw new HistoryError(`stack '${stackName(store.stackRef)}' has no layers to squash`);
    const base = opts.base !== undefined ? resolveLayer(store, opts.base).commit.oid : null;

    // The range: first parents from the top down to BASE, each layer with one parent (a straight line).
    const range: Commit[] = [];
    let found = base === null;
    for (const c of store.layers(top)) {
      if (c.oid === base) { found = true; break; }
      if (c.parents.length > 1) throw new HistoryError(`cannot squash: layer ${c.oid.slice(0, 12)} has ${c.parents.length} parents (the range is not a straight line of the stack)`, { layer: c.oid });
      range.push(c);
    }
    if (!found) throw new HistoryError(`cannot squash down to ${opts.base}: it is not a layer below the top of stack '${stackName(store.stackRef)}' (the range must be a straight line of the stack)`, { base: opts.base });
    if (range.length === 0) throw new HistoryError(`nothing to squash: ${opts.base} is the top of the stack`, { base: opts.base });

    const below = store.unionTree(base);
    const union = store.unionTree(top);
    if (union === null) throw new UnknownLayerError(top);
    // Directories a layer of the range made opaque (the delta keeps them opaque where that is exact).
    const opaque = new Set<string>();
    for (const c of range) {
      for (const { path, entry } of walkTree(objects, c.tree)) {
        if (entry.name === OPAQUE_MARKER) opaque.add(path.slice(0, Math.max(0, path.length - OPAQUE_MARKER.length - 1)));
      }
    }
    const content = computeDelta(objects, below, union, (p) => opaque.has(p));
    // The metadata manifest: the records that take the union's metadata at BASE to the top's (setuid bits,
    // owners, devices of the range), checked the way commit checks its own.
    const belowMeta = store.unionManifest(base);
    const topMeta = store.unionManifest(top);
    const meta = formatManifest(manifestDelta(objects, below, belowMeta, content, union, topMeta));
    const tree = meta ? withManifest(objects, content, hashObject('blob', meta)) : content;
    const rebuilt = applyManifest(objects, below, belowMeta, content, meta ? parseManifest(meta) : null, union, 'squashed layer');
    if (formatManifest(rebuilt)?.toString('latin1') !== formatManifest(topMeta)?.toString('latin1')) {
      throw new GlayerError('E_INTERNAL', "internal error: the squashed layer's manifest does not reproduce the stack's metadata; please report this bug", {}, 70);
    }

    const subjects = range.map((c) => `${c.oid.slice(0, 12)} ${c.message.split('\n')[0]}`);
    const message = opts.message ?? `squash of ${range.length} layer${range.length === 1 ? '' : 's'}\n\n${subjects.join('\n')}\n`;
    const w = objects.writer();
    if (meta) w.add('blob', meta);
    objects.persistTrees(w, tree);
    const id = store.makeCommit(w, tree, base ? [base] : [], message);
    objects.persistTrees(w, union);
    w.flush();
    if (!objects.has(id)) throw new GlayerError('E_INTERNAL', 'internal error: the squashed layer was not written; please report this bug', {}, 70);
    store.moveStack(id, top, `squash: ${range.length} layers onto ${base ?? 'nothing'}`);
    store.rememberUnion(id, union);
    store.rememberUnionManifest(id, topMeta);
    // The view and the writable layer were reconciled against the old top, whose union is the same.
    const state = ws.readState();
    if (state.lower === top) ws.writeState({ ...state, lower: id });
    return { id, base, previous: top, squashed: range.length, union };
  });
}
