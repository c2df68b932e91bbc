/**
 * The layer cache: each layer's own tree extracted once into the store's private area, keyed by layer id, and
 * shared by every live view and every stack of the store.
 *
 *   .glayer/glayer/cache/k/LAYER   a kernel lower directory (whiteouts as 0/0 devices, opaque xattrs)
 *   .glayer/glayer/cache/f/LAYER   a fuse-overlayfs lower directory (`.wh.` files)
 *   .glayer/glayer/cache/u/TREE    the union tree TREE as plain files: the flattened bottom of a deep stack
 *   .glayer/glayer/cache/tmp/      extractions under way (`PID-NAME`), renamed into place when complete
 *
 * An entry appears by one rename of a complete directory, so one that exists is complete; a kill leaves at
 * most a `tmp/PID-*` directory, which the next extraction or `glayer fsck` removes. Nothing ever writes into an
 * entry after that rename (the mounts use them read-only, below the view's upper directory).
 *
 * Deep stacks: the kernel takes at most 500 lower directories in one page of options. Past DIRECT layers, the
 * bottom of the stack is one flattened directory (its union tree), cut at a multiple of CHUNK layers so that a
 * stack growing by a layer keeps using the same one.
 *
 * Metadata (docs/metadata.md): overlayfs shows an entry with the attributes of the topmost lower directory that
 * holds it (a merged directory's too), so each entry a layer directory holds gets the record the union gives it
 * at that layer, and a metadata-only record of the layer (a `chmod` without new content) is a copy-up: the
 * entry below is written into the layer's directory (a directory as an empty one, which merges) with its record.
 * A layer id names its whole history, so such an entry still depends on its key alone; it is named `LAYER.m`
 * when a manifest exists at or below the layer (an entry named `LAYER` was made without one), and a flattened
 * bottom with metadata `TREE.MANIFEST` (the manifest's blob id). As in a copied view, what needs root is applied
 * only as root, and what was not applied is said once.
 */
import * as fs from '../sys/fs.js';
import { join } from 'node:path';
import { diffTrees } from '../core/changes.js';
import { editTree } from '../core/edit.js';
import { hashObject } from '../core/hash.js';
import { lowerForm } from '../core/lower.js';
import { formatManifest, manifestEntry, type Manifest } from '../core/meta.js';
import { join as joinRel } from '../core/path.js';
import { EMPTY_BLOB, EMPTY_TREE, lookup, walkTree, type TreeEntry } from '../core/tree.js';
import { applyMeta, type MetaTarget } from '../fs/apply-meta.js';
import { OPAQUE_MARKER, whiteoutName } from '../core/whiteout.js';
import { Index } from '../fs/index-file.js';
import { Materializer, type BlobSource } from '../fs/materialize.js';
import { fsPath } from '../fs/paths.js';
import { alive } from '../workspace/workspace.js';
import type { Store } from '../store/store.js';
import { writeKernelMarks } from './marks.js';

/** Stacks up to this many layers are mounted layer by layer. */
export const DIRECT = 64;
/** Deeper ones: the bottom is flattened at a multiple of CHUNK layers (so at most CHUNK layers stay on top). */
export const CHUNK = 32;

export interface Lowers {
  /** Directory the lower paths are relative to (the cache root). */
  cwd: string;
  /** Top first, relative to cwd. */
  dirs: string[];
  /** Entries extracted by this call (0 when the cache was warm). */
  extracted: number;
  /** What the extractions could not apply of the metadata (not root), as phrases; empty when everything was. */
  notApplied: string[];
}

export class StoreBlobs implements BlobSource {
  constructor(private readonly store: Store) {}
  readSmall(oid: string): Buffer | null { return oid === EMPTY_BLOB ? Buffer.alloc(0) : this.store.objects.readSmallBlob(oid); }
  packedData(oid: string): { comp: Buffer; size: number } | null { return this.store.objects.packedBlobData(oid); }
  writeFile(oid: string, dest: Buffer, mode: number): Promise<void> { return this.store.objects.writeBlobTo(oid, dest, mode); }
  read(oid: string): Buffer { return this.store.objects.readType(oid, 'blob'); }
}

export function cacheRoot(stateDir: string): string {
  return join(stateDir, 'cache');
}

/**
 * The lower directories of the stack whose top is `head`, top first, extracting what the cache lacks. A layer
 * with an opaque marker at its root ends the list (it hides every layer below it).
 */
export async function lowersFor(store: Store, stateDir: string, head: string | null, form: 'k' | 'f'): Promise<Lowers> {
  const root = cacheRoot(stateDir);
  fs.mkdirSync(join(root, 'tmp'), { recursive: true });
  const out: Lowers = { cwd: root, dirs: [], extracted: 0, notApplied: [] };
  for (const e of planLowers(store, head, form, out)) out.dirs.push(await ensure(root, e.kind, e.key, out, e.fill));
  if (out.dirs.length === 0) {
    fs.mkdirSync(join(root, 'empty'), { recursive: true });
    out.dirs.push('empty');
  }
  return out;
}

export interface PlannedEntry { kind: 'k' | 'f' | 'u'; key: string; fill: (tmp: string) => Promise<void> }

/** The cache entries a mount of `head` uses, top first, each with how to make it (see the top of this file). */
function planLowers(store: Store, head: string | null, form: 'k' | 'f', stats: Lowers): PlannedEntry[] {
  const objects = store.objects;
  const out: PlannedEntry[] = [];
  // Deep stacks: only the layers mounted one by one and the first one of the flattened bottom are read (the
  // depth is cached per layer). Whatever the depth says, the cut is at a layer of the stack and the flattened
  // directory is the union below it, so the view is right; a shallow stack is read whole.
  const cut = (n: number): number => (n > DIRECT ? n - Math.floor((n - 1) / CHUNK) * CHUNK : n);
  const depth = store.depth(head);
  let layers = depth > DIRECT ? store.layers(head, cut(depth) + 1) : store.layers(head);
  let flatBelow = depth > DIRECT ? cut(depth) : cut(layers.length);
  if (depth <= DIRECT && layers.length > DIRECT) layers = layers.slice(0, flatBelow + 1);
  if (form === 'f' && layers.length > 1) flatBelow = fuseSafeCut(store, layers, flatBelow);
  // metaAt[k]: a manifest exists in layers[k] or below it (then the entry carries metadata). Below a flattened
  // bottom, the union's manifest there says it (cached per layer; a deep stack's root trees are not all read).
  const metaAt = new Array<boolean>(layers.length).fill(false);
  let any = flatBelow < layers.length && store.unionManifest(layers[flatBelow].oid).size > 0;
  for (let k = Math.min(flatBelow, layers.length - 1); k >= 0; k--) metaAt[k] = any = any || manifestEntry(objects, layers[k].tree) !== null;
  // Union manifests are cached per layer as they are computed: bottom first, each is one step from the last.
  let warmed = false;
  const manifestAt = (k: number): Manifest => {
    if (!warmed) { for (let j = Math.min(flatBelow, layers.length - 1); j > k; j--) store.unionManifest(layers[j].oid); warmed = true; }
    return store.unionManifest(layers[k].oid);
  };
  for (let k = 0; k < layers.length; k++) {
    const layer = layers[k];
    if (k === flatBelow) {
      // layers[k] and everything below it, as one directory.
      const tree = store.unionTree(layer.oid);
      if (tree === null) break;
      const manifest = metaAt[k] ? manifestAt(k) : new Map() as Manifest;
      const text = formatManifest(manifest);
      const key = text ? `${tree}.${hashObject('blob', text)}` : tree;
      out.push({ kind: 'u', key, fill: (tmp) => extractUnion(store, tmp, tree, manifest, stats) });
      break;
    }
    const key = metaAt[k] ? `${layer.oid}.m` : layer.oid;
    out.push({ kind: form, key, fill: (tmp) => extractLayer(store, tmp, form, layer.oid, layer.tree, metaAt[k] ? manifestAt(k) : null, stats) });
    if (lookup(objects, layer.tree, OPAQUE_MARKER) !== null) break;
  }
  return out;
}

/**
 * fuse-overlayfs (1.10 here) fails the listing of a directory (ENOMEM) when a layer holds a directory with a
 * subdirectory at a path where a layer below it holds a symlink that loops; the kernel's overlayfs shows the
 * union. To stay clear of it, a stack where a layer holds a directory at a path that is a symlink below it is
 * mounted with that layer and everything below it as one flattened directory (the union there, which has the
 * directory and no symlink). Returns where to flatten: `flatBelow`, or the topmost such layer.
 */
function fuseSafeCut(store: Store, layers: readonly { tree: string; oid: string }[], flatBelow: number): number {
  const objects = store.objects;
  const links = new Set<string>();
  const collect = (tree: string): void => { for (const { path, entry } of walkTree(objects, tree)) if (entry.mode === '120000') links.add(path); };
  if (flatBelow < layers.length) { const t = store.unionTree(layers[flatBelow].oid); if (t) collect(t); }
  let at = flatBelow;
  for (let k = Math.min(flatBelow, layers.length) - 1; k >= 0; k--) {
    if (links.size) {
      for (const { path, entry } of walkTree(objects, layers[k].tree)) if (entry.mode === '40000' && links.has(path)) { at = k; break; }
    }
    collect(layers[k].tree);
  }
  return at;
}

/**
 * `glayer gc`: remove the cache entries that no mount of a stack top in `tops` (in either form) and no mount
 * in `inUse` (`kind/key` names of live mounts) uses. Each goes by a rename into `tmp/` first, so that an entry
 * is never seen half removed. Returns how many went.
 */
export function pruneCache(store: Store, stateDir: string, tops: Iterable<string>, inUse: Iterable<string>): number {
  const root = cacheRoot(stateDir);
  const present = cacheEntries(stateDir);
  if (present.length === 0) return 0;
  const keep = new Set<string>([...inUse, ...plannedEntries(store, stateDir, tops).keys()]);
  let n = 0;
  fs.mkdirSync(join(root, 'tmp'), { recursive: true });
  for (const rel of present) {
    if (keep.has(rel)) continue;
    const gone = join(root, 'tmp', `${process.pid}-gc-${rel.replace('/', '-')}`);
    fs.renameSync(join(root, rel), gone);
    // What cannot be removed now (a directory made read-only by its record, without root) is a leftover in
    // tmp/ that the next extraction or `glayer fsck` removes.
    try { fs.rmSync(gone, { recursive: true, force: true }); } catch { /* left in tmp/ */ }
    n++;
  }
  return n;
}

/** The entries mounts of the stack tops `tops` use (either form), each with how to make it, by `kind/key`. */
export function plannedEntries(store: Store, stateDir: string, tops: Iterable<string>): Map<string, PlannedEntry> {
  const out = new Map<string, PlannedEntry>();
  const stats: Lowers = { cwd: cacheRoot(stateDir), dirs: [], extracted: 0, notApplied: [] };
  for (const top of tops) {
    for (const form of ['k', 'f'] as const) for (const e of planLowers(store, top, form, stats)) out.set(`${e.kind}/${e.key}`, e);
  }
  return out;
}

/** The cache entry `kind/key`, made by `fill` in a temporary directory and renamed into place, if missing. */
async function ensure(root: string, kind: 'k' | 'f' | 'u', key: string, stats: Lowers, fill: (tmp: string) => Promise<void>): Promise<string> {
  const rel = `${kind}/${key}`;
  if (fs.existsSync(join(root, rel))) return rel;
  fs.mkdirSync(join(root, kind), { recursive: true });
  const tmp = join(root, 'tmp', `${process.pid}-${kind}-${key}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  try {
    await fill(tmp);
    fs.renameSync(tmp, join(root, rel));
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if ((e as NodeJS.ErrnoException).code === 'ENOTEMPTY' || (e as NodeJS.ErrnoException).code === 'EEXIST') return rel; // another process made it
    throw e;
  }
  stats.extracted++;
  return rel;
}

/**
 * A layer's own tree in lower-directory form (`k`: the kernel's markers, `f`: `.wh.` files), with the metadata
 * of `manifest` (the union's at this layer; null: none exists) on what it holds and on its copy-ups.
 */
async function extractLayer(store: Store, tmp: string, kind: 'k' | 'f', oid: string, tree: string, manifest: Manifest | null, stats: Lowers): Promise<void> {
  const objects = store.objects;
  const form = lowerForm(objects, tree);
  let plain = form.plain;
  // Metadata-only records: the entry below, copied up (a directory as an empty one: it merges with the rest).
  // And a hardlink group with a name here has every name here (overlayfs links only within one directory).
  if (manifest && manifest.size) {
    const own = store.layerManifest(store.readCommit(oid));
    const union = store.unionTree(oid);
    const held = (p: string): boolean => lookup(objects, plain, p) !== null;
    const copies = new Map<string, TreeEntry>();
    const copyUp = (p: string): void => {
      if (p === '.' || copies.has(p) || held(p)) return;
      const e = union === null ? null : lookup(objects, union, p);
      if (e) copies.set(p, e.mode === '40000' ? { ...e, oid: EMPTY_TREE } : e);
    };
    for (const p of own?.keys() ?? []) if (manifest.has(p)) copyUp(p);
    const groups = new Map<string, string[]>();
    for (const [p, r] of manifest) if (r.link !== undefined) { const g = groups.get(r.link); if (g) g.push(p); else groups.set(r.link, [p]); }
    for (const [first, names] of groups) {
      const all = [first, ...names];
      if (all.some((p) => copies.has(p) || held(p))) all.forEach(copyUp);
    }
    if (copies.size) plain = editTree(objects, plain, copies);
  }
  await new Materializer(tmp, objects, new StoreBlobs(store), new Index()).apply(diffTrees(objects, null, plain));
  if (kind === 'k') writeKernelMarks(tmp, form.whiteouts, form.opaque);
  else {
    for (const p of form.whiteouts) {
      const slash = p.lastIndexOf('/');
      fs.writeFileSync(fsPath(tmp, slash < 0 ? whiteoutName(p) : joinRel(p.slice(0, slash), whiteoutName(p.slice(slash + 1)))), '');
    }
    for (const d of form.opaque) fs.writeFileSync(fsPath(tmp, joinRel(d, OPAQUE_MARKER)), '');
  }
  // Last: markers changed their directories' mtimes.
  if (manifest && manifest.size) applyRecords(objects, tmp, plain, manifest, stats);
}

/** A union tree as plain files, with its manifest. */
async function extractUnion(store: Store, tmp: string, tree: string, manifest: Manifest, stats: Lowers): Promise<void> {
  await new Materializer(tmp, store.objects, new StoreBlobs(store), new Index()).apply(diffTrees(store.objects, null, tree));
  if (manifest.size) applyRecords(store.objects, tmp, tree, manifest, stats);
}

/** Give every entry of `tree` (extracted at `dir`) that has a record in `manifest` its metadata. */
function applyRecords(objects: Store['objects'], dir: string, tree: string, manifest: Manifest, stats: Lowers): void {
  const targets: MetaTarget[] = [];
  for (const { path, entry } of walkTree(objects, tree)) {
    const record = manifest.get(path);
    if (record) targets.push({ path, entry, record, old: null });
  }
  if (!targets.length) return;
  for (const phrase of applyMeta(dir, new Index(), targets).notApplied) if (!stats.notApplied.includes(phrase)) stats.notApplied.push(phrase);
}

/** Extractions a killed process left in cache/tmp (their pid is gone). */
export function staleExtractions(stateDir: string): string[] {
  const dir = join(cacheRoot(stateDir), 'tmp');
  let names: string[] = [];
  try { names = fs.readdirSync(dir); } catch { return []; }
  return names.filter((n) => { const pid = Number(n.split('-')[0]); return !(Number.isInteger(pid) && pid > 0 && alive(pid)); }).map((n) => join(dir, n));
}

/** Every cache entry: `kind/key` names. */
export function cacheEntries(stateDir: string): string[] {
  const root = cacheRoot(stateDir);
  const out: string[] = [];
  for (const kind of ['k', 'f', 'u']) {
    let names: string[] = [];
    try { names = fs.readdirSync(join(root, kind)); } catch { continue; }
    for (const n of names) out.push(`${kind}/${n}`);
  }
  return out;
}
