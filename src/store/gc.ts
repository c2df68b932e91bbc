/**
 * Garbage collection of the store, glayer's own (no git binary):
 *
 * 1. Reachable: everything named by a ref (stacks, tags, remote-tracking stacks, glayer's refs), HEAD, every
 *    reflog entry, and the union-cache trees of reachable layers; commits' trees and parents, tags' objects,
 *    trees' entries, walked with the path each tree and blob was first seen at.
 * 2. One new pack holds every reachable object. Trees and blobs are grouped by path and each group sorted by size,
 *    largest first; an object is stored as a delta against the previous one of its group (a version of the
 *    same path, as git's heuristics mostly find) when that is less than half its size, chains at most 50 deep.
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
import { encodeDelta, PackFileWriter } from './repack.js';
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
  pruned: number;
  keptUnreachable: number;
  packsRemoved: number;
  looseRemoved: number;
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
  const objects = store.objects;
  const gitdir = store.gitdir;
  const bytesBefore = sizeOfObjects(objects.objectsDir);
  const packs = objects.packList();
  const loose = [...objects.looseOids()];
  const all = new Map<string, number>(); // oid -> age (mtime ms)
  for (const p of packs) {
    const mtime = fs.statSync(p.path).mtimeMs;
    for (const oid of p.oids()) all.set(oid, Math.max(all.get(oid) ?? 0, mtime));
  }
  for (const oid of loose) {
    try { all.set(oid, Math.max(all.get(oid) ?? 0, fs.statSync(objects.looseFile(oid)).mtimeMs)); } catch { /* raced */ }
  }

  // 1. What is reachable, with the path each tree and blob was first seen at.
  const roots = new Set<string>();
  for (const [, oid] of listRefs(gitdir, 'refs/')) roots.add(oid);
  try { const h = readRef(gitdir, 'HEAD'); if (h) roots.add(h); } catch { /* unborn */ }
  for (const oid of reflogOids(gitdir)) if (all.has(oid)) roots.add(oid);
  const kind = new Map<string, ObjectType>();
  const pathOf = new Map<string, string>();
  const commits: string[] = [];
  const todo: Array<{ oid: string; type: ObjectType | null; path: string }> = [...roots].map((oid) => ({ oid, type: null, path: '' }));
  const visit = (): void => {
    while (todo.length) {
      const { oid, type, path } = todo.pop()!;
      if (kind.has(oid)) continue;
      if (type === 'blob') { kind.set(oid, 'blob'); pathOf.set(oid, path); continue; }
      const o = objects.read(oid);
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
  // The union cache: lines of reachable layers stay, and their trees with them.
  const unionsFile = join(gitdir, 'glayer', 'unions');
  let unionText = '';
  try { unionText = fs.readFileSync(unionsFile, 'latin1'); } catch { /* none */ }
  const keptLines: string[] = [];
  let dropped = 0;
  for (const line of unionText.split('\n')) {
    if (line === '') continue;
    const [c, t] = line.split(' ');
    if (kind.get(c) === 'commit' && t && all.has(t)) { keptLines.push(line); todo.push({ oid: t, type: 'tree', path: '' }); }
    else dropped++;
  }
  visit();

  // 2. The new pack: commits and tags first, then trees and blobs by path, largest first, deltas along each group.
  const order: string[] = [...commits];
  for (const [oid, k] of kind) if (k === 'tag') order.push(oid);
  const groups = new Map<string, string[]>();
  for (const [oid, k] of kind) {
    if (k !== 'tree' && k !== 'blob') continue;
    const key = `${k} ${pathOf.get(oid) ?? ''}`;
    const g = groups.get(key);
    if (g) g.push(oid); else groups.set(key, [oid]);
  }
  const total = kind.size;
  let deltas = 0;
  let packName: string | null = null;
  if (total > 0) {
    const w = new PackFileWriter(join(objects.objectsDir, 'pack'), total);
    try {
      let done = 0;
      const tick = (): void => { if (opts.onProgress && (++done % 1000 === 0 || done === total)) opts.onProgress({ phase: 'gc: packing', done, total }); };
      for (const oid of order) { const o = objects.read(oid); w.add(oid, o.type, o.data); tick(); }
      for (const [, oids] of [...groups].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
        const items = oids.map((oid) => ({ oid, size: objects.sizeOf(oid) })).sort((a, b) => b.size - a.size || (a.oid < b.oid ? -1 : 1));
        let prev: { oid: string; data: Buffer; depth: number } | null = null;
        for (const it of items) {
          const o = objects.read(it.oid);
          let depth = 0;
          const delta: Buffer | null = prev && prev.depth < 50 && o.data.length >= 64 ? encodeDelta(prev.data, o.data) : null;
          if (delta) { w.addDelta(it.oid, prev!.oid, delta); deltas++; depth = prev!.depth + 1; }
          else w.add(it.oid, o.type, o.data);
          prev = { oid: it.oid, data: o.data, depth };
          tick();
        }
      }
      packName = w.finish().name;
    } catch (e) {
      w.abort();
      throw e;
    }
  }

  // 3. Unreachable objects: the young ones stay loose with their age, the old ones go.
  let pruned = 0;
  let kept = 0;
  const looseSet = new Set(loose);
  for (const [oid, mtime] of all) {
    if (kind.has(oid)) continue;
    if (mtime >= opts.cutoff) {
      kept++;
      if (!looseSet.has(oid)) {
        const o = objects.read(oid);
        const w = objects.writer();
        w.add(o.type, o.data);
        w.flush();
        try { fs.utimesSync(objects.looseFile(oid), mtime / 1000, mtime / 1000); } catch { /* packed by the writer: fine */ }
      }
    } else pruned++;
  }
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
    if (reachable || (all.get(oid) ?? 0) < opts.cutoff) { fs.rmSync(objects.looseFile(oid), { force: true }); looseRemoved++; }
  }
  for (const d of fs.readdirSync(objects.objectsDir)) {
    if (/^[0-9a-f]{2}$/.test(d)) { try { fs.rmdirSync(join(objects.objectsDir, d)); } catch { /* not empty */ } }
  }
  objects.rescan();
  if (dropped) {
    fs.writeFileSync(unionsFile + '.tmp', keptLines.map((l) => l + '\n').join(''));
    fs.renameSync(unionsFile + '.tmp', unionsFile);
  }
  // The efficiency cache (delta-sizes.ts): entries of layers that are no longer reachable go with them (a cache:
  // one that cannot be removed now is removed by a later gc, and is never wrong meanwhile).
  for (const c of cachedLayers(gitdir)) {
    if (kind.get(c) !== 'commit') { try { fs.rmSync(layerSizesFile(gitdir, c), { force: true }); } catch { /* next gc */ } }
  }
  return {
    bytesBefore, bytesAfter: sizeOfObjects(objects.objectsDir), objectsBefore: all.size, packed: total, deltas, pruned, keptUnreachable: kept,
    packsRemoved, looseRemoved, unionLinesDropped: dropped, pack: packName,
  };
}

export type { ReflogEntry };
