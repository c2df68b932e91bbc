/**
 * Garbage collection of the store, glayer's own (no git binary):
 *
 * 1. Reachable: everything named by a ref (stacks, tags, remote-tracking stacks, glayer's refs), HEAD, every
 *    reflog entry, and the union-cache trees of reachable layers; commits' trees and parents, tags' objects,
 *    trees' entries, walked with the path each tree and blob was first seen at.
 * 2. One new pack holds every reachable object (repack.ts). What the old packs hold is copied as it is, compressed
 *    (deltas whose base goes into the new pack included), as git's pack-objects reuses objects and deltas.
 *    Trees and blobs not stored as deltas yet are grouped by path (versions of the same path, as git's name
 *    hash mostly finds), each group sorted by size, largest first, and each object is stored as a delta against
 *    one of the previous objects of its group when that is less than half its size, chains at most 50 deep.
 *    The pack is synced and renamed into place before anything is removed.
 * 3. Unreachable objects younger than the cutoff (default: two weeks, as git) stay, as loose objects with
 *    their age kept (the mtime of the pack or file they came from); older ones go. Then the old packs and the
 *    loose objects now packed are removed, the union cache keeps only lines of reachable layers and the
 *    efficiency cache only the entries of reachable layers.
 *
 * Safety: the caller holds the workspace lock, so no glayer writer runs meanwhile; a reader that listed the
 * old packs finds the new one (ObjectStore.read looks again when a pack vanished). A kill before the rename
 * leaves a temporary file that fsck removes; after it, both packs hold the objects and a rerun finishes the job.
 */
import * as fs from '../sys/fs.js';
import { join } from 'node:path';
import { cachedLayers, layerSizesFile } from './delta-sizes.js';
import { parseTree, type ObjectType } from './objects.js';
import { PackSources, repack, type RepackReport } from './repack.js';
import { listRefs, readRef, reflogOids, type ReflogEntry } from './refs.js';
import type { Store } from './store.js';

export interface GcOptions {
  /** Unreachable objects last written before this time (ms since the epoch) are removed. */
  cutoff: number;
  onProgress?: (p: { phase: string; done: number; total: number }) => void;
}

export interface GcReport {
  /** Bytes of objects/ (packs, indexes, loose objects) before and after. */
  bytesBefore: number;
  bytesAfter: number;
  objectsBefore: number;
  /** Objects in the new pack, how many are deltas, and unreachable objects removed or kept (too young). */
  packed: number;
  deltas: number;
  /** Of the new pack's entries: deltas and whole objects copied from the old packs as they were. */
  reusedDeltas: number;
  reusedWhole: number;
  /** Bytes of the new pack and its index. */
  packBytes: number;
  pruned: number;
  keptUnreachable: number;
  packsRemoved: number;
  looseRemoved: number;
  /** Lines dropped from the caches kept per layer (unions, union-meta, depths): unreachable layers, repeats. */
  unionLinesDropped: number;
  pack: string | null;
}

function sizeOfObjects(dir: string): number {
  let n = 0;
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p); else if (e.isFile()) n += fs.statSync(p).size;
    }
  };
  try { walk(dir); } catch { /* none */ }
  return n;
}

export function collectGarbage(store: Store, opts: GcOptions): GcReport {
  const bytesBefore = sizeOfObjects(store.objects.objectsDir);
  const packs = store.objects.packList();
  const sources = new PackSources(store.objects, packs);
  try {
    return collect(store, opts, packs, sources, bytesBefore);
  } finally {
    sources.close();
  }
}

function collect(store: Store, opts: GcOptions, packs: ReadonlyArray<{ path: string }>, sources: PackSources, bytesBefore: number): GcReport {
  const objects = store.objects;
  const gitdir = store.commonDir;
  const loose = [...objects.looseOids()];
  // Ages (mtime, ms): a packed object's is its pack's (the newest one's when several packs hold it).
  const packAge = packs.map((p) => fs.statSync(p.path).mtimeMs);
  const moreAge = new Map<string, number>(); // objects in several packs, or loose too
  packs.forEach((_, i) => {
    const src = sources.packs[i];
    for (let k = 0; k < src.n; k++) {
      const oid = src.oidAt(k);
      const prev = sources.add(oid, i, k);
      if (prev >= 0) moreAge.set(oid, Math.max(moreAge.get(oid) ?? packAge[prev], packAge[i]));
    }
  });
  const looseOnly: string[] = [];
  for (const oid of loose) {
    let mtime: number;
    try { mtime = fs.statSync(objects.looseFile(oid)).mtimeMs; } catch { continue; /* raced */ }
    const p = sources.packOf(oid);
    if (p < 0) looseOnly.push(oid);
    moreAge.set(oid, Math.max(moreAge.get(oid) ?? (p < 0 ? 0 : packAge[p]), mtime));
  }
  const ageOf = (oid: string): number => moreAge.get(oid) ?? packAge[sources.packOf(oid)] ?? 0;
  const exists = (oid: string): boolean => sources.packOf(oid) >= 0 || moreAge.has(oid);

  // 1. What is reachable, with the path each tree and blob was first seen at.
  const roots = new Set<string>();
  for (const [, oid] of listRefs(gitdir, 'refs/')) roots.add(oid);
  try { const h = readRef(gitdir, 'HEAD'); if (h) roots.add(h); } catch { /* unborn */ }
  for (const oid of reflogOids(gitdir)) if (exists(oid)) roots.add(oid);
  const kind = new Map<string, ObjectType>();
  const pathOf = new Map<string, string>();
  const commits: string[] = [];
  const todo: Array<{ oid: string; type: ObjectType | null; path: string }> = [...roots].map((oid) => ({ oid, type: null, path: '' }));
  const visit = (): void => {
    while (todo.length) {
      const { oid, type, path } = todo.pop()!;
      if (kind.has(oid)) continue;
      if (type === 'blob') { kind.set(oid, 'blob'); pathOf.set(oid, path); continue; }
      const o = sources.read(oid);
      kind.set(oid, o.type);
      if (o.type === 'commit') {
        commits.push(oid);
        const text = o.data.toString('latin1');
        const head = text.slice(0, text.indexOf('\n\n') >>> 0);
        for (const m of head.matchAll(/^(tree|parent) ([0-9a-f]{40})$/gm)) todo.push({ oid: m[2], type: m[1] === 'tree' ? 'tree' : 'commit', path: '' });
      } else if (o.type === 'tag') {
        const m = /^object ([0-9a-f]{40})$/m.exec(o.data.toString('latin1'));
        if (m) todo.push({ oid: m[1], type: null, path: '' });
      } else if (o.type === 'tree') {
        pathOf.set(oid, path);
        for (const e of parseTree(oid, o.data)) {
          if (e.mode === '160000') continue;
          const p = path === '' ? e.name : `${path}/${e.name}`;
          todo.push({ oid: e.oid, type: e.mode === '40000' ? 'tree' : 'blob', path: p });
        }
      } else pathOf.set(oid, path);
    }
  };
  visit();
  // The caches kept per layer (store.ts), one "commit value" line each: lines of reachable layers stay, the
  // objects they name with them (the union's tree; the blob holding the union's metadata manifest, '-' for none);
  // the last line of a layer is the one that counts, as when they are read.
  let dropped = 0;
  const caches: Array<{ file: string; kept: string[] }> = [];
  const prune = (name: string, valid: RegExp, type?: 'tree' | 'blob'): void => {
    const file = join(gitdir, 'glayer', name);
    let text = '';
    try { text = fs.readFileSync(file, 'latin1'); } catch { return; /* none */ }
    const last = new Map<string, string>();
    let lines = 0;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      lines++;
      const [c, v] = line.split(' ');
      if (/^[0-9a-f]{40}$/.test(c) && v && valid.test(v)) last.set(c, v);
    }
    const kept: string[] = [];
    for (const [c, v] of last) {
      if (kind.get(c) !== 'commit' || (type && v !== '-' && !exists(v))) continue;
      kept.push(`${c} ${v}`);
      if (type && v !== '-') todo.push({ oid: v, type, path: '' });
    }
    if (kept.length < lines) { dropped += lines - kept.length; caches.push({ file, kept }); }
  };
  prune('unions', /^[0-9a-f]{40}$/, 'tree');
  prune('union-meta', /^(-|[0-9a-f]{40})$/, 'blob');
  prune('depths', /^[1-9][0-9]{0,8}$/);
  visit();

  // 2. The new pack: commits and tags first, then trees and blobs by path (repack.ts: copies of what the old
  // packs hold, deltas along each group).
  const first: string[] = [...commits];
  for (const [oid, k] of kind) if (k === 'tag') first.push(oid);
  const groups = new Map<string, string[]>();
  for (const [oid, k] of kind) {
    if (k !== 'tree' && k !== 'blob') continue;
    const key = `${k} ${pathOf.get(oid) ?? ''}`;
    const g = groups.get(key);
    if (g) g.push(oid); else groups.set(key, [oid]);
  }
  const total = kind.size;
  let packName: string | null = null;
  let r: RepackReport | null = null;
  if (total > 0) {
    let done = 0;
    const tick = (): void => { if (opts.onProgress && (++done % 1000 === 0 || done === total)) opts.onProgress({ phase: 'gc: packing', done, total }); };
    const ordered = [...groups].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([, oids]) => oids);
    r = repack(objects, sources, { types: kind, first, groups: ordered }, join(objects.objectsDir, 'pack'), tick);
    packName = r.name;
  }

  // 3. Unreachable objects: the young ones stay loose with their age, the old ones go.
  let pruned = 0;
  let kept = 0;
  const looseSet = new Set(loose);
  const unreachable = (oid: string): void => {
    if (kind.has(oid)) return;
    const mtime = ageOf(oid);
    if (mtime < opts.cutoff) { pruned++; return; }
    kept++;
    if (looseSet.has(oid)) return;
    // Only in a pack that is about to go: written loose, with its age.
    const o = objects.read(oid);
    objects.writeLoose(o.type, o.data);
    try { fs.utimesSync(objects.looseFile(oid), mtime / 1000, mtime / 1000); } catch { /* best effort */ }
  };
  for (const oid of sources.oids()) unreachable(oid);
  for (const oid of looseOnly) unreachable(oid);
  // Old packs and loose objects that are now packed or expired.
  let packsRemoved = 0;
  for (const p of packs) {
    if (packName && p.path.endsWith(`${packName}.pack`)) continue;
    fs.rmSync(p.path.replace(/\.pack$/, '.idx'), { force: true });
    fs.rmSync(p.path, { force: true });
    fs.rmSync(p.path.replace(/\.pack$/, '.rev'), { force: true });
    packsRemoved++;
  }
  let looseRemoved = 0;
  for (const oid of loose) {
    const reachable = kind.has(oid);
    if (reachable || ageOf(oid) < opts.cutoff) { fs.rmSync(objects.looseFile(oid), { force: true }); looseRemoved++; }
  }
  for (const d of fs.readdirSync(objects.objectsDir)) {
    if (/^[0-9a-f]{2}$/.test(d)) { try { fs.rmdirSync(join(objects.objectsDir, d)); } catch { /* not empty */ } }
  }
  objects.rescan();
  for (const { file, kept } of caches) {
    fs.writeFileSync(file + '.tmp', kept.map((l) => l + '\n').join(''));
    fs.renameSync(file + '.tmp', file);
  }
  // The efficiency cache (delta-sizes.ts): entries of layers that are no longer reachable go with them (a cache:
  // one that cannot be removed now is removed by a later gc, and is never wrong meanwhile).
  for (const c of cachedLayers(gitdir)) {
    if (kind.get(c) !== 'commit') { try { fs.rmSync(layerSizesFile(gitdir, c), { force: true }); } catch { /* next gc */ } }
  }
  return {
    bytesBefore, bytesAfter: sizeOfObjects(objects.objectsDir), objectsBefore: sources.count + looseOnly.length, packed: total,
    deltas: r?.deltas ?? 0, reusedDeltas: r?.reusedDeltas ?? 0, reusedWhole: r?.reusedWhole ?? 0, packBytes: r?.bytes ?? 0, pruned, keptUnreachable: kept,
    packsRemoved, looseRemoved, unionLinesDropped: dropped, pack: packName,
  };
}

export type { ReflogEntry };
