/**
 * Whiteout rules, in one place. They follow the OCI image spec (layer.md, "Whiteouts") and what overlayfs
 * shows in a merged directory:
 *
 * - `.wh.NAME` in directory D hides D/NAME of every *lower* layer, whatever its kind (for a directory, the
 *   whole subtree). The marker never appears in a view.
 * - `.wh..wh..opq` in D makes D opaque: everything lower layers had in D is hidden; D itself and this layer's
 *   own entries in D stay.
 * - A marker only hides lower layers: an entry of the same layer stays visible ("deleted, then re-created").
 * - `.wh..wh..meta` at the *root* of a layer is the layer's metadata manifest (owners, modes, mtimes, xattrs,
 *   devices, hardlinks: docs/metadata.md, core/meta.ts). Like the markers it never appears in a view; anywhere
 *   but the root, or as anything but a regular file, it makes the layer invalid.
 * - Every name starting with `.wh.` is reserved. Invalid, and so a reason to refuse the whole layer: a bare
 *   `.wh.`, `.wh..`, `.wh...`, any `.wh..wh.*` other than the opaque marker, a marker whose target is not a
 *   valid name, and a marker that is not an empty regular file (a directory marker has children: also invalid).
 */
import { nameProblem } from './path.js';
import { EMPTY_BLOB, type TreeEntry } from './tree.js';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
/** The metadata manifest's name (valid only at a layer's root; union.ts and meta.ts). */
export const META_MARKER = '.wh..wh..meta';

export type Marker =
  | { kind: 'none' }
  | { kind: 'opaque' }
  | { kind: 'meta' }
  | { kind: 'whiteout'; target: string }
  | { kind: 'invalid'; reason: string };

export function isReserved(name: string): boolean {
  return name.startsWith(WHITEOUT_PREFIX);
}

/** What a name means, looking at the name alone. */
export function classifyName(name: string): Marker {
  if (!name.startsWith(WHITEOUT_PREFIX)) return { kind: 'none' };
  if (name === OPAQUE_MARKER) return { kind: 'opaque' };
  if (name === META_MARKER) return { kind: 'meta' };
  const target = name.slice(WHITEOUT_PREFIX.length);
  if (target === '') return { kind: 'invalid', reason: "bare '.wh.' marker names nothing" };
  if (target.startsWith(WHITEOUT_PREFIX)) return { kind: 'invalid', reason: `'${name}' is a reserved marker name` };
  const problem = nameProblem(target);
  if (problem) return { kind: 'invalid', reason: `whiteout of an invalid name (${problem})` };
  return { kind: 'whiteout', target };
}

/** What a tree entry means, checking that a marker is an empty regular file. */
export function classifyEntry(entry: TreeEntry): Marker {
  const m = classifyName(entry.name);
  if (m.kind === 'none' || m.kind === 'invalid') return m;
  if (m.kind === 'meta') {
    return entry.mode === '100644' ? m : { kind: 'invalid', reason: 'the metadata manifest must be a regular file (mode 100644)' };
  }
  if (entry.mode !== '100644' && entry.mode !== '100755') {
    return { kind: 'invalid', reason: entry.mode === '40000' ? 'a marker cannot be a directory or have children' : 'a marker must be a regular file' };
  }
  if (entry.oid !== EMPTY_BLOB) return { kind: 'invalid', reason: 'a marker must be an empty file' };
  return m;
}

export function whiteoutName(target: string): string {
  return WHITEOUT_PREFIX + target;
}

/** The entry of a marker: an empty regular file. */
export function markerEntry(name: string): TreeEntry {
  return { name, mode: '100644', oid: EMPTY_BLOB };
}
