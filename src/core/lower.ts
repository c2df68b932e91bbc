/**
 * A layer as an overlay lower directory (pure: trees in, trees and path lists out).
 *
 * A glayer layer and an overlay lower directory say the same thing in two spellings, with one difference of
 * meaning: in a layer, `.wh.NAME` beside NAME hides the lower NAME while this layer's NAME stays ("deleted, then
 * re-created"); in a lower directory (kernel overlayfs, and fuse-overlayfs, which was checked here) the whiteout
 * hides NAME of its own layer too. So the lower form drops such a marker, and when NAME is a directory it makes
 * that directory opaque instead (it must hide everything the layers below had in it). Markers that stay are
 * listed by path, so a backend can write them in its own form: `.wh.` files (fuse-overlayfs reads them as they
 * are) or the kernel's 0/0 character devices and opaque xattrs.
 *
 * Reserved names at the layer's root that are not markers (`.wh..wh..meta`, the metadata manifest) never reach a
 * lower directory. An opaque marker at the root is left to the stack (the kernel ignores the opaque xattr on a
 * layer's root; the mount leaves out the layers below instead, which is what the marker means).
 */
import { META_NAME } from './meta.js';
import { join } from './path.js';
import { type TreeEntry, type TreeSink } from './tree.js';
import { OPAQUE_MARKER, WHITEOUT_PREFIX, classifyName } from './whiteout.js';

/** The metadata manifest (docs/metadata.md): never part of a lower directory. */
const META_MANIFEST = META_NAME;

export interface LowerForm {
  /** The layer's tree without any marker: what to write as files, directories and symlinks. */
  plain: string;
  /** Paths (byte strings) whose lower entries the layer hides: a whiteout goes there. */
  whiteouts: string[];
  /** Directories that hide everything below them (opaque), the root excepted. */
  opaque: string[];
  /** The layer has an opaque marker at its root: the layers below it are not part of the union. */
  rootOpaque: boolean;
}

/** Split a layer tree into its plain content and its markers in lower-directory form (iterative walk). */
export function lowerForm(sink: TreeSink, layerTree: string): LowerForm {
  const out: LowerForm = { plain: layerTree, whiteouts: [], opaque: [], rootOpaque: false };
  interface Frame { path: string; name: string; entries: readonly TreeEntry[]; i: number; kept: TreeEntry[]; changed: boolean; oid: string }
  const open = (path: string, name: string, oid: string): Frame => ({ path, name, entries: sink.readTree(oid), i: 0, kept: [], changed: false, oid });
  const stack: Frame[] = [open('', '', layerTree)];
  for (;;) {
    const f = stack[stack.length - 1];
    if (f.i === 0) {
      // Markers of this directory first: they decide which of its own directories are opaque.
      const names = new Map(f.entries.map((e) => [e.name, e]));
      for (const e of f.entries) {
        const m = classifyName(e.name);
        if (m.kind === 'opaque') {
          if (f.path === '') out.rootOpaque = true; else out.opaque.push(f.path);
        } else if (m.kind === 'whiteout') {
          const own = names.get(m.target);
          if (!own) out.whiteouts.push(join(f.path, m.target));
          else if (own.mode === '40000') out.opaque.push(join(f.path, m.target));
          // a file or symlink of this layer replaces the lower entry by itself
        }
      }
    }
    if (f.i < f.entries.length) {
      const e = f.entries[f.i++];
      if (e.name.startsWith(WHITEOUT_PREFIX) || (f.path === '' && e.name === META_MANIFEST)) { f.changed = true; continue; }
      if (e.mode === '40000') { stack.push(open(join(f.path, e.name), e.name, e.oid)); continue; }
      f.kept.push(e);
      continue;
    }
    stack.pop();
    const oid = f.changed ? sink.writeTree(f.kept) : f.oid;
    if (stack.length === 0) { out.plain = oid; break; }
    const parent = stack[stack.length - 1];
    if (oid !== f.oid) parent.changed = true;
    parent.kept.push({ name: f.name, mode: '40000', oid });
  }
  out.opaque.sort();
  out.whiteouts.sort();
  return out;
}

export { OPAQUE_MARKER };
