/**
 * Names for layers and paths, as the user types them.
 *
 * A layer name is, in this order of preference:
 * - `HEAD` (or `@`): the top of the current stack;
 * - a stack (`refs/heads/NAME`, typed `NAME`) or a tag (`refs/tags/NAME`), or a full `refs/...` name: the layer
 *   it points to (another stack's top is a fine thing to compare with);
 * - a full id or a unique prefix (4 hex digits or more) of a layer *in the current stack*. An id of a layer that
 *   only another stack holds is refused, naming the stack that holds it;
 * followed by any number of `~N` (N first parents down, `~` alone is `~1`) and `^` (one first parent down).
 *
 * A path is a path in the view: relative to the current directory when that is inside the view (or the
 * writable layer), else relative to the view's root; an absolute path must lie inside the view or the writable
 * layer. A path that leaves the view is refused.
 */
import { isAbsolute, posix, relative, resolve as resolvePath, sep } from 'node:path';
import { splitPath, toBytes } from '../core/path.js';
import { GlayerError, UnknownLayerError } from '../errors.js';
import { checkRefName, listRefs } from '../store/refs.js';
import type { Commit, Store } from '../store/store.js';
import type { Workspace } from '../workspace/workspace.js';

/** A path given on the command line that is not inside the view. */
export class PathOutsideViewError extends GlayerError {
  constructor(path: string, reason = 'is outside the view') {
    super('E_PATH_OUTSIDE_VIEW', `${path}: ${reason}`, { path });
  }
}

export interface ResolvedLayer {
  /** The name as given. */
  name: string;
  commit: Commit;
}

/** A stack's short name: `refs/heads/main` -> `main`. */
export function stackName(ref: string): string {
  return ref.replace(/^refs\/(heads|tags)\//, '');
}

const SUFFIX = /((?:~\d*|\^1?)*)$/;

/** Resolve a layer name (see the module comment) in the store whose current stack is `store.stackRef`. */
export function resolveLayer(store: Store, name: string): ResolvedLayer {
  const suffix = SUFFIX.exec(name)?.[1] ?? '';
  const base = name.slice(0, name.length - suffix.length);
  if (base === '') throw new UnknownLayerError(name, 'not a layer name');
  let commit = resolveBase(store, base, name);
  // Offsets along first parents.
  const steps = [...suffix.matchAll(/~(\d*)|\^1?/g)].reduce((n, m) => n + (m[0].startsWith('~') ? (m[1] === '' ? 1 : Number(m[1])) : 1), 0);
  for (let k = 0; k < steps; k++) {
    const parent = commit.parents[0];
    if (!parent) throw new UnknownLayerError(name, `${base} has only ${k} layer${k === 1 ? '' : 's'} below it`);
    commit = store.readCommit(parent);
  }
  return { name, commit };
}

function resolveBase(store: Store, base: string, name: string): Commit {
  const current = store.stackRef;
  if (base === 'HEAD' || base === '@') {
    const top = store.head();
    if (!top) throw new UnknownLayerError(name, `stack '${stackName(current)}' has no layers`);
    return store.readCommit(top);
  }
  const refs = base.startsWith('refs/') ? [base] : [`refs/heads/${base}`, `refs/tags/${base}`];
  for (const ref of refs) {
    try { checkRefName(ref); } catch { continue; }
    const oid = store.resolve(ref);
    if (oid) return store.readCommit(peel(store, oid, name));
  }
  if (!/^[0-9a-fA-F]{4,40}$/.test(base)) throw new UnknownLayerError(name);
  const prefix = base.toLowerCase();
  const matches = store.layers(store.head()).filter((c) => c.oid.startsWith(prefix));
  if (matches.length === 1) return matches[0];
  if (matches.length > 1) {
    throw new UnknownLayerError(name, `ambiguous layer id (${matches.length} layers start with ${prefix}: ${matches.slice(0, 4).map((c) => c.oid.slice(0, 12)).join(', ')}${matches.length > 4 ? ', ...' : ''})`);
  }
  // Not in this stack: say where it is, if another stack (or tag) holds it.
  const holders: string[] = [];
  for (const prefixRef of ['refs/heads/', 'refs/tags/']) {
    for (const [ref, oid] of listRefs(store.gitdir, prefixRef)) {
      if (ref === current) continue;
      let top: string;
      try { top = peel(store, oid, name); } catch { continue; }
      if (store.layers(top).some((c) => c.oid.startsWith(prefix))) holders.push(stackName(ref));
    }
  }
  if (holders.length) {
    throw new UnknownLayerError(name, `not a layer of stack '${stackName(current)}' (it is in ${holders.length === 1 ? 'stack' : 'stacks'} ${holders.map((h) => `'${h}'`).join(', ')}; name that stack instead)`);
  }
  throw new UnknownLayerError(name);
}

/** The commit a ref's object names (annotated tags are followed). */
function peel(store: Store, oid: string, name: string): string {
  for (let depth = 0; depth < 16; depth++) {
    const o = store.objects.read(oid);
    if (o.type === 'commit') return oid;
    if (o.type !== 'tag') break;
    const m = /^object ([0-9a-f]{40})$/m.exec(o.data.toString('latin1'));
    if (!m) break;
    oid = m[1];
  }
  throw new UnknownLayerError(name, 'not a layer (the ref does not name a commit)');
}

/** The directories a path may be relative to: the view, then the writable layer. */
function roots(ws: Workspace): string[] {
  return [resolvePath(ws.readState().view ?? ws.defaultView), resolvePath(ws.upper)];
}

function inside(p: string, root: string): boolean {
  return p === root || p.startsWith(root.endsWith(sep) ? root : root + sep);
}

/**
 * User paths (see the module comment) as view paths: byte strings, '/'-separated, '' for the whole view.
 * Throws PathOutsideViewError for a path that leaves the view.
 */
export function resolveViewPaths(ws: Workspace, cwd: string, paths: readonly string[]): string[] {
  const rs = roots(ws);
  const here = resolvePath(cwd);
  const cwdRoot = rs.find((r) => inside(here, r)) ?? null;
  return paths.map((p) => {
    if (p === '') throw new PathOutsideViewError("''", 'is not a path');
    let rel: string;
    if (isAbsolute(p) || cwdRoot) {
      const abs = resolvePath(here, p);
      const root = isAbsolute(p) ? rs.find((r) => inside(abs, r)) : cwdRoot!;
      if (!root || !inside(abs, root)) throw new PathOutsideViewError(p, `is outside the view (${rs[0]})`);
      rel = relative(root, abs).split(sep).join('/');
    } else {
      rel = posix.normalize(p.split(sep).join('/'));
      if (rel === '..' || rel.startsWith('../') || rel.startsWith('/')) throw new PathOutsideViewError(p, `is outside the view (${rs[0]})`);
    }
    let parts: string[];
    try { parts = splitPath(toBytes(rel)); } catch (e) {
      throw new PathOutsideViewError(p, `is not a path a layer can hold (${(e as Error).message})`);
    }
    return parts.join('/');
  });
}
