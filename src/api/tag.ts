/**
 * `tag`: names for layers, stored as git tags (`refs/tags/NAME`), so that `git tag`, `git push --tags` and every
 * git host see them. A tag with a message is an annotated tag object (tagger, date, message), as `git tag -a`
 * writes; without one it is a lightweight ref to the layer's commit. Any LAYER argument accepts a tag name.
 */
import { RefExistsError, UnknownRefError, UsageError } from '../errors.js';
import { RefError, checkRefName, deleteRef, listRefs, readRef } from '../store/refs.js';
import type { Store } from '../store/store.js';
import { withWorkspace } from '../workspace/workspace.js';
import { resolveLayer } from './resolve.js';
import type { WorkspaceOptions } from './types.js';

export interface TagInfo {
  name: string;
  /** The layer (commit) the tag names. */
  layer: string;
  /** The tag object, for an annotated tag (else null), and its message. */
  object: string | null;
  message: string | null;
}

export interface TagOptions extends WorkspaceOptions {
  name: string;
  /** The layer to tag; default HEAD. */
  layer?: string;
  /** Makes an annotated tag. */
  message?: string;
  /** Move an existing tag. */
  force?: boolean;
}

function tagRef(name: string): string {
  const ref = `refs/tags/${name}`;
  try { checkRefName(ref); } catch { throw new UsageError(`'${name}' is not a valid tag name`, { name }); }
  if (name === 'HEAD' || name === '@' || /[~^:?*[\\\s]/.test(name)) throw new UsageError(`'${name}' is not a valid tag name`, { name });
  return ref;
}

/** Create (or with `force`, move) a tag. */
export async function tag(opts: TagOptions): Promise<TagInfo & { previous: string | null }> {
  return withWorkspace(opts.cwd ?? process.cwd(), (ws) => {
    const store = ws.store;
    const ref = tagRef(opts.name);
    const layer = resolveLayer(store, opts.layer ?? 'HEAD').commit.oid;
    const previous = readRef(ws.gitdir, ref);
    if (previous && !opts.force) throw new RefExistsError('tag', opts.name);
    let target = layer;
    let object: string | null = null;
    if (opts.message !== undefined) {
      if (opts.message.trim() === '') throw new UsageError('a tag message must not be empty');
      const who = store.signature('COMMITTER');
      let msg = opts.message;
      if (!msg.endsWith('\n')) msg += '\n';
      const body = `object ${layer}\ntype commit\ntag ${opts.name}\ntagger ${who.name} <${who.email}> ${who.timestamp} ${who.tz}\n\n${msg}`;
      const w = store.objects.writer();
      object = w.add('tag', Buffer.from(body, 'utf8'));
      w.flush();
      target = object;
    }
    try { store.moveRef(ref, target, previous, `tag: ${opts.name}`); } catch (e) {
      if (e instanceof RefError && !previous && readRef(ws.gitdir, ref)) throw new RefExistsError('tag', opts.name);
      throw e;
    }
    return { name: opts.name, layer, object, message: opts.message ?? null, previous };
  });
}

/** Every tag, by name, with the layer it names. */
export async function listTags(opts: WorkspaceOptions = {}): Promise<TagInfo[]> {
  return withWorkspace(opts.cwd ?? process.cwd(), (ws) => {
    const out: TagInfo[] = [];
    for (const [ref, oid] of [...listRefs(ws.gitdir, 'refs/tags/')].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      out.push(describeTag(ws.store, ref.slice(10), oid));
    }
    return out;
  }, { lock: false });
}

export function describeTag(store: Store, name: string, oid: string): TagInfo {
  const o = store.objects.read(oid);
  if (o.type !== 'tag') return { name, layer: oid, object: null, message: null };
  const text = o.data.toString('utf8');
  const target = /^object ([0-9a-f]{40})$/m.exec(text)?.[1] ?? oid;
  const end = text.indexOf('\n\n');
  return { name, layer: target, object: oid, message: end < 0 ? '' : text.slice(end + 2).replace(/\n+$/, '') };
}

/** Delete a tag (the layers stay). */
export async function deleteTag(opts: WorkspaceOptions & { name: string }): Promise<TagInfo> {
  return withWorkspace(opts.cwd ?? process.cwd(), (ws) => {
    const ref = tagRef(opts.name);
    const oid = readRef(ws.gitdir, ref);
    if (!oid) throw new UnknownRefError('tag', opts.name);
    const info = describeTag(ws.store, opts.name, oid);
    deleteRef(ws.gitdir, ref, oid);
    return info;
  });
}
