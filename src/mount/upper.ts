/**
 * The writable layer of a live view, as the mount leaves it. glayer reads both whiteout forms there:
 * - `.wh.NAME` files and `.wh..wh..opq` files (glayer's own form, and what fuse-overlayfs adds for an opaque
 *   directory);
 * - the kernel's: a 0/0 character device NAME (a whiteout; fuse-overlayfs makes them too, and a device
 *   `.wh..opq` of its own, which means nothing to glayer) and the opaque xattr on a directory.
 * and reads them as one layer tree in the `.wh.` form, which is the only form glayer writes into layers.
 *
 * The scan is the stat-cached scan of fs/scan.ts (a separate index, `upper-live`): only the upper directory is
 * read, so it costs O(changes), not O(tree).
 */
import * as fs from '../sys/fs.js';
import { editTree } from '../core/edit.js';
import { basename, dirname, join } from '../core/path.js';
import { EMPTY_TREE, type TreeEntry, type TreeSink } from '../core/tree.js';
import { OPAQUE_MARKER, isReserved, markerEntry, whiteoutName } from '../core/whiteout.js';
import { display } from '../errors.js';
import { indexPath, loadIndex, saveIndex, type AdoptingSink, type Index } from '../fs/index-file.js';
import { fsPath } from '../fs/paths.js';
import { scanTree } from '../fs/scan.js';
import { readOpaqueDirs, removeOpaqueXattrs, writeKernelMarks } from './marks.js';

export interface LiveUpper {
  /** The writable layer as a layer tree (`.wh.` form; EMPTY_TREE when empty). */
  tree: string;
  /** The scan's index (files of the upper by blob id, for reading their contents). */
  index: Index;
  warnings: string[];
  /** Save the scan's index (call when the command's other writes are done). */
  save(): void;
}

/** Read the upper directory of a live view (see the top of this file). */
export function readLiveUpper(gitdir: string, upper: string, sink: AdoptingSink): LiveUpper {
  fs.mkdirSync(upper, { recursive: true });
  const file = indexPath(gitdir, 'upper-live');
  const prev = loadIndex(file, sink);
  const scan = scanTree(upper, prev.index, sink, { markers: true, prevRoot: prev.root, prevRootCount: prev.rootCount });
  const warnings: string[] = [];
  const edits = new Map<string, TreeEntry | null>();
  for (const rel of scan.skipped) {
    let st: fs.Stats | undefined;
    try { st = fs.lstatSync(fsPath(upper, rel)); } catch { continue; }
    if (st.isCharacterDevice() && st.rdev === 0) {
      // fuse-overlayfs's own `.wh..opq` device (beside the opaque marker it also writes) says nothing more.
      if (!isReserved(basename(rel))) edits.set(join(dirname(rel), whiteoutName(basename(rel))), markerEntry(whiteoutName(basename(rel))));
    } else {
      warnings.push(`ignoring special file in the writable layer: ${display(rel)}`);
    }
  }
  let tree = scan.root ?? EMPTY_TREE;
  // Opaque directories are only worth a getfattr process when the upper has directories at all.
  if (tree !== EMPTY_TREE && sink.readTree(tree).some((e) => e.mode === '40000')) {
    const dirs = readOpaqueDirs(upper);
    if (dirs === null) warnings.push("getfattr is not installed: directories made opaque by the mount are not recognized (apt-get install attr)");
    for (const d of dirs ?? []) if (d !== '') edits.set(join(d, OPAQUE_MARKER), markerEntry(OPAQUE_MARKER));
  }
  if (edits.size) tree = editTree(sink, tree, edits);
  const root = scan.root;
  // Nothing new since the last scan (the common case of `status` in an unchanged view): nothing to write.
  const unchanged = scan.restat === 0 && root === prev.root;
  return { tree, index: scan.index, warnings, save: () => { if (!unchanged) saveIndex(file, sink, root, scan.index); } };
}

/**
 * Rewrite an upper directory that is not mounted into the `.wh.` form (after `glayer umount`, so that the copy
 * mode reads it as it always has): each 0/0 device NAME becomes an empty file `.wh.NAME`, each opaque xattr a
 * `.wh..wh..opq` file. Returns how many markers were rewritten.
 */
export function upperToWhForm(upper: string, sink: TreeSink): number {
  let n = 0;
  const devices: string[] = [];
  walk(upper, '', (rel, st) => { if (st.isCharacterDevice() && st.rdev === 0) devices.push(rel); });
  for (const rel of devices) {
    const name = basename(rel);
    fs.unlinkSync(fsPath(upper, rel));
    if (isReserved(name)) continue;
    fs.writeFileSync(fsPath(upper, join(dirname(rel), whiteoutName(name))), '');
    n++;
  }
  const opaque = (readOpaqueDirs(upper) ?? []).filter((d) => d !== '');
  for (const d of opaque) {
    const p = fsPath(upper, join(d, OPAQUE_MARKER));
    if (!fs.existsSync(p)) { fs.writeFileSync(p, ''); n++; }
  }
  removeOpaqueXattrs(upper, opaque);
  void sink;
  return n;
}

/**
 * Rewrite an upper directory that is not mounted into the kernel's form before the kernel mounts it (the kernel
 * would show a `.wh.` file as a file): `.wh.NAME` becomes a 0/0 device NAME (dropped when NAME is there too, which
 * then replaces the lower entry by itself; a directory NAME is made opaque), `.wh..wh..opq` the opaque xattr.
 */
export function upperToKernelForm(upper: string): number {
  const whiteouts: string[] = [];
  const opaque = new Set<string>();
  const markers: string[] = [];
  walk(upper, '', (rel, st) => {
    const name = basename(rel);
    if (!isReserved(name) || !st.isFile()) return;
    markers.push(rel);
    const dir = dirname(rel);
    if (name === OPAQUE_MARKER) { if (dir !== '') opaque.add(dir); return; }
    const target = join(dir, name.slice(4));
    let own: fs.Stats | null = null;
    try { own = fs.lstatSync(fsPath(upper, target)); } catch { /* absent */ }
    if (own === null) whiteouts.push(target);
    else if (own.isDirectory()) opaque.add(target);
  });
  if (markers.length === 0) return 0;
  for (const rel of markers) fs.unlinkSync(fsPath(upper, rel));
  writeKernelMarks(upper, whiteouts, [...opaque]);
  return markers.length;
}

/** Every entry below root (iterative), with its lstat; directories are descended, never symlinks. */
function walk(root: string, rel: string, fn: (rel: string, st: fs.Stats) => void): void {
  const stack = [rel];
  while (stack.length) {
    const dir = stack.pop()!;
    let names: string[];
    try { names = fs.readdirSync(fsPath(root, dir), { encoding: 'latin1' }); } catch { continue; }
    for (const name of names) {
      const r = join(dir, name);
      let st: fs.Stats;
      try { st = fs.lstatSync(fsPath(root, r)); } catch { continue; }
      fn(r, st);
      if (st.isDirectory()) stack.push(r);
    }
  }
}
