/**
 * What `glayer serve` reads that no CLI verb prints whole: the union tree as of a layer with that layer's own
 * changes marked (dive's picture), one file's content as of a layer, and which layers a request may name.
 * Everything is read through the store (trees and blobs by id), never through the file system, so a request can
 * only ever see what the layers hold; nothing here writes (the process runs with `storeMode.readOnly`).
 *
 * A layer is named by its full id and must belong to a stack (a local or remote-tracking branch) or a tag of the
 * store; `upper` names the writable layer, worked out as `status` does but without writing (planSync).
 */
import { diffTrees, statusEntries } from '../core/changes.js';
import { compareBytes, toBytes } from '../core/path.js';
import { EMPTY_BLOB, kindOf, lookup, walkTree, type Kind, type TreeEntry } from '../core/tree.js';
import { BadPathError, display, NoSuchPathError, UnknownLayerError } from '../errors.js';
import { BlobReader, isBinary } from '../api/diff.js';
import { planSync } from '../api/sync.js';
import { LARGE_BLOB } from '../store/objects.js';
import { listRefs } from '../store/refs.js';
import type { Store } from '../store/store.js';
import { withWorkspace } from '../workspace/workspace.js';

/** The writable layer's name in the API. */
export const UPPER = 'upper';

/** A request path as a view path (byte string): relative, no `.`/`..`, no NUL, no backslash tricks needed. */
export function checkPath(path: string): string {
  if (path === '') return '';
  if (path.includes('\0')) throw new BadPathError(path, 'contains a NUL byte');
  if (path.startsWith('/')) throw new BadPathError(path, 'is absolute; paths are relative to the view root');
  const parts = path.split('/');
  for (const p of parts) {
    if (p === '' || p === '.' || p === '..') throw new BadPathError(path, `has a '${p === '' ? '//' : p}' component`);
  }
  return toBytes(path);
}

/** Where a layer sits: the ref of a stack (or tag) holding it and how many layers below that ref's top. */
export interface LayerPlace { ref: string; depth: number }

/** Find the layer `id` (40 hex digits) in the store's stacks and tags; the name resolve.ts accepts for it. */
export function placeLayer(store: Store, id: string): LayerPlace {
  if (!/^[0-9a-f]{40}$/.test(id)) throw new UnknownLayerError(id, 'not a layer id (40 hex digits)');
  const refs = [store.stackRef, ...listRefs(store.gitdir, 'refs/heads/').keys(), ...listRefs(store.gitdir, 'refs/remotes/').keys(), ...listRefs(store.gitdir, 'refs/tags/').keys()];
  for (const ref of new Set(refs)) {
    const top = store.resolve(ref);
    if (!top) continue;
    let chain;
    try { chain = store.layers(top); } catch { continue; }
    const depth = chain.findIndex((c) => c.oid === id);
    if (depth >= 0) return { ref, depth };
  }
  throw new UnknownLayerError(id, 'not a layer of any stack or tag of this store');
}

/** The layer name (see resolve.ts) of layer `id`: `refs/heads/main~2`. */
export function layerName(store: Store, id: string): string {
  const p = placeLayer(store, id);
  return p.depth === 0 ? p.ref : `${p.ref}~${p.depth}`;
}

/** A layer's own change to an entry: added, changed (content or kind), deleted, or metadata only (mode). */
export type EntryChange = 'A' | 'C' | 'D' | 'M';

export interface TreeItem {
  /** UTF-8 where it decodes, '/'-separated. */
  path: string;
  kind: Kind;
  /** Bytes: a file's, a symlink's target's, a directory's files' together. */
  size: number;
  /** What this layer did to the entry; null when it comes unchanged from below. */
  change: EntryChange | null;
}

export interface TreeResult {
  /** The layer's id, or 'upper'. */
  layer: string;
  /** The layer below (null for the bottom layer; the stack top for 'upper'). */
  below: string | null;
  /** Every entry of the union as of the layer, and the entries it deleted, in walk order (byte order). */
  entries: TreeItem[];
  /** Entries by change. */
  counts: { added: number; changed: number; deleted: number; metadata: number };
  /** Bytes of the union's files as of the layer. */
  bytes: number;
}

/** Blob sizes by id (immutable), kept across requests: a 20,000-file tree costs 20,000 pack reads only once. */
const blobSizes = new Map<string, number>();
function memoSize(oid: string, size: (oid: string) => number): number {
  let n = blobSizes.get(oid);
  if (n === undefined) {
    n = size(oid);
    if (blobSizes.size >= 2_000_000) blobSizes.clear();
    blobSizes.set(oid, n);
  }
  return n;
}

/** Walk order as a sort key: compare component by component ('/' below every byte of a name). */
const walkKey = (p: string): string => p.replaceAll('/', '\0');

export async function layerTree(root: string, layer: string): Promise<TreeResult> {
  return withWorkspace(root, (ws) => {
    const store = ws.store;
    let below: string | null;
    let above: string;
    let belowId: string | null;
    let size: (oid: string) => number;
    if (layer === UPPER) {
      const plan = planSync(ws);
      below = plan.lowerTree;
      above = plan.viewTree;
      belowId = plan.head;
      const reader = new BlobReader(store, plan);
      size = (oid) => reader.size(oid);
    } else {
      placeLayer(store, layer);
      const commit = store.readCommit(layer);
      belowId = commit.parents[0] ?? null;
      below = store.unionTree(belowId);
      above = store.unionTree(layer)!;
      size = (oid) => (oid === EMPTY_BLOB ? 0 : store.objects.sizeOf(oid));
    }
    const changes = new Map<string, EntryChange>();
    const deleted: Array<{ path: string; entry: TreeEntry }> = [];
    for (const e of statusEntries(store.objects, diffTrees(store.objects, below, above))) {
      if (e.change === 'D') {
        deleted.push({ path: e.path, entry: e.old! });
        if (e.old!.mode === '40000') for (const w of walkTree(store.objects, e.old!.oid, e.path)) deleted.push(w);
      } else if (e.change === 'C' && e.old && e.new && e.old.oid === e.new.oid && kindOf(e.old.mode) === kindOf(e.new.mode)) {
        changes.set(e.path, 'M');
      } else {
        changes.set(e.path, e.change);
      }
    }
    const raw: Array<{ path: string; entry: TreeEntry; change: EntryChange | null }> = [];
    for (const { path, entry } of walkTree(store.objects, above)) raw.push({ path, entry, change: changes.get(path) ?? null });
    for (const d of deleted) raw.push({ ...d, change: 'D' });
    if (deleted.length) raw.sort((x, y) => compareBytes(walkKey(x.path), walkKey(y.path)) || (x.change === 'D' ? 1 : -1));
    // Sizes: files directly, directories as the sum of the files under them (deleted ones apart).
    const sizes = new Float64Array(raw.length);
    const dirAt = new Map<string, number>();
    let bytes = 0;
    const counts = { added: 0, changed: 0, deleted: 0, metadata: 0 };
    raw.forEach((r, i) => {
      const dead = r.change === 'D';
      const key = (dead ? 'D:' : '') + r.path;
      if (r.change === 'A') counts.added++; else if (r.change === 'C') counts.changed++; else if (r.change === 'D') counts.deleted++; else if (r.change === 'M') counts.metadata++;
      if (r.entry.mode === '40000') { dirAt.set(key, i); return; }
      if (r.entry.mode === '160000') return;
      const n = memoSize(r.entry.oid, size);
      sizes[i] = n;
      if (!dead) bytes += n;
      for (let k = r.path.lastIndexOf('/'); k > 0; k = r.path.lastIndexOf('/', k - 1)) {
        const d = dirAt.get((dead ? 'D:' : '') + r.path.slice(0, k));
        if (d !== undefined) sizes[d] += n;
      }
    });
    return {
      layer,
      below: belowId,
      entries: raw.map((r, i) => ({ path: display(r.path), kind: kindOf(r.entry.mode), size: sizes[i], change: r.change })),
      counts,
      bytes,
    };
  }, { lock: false });
}

export interface FileResult {
  layer: string;
  path: string;
  kind: Kind;
  mode: string;
  oid: string;
  size: number;
  binary: boolean;
  /** The content as text (UTF-8, invalid sequences replaced), cut at `limit` bytes; null for binary files and files of 16 MiB or more. */
  text: string | null;
  /** The text was cut at `limit` bytes. */
  truncated: boolean;
  limit: number;
  /** A directory's entries (names), when the path is a directory. */
  entries: string[] | null;
}

/** Text shown of one file: more is cut, with a note. */
export const TEXT_LIMIT = 256 * 1024;

/** One path as of a layer ('upper': the working state). */
export async function layerFile(root: string, layer: string, userPath: string): Promise<FileResult> {
  const path = checkPath(userPath);
  return withWorkspace(root, (ws) => {
    const store = ws.store;
    let tree: string | null;
    let reader: BlobReader;
    if (layer === UPPER) {
      const plan = planSync(ws);
      tree = plan.viewTree;
      reader = new BlobReader(store, plan);
    } else {
      placeLayer(store, layer);
      tree = store.unionTree(layer);
      reader = new BlobReader(store, null);
    }
    const e = lookup(store.objects, tree, path);
    if (!e) throw new NoSuchPathError(userPath, layer);
    const kind = kindOf(e.mode);
    const base = { layer, path: display(path), kind, mode: e.mode, oid: e.oid, limit: TEXT_LIMIT };
    if (kind === 'dir') {
      const entries = store.objects.readTree(e.oid).map((c) => display(c.name) + (c.mode === '40000' ? '/' : ''));
      return { ...base, size: 0, binary: false, text: null, truncated: false, entries };
    }
    if (kind === 'submodule') return { ...base, size: 0, binary: false, text: null, truncated: false, entries: null };
    const size = reader.size(e.oid);
    // A file the store streams (16 MiB and more) is not read at all: its size and a note, never its bytes in memory.
    if (size >= LARGE_BLOB) return { ...base, size, binary: false, text: null, truncated: true, entries: null };
    const data = reader.read(e.oid);
    const binary = isBinary(data);
    const cut = data.length > TEXT_LIMIT;
    const text = binary ? null : new TextDecoder('utf-8').decode(cut ? data.subarray(0, TEXT_LIMIT) : data);
    return { ...base, size, binary, text, truncated: cut && !binary, entries: null };
  }, { lock: false });
}

/** The tags of the store: name and the layer each names. */
export async function tags(root: string): Promise<Array<{ name: string; id: string }>> {
  return withWorkspace(root, (ws) => {
    const out: Array<{ name: string; id: string }> = [];
    for (const [ref] of listRefs(ws.gitdir, 'refs/tags/')) {
      try {
        out.push({ name: ref.slice('refs/tags/'.length), id: ws.store.resolve(ref)! });
      } catch { /* unreadable tag: left out */ }
    }
    return out.sort((a, b) => compareBytes(a.name, b.name));
  }, { lock: false });
}
