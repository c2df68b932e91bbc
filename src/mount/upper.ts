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
import type { Change } from '../core/changes.js';
import { hashObject } from '../core/hash.js';
import { META_NAME, defaultMode, formatMtime, mtimeSeconds, normalizeRecord, parseLayerManifest, type Manifest, type MetaRecord } from '../core/meta.js';
import { basename, dirname, join } from '../core/path.js';
import { EMPTY_TREE, lookup, walkTree, type Mode, type TreeEntry, type TreeSink, type TreeSource } from '../core/tree.js';
import { OPAQUE_MARKER, isReserved, markerEntry, whiteoutName } from '../core/whiteout.js';
import { display } from '../errors.js';
import { Index, indexPath, loadIndex, saveIndex, type AdoptingSink } from '../fs/index-file.js';
import { fsPath } from '../fs/paths.js';
import { scanTree } from '../fs/scan.js';
import { readXattrs } from '../fs/xattr.js';
import { applyMeta, type MetaTarget } from '../fs/apply-meta.js';
import { Materializer, type BlobSource } from '../fs/materialize.js';
import type { Store } from '../store/store.js';
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

/** xattrs the mounts keep for themselves on upper entries (never layer content). */
const MOUNT_XATTR = /^(trusted\.overlay\.|user\.overlay\.|user\.fuseoverlayfs\.)/;

/**
 * The live view's metadata (docs/metadata.md, "In the view"): the stack's manifest `lowerMeta`, with the records
 * of paths the view no longer has dropped, and each entry of the upper directory as the mount shows it (a copy-up
 * keeps the lower entry's owner, mode, mtime and xattrs; a chmod, chown, touch, setfattr or ln lands there).
 *
 * Field by field, an entry the stack has (same kind) keeps its record's value unless the upper's differs from
 * what the lower directories show: the record's, as far as this process could apply it (no setuid bits on files
 * without root), and for an mtime without a record the cached lower file's own. Owners are read only as root.
 * An mtime is kept only for content the stack has (a write drops it); a directory's is never read.
 * `lowerDirs`: the mount's lower directories, top first (absolute); empty when not known (mtimes then as shown).
 */
export function observeLiveUpper(
  upper: string, src: TreeSource, lowerTree: string | null, lowerMeta: Manifest, upperTree: string, view: string,
  lowerDirs: readonly string[], asRoot: boolean,
): Manifest {
  let out: Manifest = lowerMeta;
  const own = (): Manifest => (out === lowerMeta ? (out = new Map(lowerMeta)) : out);
  // Gone from the view: no record.
  for (const p of lowerMeta.keys()) if (p !== '.' && lookup(src, view, p) === null) own().delete(p);
  if (upperTree === EMPTY_TREE) return out;
  const records = new Map<string, { r: MetaRecord; mode: Mode }>();
  const attrs: string[] = [];
  const groups = new Map<bigint, string[]>();
  for (const { path, entry } of walkTree(src, upperTree)) {
    if (isReserved(basename(path))) continue;
    const e = lookup(src, view, path);
    if (!e || e.mode !== entry.mode) continue;
    const st = fs.lstatSync(fsPath(upper, path), { bigint: true, throwIfNoEntry: false });
    if (!st) continue;
    const dir = entry.mode === '40000';
    const below = lowerTree === null ? null : lookup(src, lowerTree, path);
    const same = below !== null && (below.mode === '40000') === dir && (below.mode === '120000') === (entry.mode === '120000');
    const rec = same ? lowerMeta.get(path) ?? {} : {};
    const r: MetaRecord = {};
    if (entry.mode !== '120000') {
      const perm = Number(st.mode) & 0o7777;
      let shown = rec.mode ?? defaultMode(below?.mode ?? entry.mode);
      if (!asRoot && !dir) shown &= ~0o6000;
      r.mode = same && perm === shown ? rec.mode ?? perm : perm;
    }
    if (asRoot) { r.uid = Number(st.uid); r.gid = Number(st.gid); } else { r.uid = rec.uid; r.gid = rec.gid; }
    if (dir) r.mtime = rec.mtime;
    else if (same && below!.oid === entry.oid) {
      // The entry the mount shows below it (its lower directories, top first): an mtime counts only on the content
      // the view showed (a copy-up), not on a file written before the stack moved under it (a commit killed
      // before its remount leaves the upper holding what the new top holds).
      let lower: fs.BigIntStats | undefined;
      let sameAsShown = lowerDirs.length === 0;
      for (const d of lowerDirs) {
        lower = fs.lstatSync(fsPath(d, path), { bigint: true, throwIfNoEntry: false });
        if (!lower) continue;
        if (entry.mode === '120000') sameAsShown = lower.isSymbolicLink() && hashObject('blob', fs.readlinkSync(fsPath(d, path), { encoding: 'buffer' })) === entry.oid;
        else sameAsShown = lower.isFile() && lower.size === st.size && hashObject('blob', fs.readFileSync(fsPath(d, path))) === entry.oid;
        break;
      }
      const ns = st.mtimeNs;
      const seen = formatMtime(Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n));
      let shownNs: bigint | null = null;
      if (rec.mtime !== undefined) shownNs = BigInt(Math.round(mtimeSeconds(rec.mtime) * 1e6)) * 1000n;
      else if (lower) shownNs = lower.mtimeNs;
      // Times are set through libuv, which takes seconds as a double and truncates them to the microsecond: within
      // 2 µs is the time the lower directory shows (flaked at 1 µs).
      const moved = shownNs !== null && (ns > shownNs ? ns - shownNs : shownNs - ns) > 2000n;
      r.mtime = !sameAsShown ? undefined : moved ? seen : rec.mtime;
    }
    if (entry.mode !== '120000') attrs.push(path);
    if (!dir && st.nlink > 1n) { const g = groups.get(st.ino); if (g) g.push(path); else groups.set(st.ino, [path]); }
    if (!asRoot && rec.xattrs) r.xattrs = new Map([...rec.xattrs].filter(([k]) => !k.startsWith('user.')));
    records.set(path, { r, mode: entry.mode });
  }
  if (attrs.length) {
    const byAbs = new Map(attrs.map((rel) => [Buffer.concat([Buffer.from(upper, 'utf8'), Buffer.from('/' + rel, 'latin1')]).toString('latin1'), rel]));
    for (const [abs, found] of readXattrs([...byAbs.keys()])) {
      const rel = byAbs.get(abs);
      if (rel === undefined) continue;
      const r = records.get(rel)!.r;
      for (const [k, v] of found) if (!MOUNT_XATTR.test(k) && (asRoot || k.startsWith('user.'))) (r.xattrs ??= new Map()).set(k, v);
    }
  }
  for (const members of groups.values()) {
    if (members.length < 2) continue;
    members.sort();
    for (const m of members.slice(1)) records.get(m)!.r.link = members[0];
  }
  for (const [path, { r, mode }] of records) {
    if (r.xattrs) r.xattrs = new Map([...r.xattrs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    const n = normalizeRecord(r, mode);
    if (n) own().set(path, n); else if (out.has(path)) own().delete(path);
  }
  // A copy-up breaks a hardlink (overlayfs links only within one directory): a lower name linked to a name in the
  // upper directory, or to one the view no longer holds the same, is its own file now.
  for (const [p, r] of out) {
    if (r.link === undefined) continue;
    const a = lookup(src, view, p);
    const b = lookup(src, view, r.link);
    if (records.has(p) === records.has(r.link) && a && b && a.mode === b.mode && a.oid === b.oid) continue;
    const { link: _, ...rest } = r;
    const n = normalizeRecord(rest, a?.mode ?? '100644');
    if (n) own().set(p, n); else own().delete(p);
  }
  return out;
}

/**
 * Before a mount: a writable layer left by a copied view keeps its metadata as a manifest (`.wh..wh..meta`), a
 * live one as its entries' own owners, modes, mtimes and xattrs (the mount shows those). Give each entry of
 * `upper` its record (a directory that merges over the stack's keeps the stack's record unless it has its own;
 * any other entry has its own or the defaults), copy up the entries of metadata-only records from the stack
 * `head` (their parent directories with the stack's records, as overlayfs copies them up), then remove the
 * manifest. Safe to repeat: a kill before the manifest is removed runs it again at the next mount.
 */
export async function realizeUpperManifest(upper: string, store: Store, head: string | null, blobs: BlobSource, lowerDirs: readonly string[]): Promise<void> {
  const file = fsPath(upper, META_NAME);
  let data: Buffer;
  try { data = fs.readFileSync(file); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') { alignTimes(upper, lowerDirs, new Map()); return; }
    throw e;
  }
  const own = parseLayerManifest(data, 'writable layer');
  const objects = store.objects;
  const lowerTree = store.unionTree(head);
  const lowerMeta = store.unionManifest(head);
  const present = new Map<string, fs.Stats>();
  walk(upper, '', (rel, st) => { if (!isReserved(basename(rel))) present.set(rel, st); });
  // Copy-ups: ancestors first (shortest paths first), each as one top-most change.
  const changes: Change[] = [];
  const made = new Set<string>();
  const below = (p: string): TreeEntry | null => (lowerTree === null ? null : lookup(objects, lowerTree, p));
  // Metadata-only records, and the first names of hardlinks (one directory holds a whole link group).
  const wanted = new Set<string>(own.keys());
  for (const r of own.values()) if (r.link !== undefined) wanted.add(r.link);
  for (const p of [...wanted].sort()) {
    if (p === '.' || present.has(p) || made.has(p) || !below(p)) continue;
    const parts = p.split('/');
    for (let k = 1; k <= parts.length; k++) {
      const a = parts.slice(0, k).join('/');
      if (present.has(a) || made.has(a)) continue;
      const e = below(a)!;
      changes.push({ path: a, old: null, new: e.mode === '40000' ? { ...e, oid: EMPTY_TREE } : e });
      made.add(a);
    }
  }
  if (changes.length) await new Materializer(upper, objects, blobs, new Index()).apply(changes);
  const targets: MetaTarget[] = [];
  for (const p of [...present.keys(), ...made].sort()) {
    const st = present.get(p);
    const b = below(p);
    const dir = st ? st.isDirectory() : b!.mode === '40000';
    const merged = dir && b !== null && b.mode === '40000';
    const record = own.get(p) ?? (merged || made.has(p) ? lowerMeta.get(p) ?? null : null);
    const entry: TreeEntry = st
      ? { name: basename(p), mode: dir ? '40000' : st.isSymbolicLink() ? '120000' : (st.mode & 0o100) ? '100755' : '100644', oid: EMPTY_TREE }
      : { ...b!, name: basename(p) };
    if (entry.mode === '120000' && !record) continue;
    targets.push({ path: p, entry, record, old: null });
  }
  if (targets.length) applyMeta(upper, new Index(), targets);
  alignTimes(upper, lowerDirs, own);
  fs.unlinkSync(file);
}

/**
 * A file of the upper directory with the content the mount will show below it, and no mtime of its own in `own`,
 * gets that lower file's times, as overlayfs's copy-up keeps them: then only a `touch` made while mounted is an
 * mtime. (It is such a file when the stack moved under the writable layer, a commit killed before its remount,
 * or when a copied view's manifest was realized.)
 */
function alignTimes(upper: string, lowerDirs: readonly string[], own: Manifest): void {
  if (lowerDirs.length === 0) return;
  walk(upper, '', (rel, st) => {
    if (!st.isFile() || isReserved(basename(rel)) || own.get(rel)?.mtime !== undefined) return;
    for (const d of lowerDirs) {
      const l = fs.lstatSync(fsPath(d, rel), { bigint: true, throwIfNoEntry: false });
      if (!l) continue;
      // Already the lower file's time (a copy-up): nothing to read.
      if (Math.abs(Number(l.mtimeNs) / 1e6 - st.mtimeMs) < 0.002) return;
      // Seconds as a double, truncated to the microsecond by libuv: within what observeLiveUpper allows.
      if (l.isFile() && Number(l.size) === st.size && fs.readFileSync(fsPath(d, rel)).equals(fs.readFileSync(fsPath(upper, rel)))) {
        fs.lutimesSync(fsPath(upper, rel), Number(l.atimeNs) / 1e9, Number(l.mtimeNs) / 1e9);
      }
      return;
    }
  });
}

/** After an unmount: keep the live upper directory's records as a manifest, the form a copied view reads. */
export function writeUpperManifest(upper: string, data: Buffer | null): void {
  if (!data) return;
  const tmp = fsPath(upper, `${META_NAME}.tmp-${process.pid}`);
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, fsPath(upper, META_NAME));
}
