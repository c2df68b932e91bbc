/**
 * An in-memory TreeSink for core tests: trees get their real git oids (the tree encoding of store/objects.ts,
 * hashed by core/hash.ts), blobs are kept by oid, and reads are counted so a test can prove a walk skipped a
 * subtree. Plus a small DSL to write trees as nested objects and to flatten a tree back for assertions.
 */
import { hashObject } from '../../src/core/hash.js';
import { EMPTY_BLOB, EMPTY_TREE, type Mode, type TreeEntry, type TreeSink } from '../../src/core/tree.js';
import { encodeTree } from '../../src/store/objects.js';

export class MemTrees implements TreeSink {
  readonly trees = new Map<string, readonly TreeEntry[]>([[EMPTY_TREE, []]]);
  readonly blobs = new Map<string, Buffer>([[EMPTY_BLOB, Buffer.alloc(0)]]);
  /** How many times each tree was read. */
  readonly reads = new Map<string, number>();

  readTree(oid: string): readonly TreeEntry[] {
    const t = this.trees.get(oid);
    if (!t) throw new Error(`MemTrees: no tree ${oid}`);
    this.reads.set(oid, (this.reads.get(oid) ?? 0) + 1);
    return t;
  }

  writeTree(entries: readonly TreeEntry[]): string {
    for (let k = 1; k < entries.length; k++) {
      if (!(entries[k - 1].name < entries[k].name)) throw new Error(`MemTrees: entries not sorted/unique at ${JSON.stringify(entries[k].name)}`);
    }
    const oid = hashObject('tree', encodeTree(entries));
    if (!this.trees.has(oid)) this.trees.set(oid, [...entries]);
    return oid;
  }

  blob(content: string | Buffer): string {
    const data = typeof content === 'string' ? Buffer.from(content, 'latin1') : content;
    const oid = hashObject('blob', data);
    this.blobs.set(oid, data);
    return oid;
  }

  blobText(oid: string): string {
    const b = this.blobs.get(oid);
    if (!b) throw new Error(`MemTrees: no blob ${oid}`);
    return b.toString('latin1');
  }
}

/** A leaf with an explicit mode (and content or oid). */
export interface Leaf { readonly $mode: Mode; readonly content?: string; readonly oid?: string; readonly dir?: Spec }
export type Spec = { readonly [name: string]: string | Spec | Leaf };

export const file = (content: string): Leaf => ({ $mode: '100644', content });
export const exe = (content: string): Leaf => ({ $mode: '100755', content });
export const link = (target: string): Leaf => ({ $mode: '120000', content: target });
/** A whiteout marker / any empty regular file. */
export const empty = (): Leaf => ({ $mode: '100644', content: '' });
/** A raw entry: any mode with any oid (submodules, markers with odd modes, ...). */
export const raw = (mode: Mode, oid: string): Leaf => ({ $mode: mode, oid });
export const sub = (oid = '1234567890123456789012345678901234567890'): Leaf => raw('160000', oid);

function isLeaf(v: unknown): v is Leaf {
  return typeof v === 'object' && v !== null && '$mode' in v;
}

/** Build a tree from a spec; a string is a regular file, an object a directory ({} is git's empty tree). */
export function build(m: MemTrees, spec: Spec): string {
  const entries: TreeEntry[] = [];
  for (const [name, v] of Object.entries(spec)) {
    if (typeof v === 'string') entries.push({ name, mode: '100644', oid: m.blob(v) });
    else if (isLeaf(v)) entries.push({ name, mode: v.$mode, oid: v.oid ?? (v.$mode === '40000' ? build(m, v.dir ?? {}) : m.blob(v.content ?? '')) });
    else entries.push({ name, mode: '40000', oid: build(m, v) });
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return m.writeTree(entries);
}

/**
 * A tree as a flat record, path -> description: 'dir', 'file:CONTENT', 'exe:CONTENT', 'link:TARGET', or
 * 'MODE:OID' for anything else. Every directory is listed (so empty ones show).
 */
export function flatten(m: MemTrees, root: string | null, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  if (root === null) return out;
  const visit = (oid: string, pre: string): void => {
    for (const e of m.readTree(oid)) {
      const p = pre === '' ? e.name : pre + '/' + e.name;
      if (e.mode === '40000') { out[p] = 'dir'; visit(e.oid, p); }
      else if (e.mode === '100644' && m.blobs.has(e.oid)) out[p] = 'file:' + m.blobText(e.oid);
      else if (e.mode === '100755' && m.blobs.has(e.oid)) out[p] = 'exe:' + m.blobText(e.oid);
      else if (e.mode === '120000' && m.blobs.has(e.oid)) out[p] = 'link:' + m.blobText(e.oid);
      else out[p] = `${e.mode}:${e.oid}`;
    }
  };
  visit(root, prefix);
  return out;
}

/** A seeded PRNG (mulberry32): the same seed gives the same sequence. */
export function prng(seed: number): { next(): number; int(n: number): number; pick<T>(a: readonly T[]): T; chance(p: number): boolean } {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (a) => a[Math.floor(next() * a.length)],
    chance: (p) => next() < p,
  };
}

/** A random plain tree (no markers) of files, executables, symlinks and (sometimes empty) directories. */
export function randomTree(m: MemTrees, r: ReturnType<typeof prng>, depth = 3, names = ['a', 'b', 'c', 'd', 'e', 'f.txt', 'g-h', 'Z', '\xc3\xa9']): string {
  return build(m, randomSpec(r, depth, names));
}

function randomSpec(r: ReturnType<typeof prng>, depth: number, names: string[]): Spec {
  const spec: Record<string, string | Spec | Leaf> = {};
  const n = r.int(names.length);
  for (let k = 0; k < n; k++) {
    const name = r.pick(names);
    const roll = r.next();
    if (depth > 0 && roll < 0.35) spec[name] = randomSpec(r, depth - 1, names);
    else if (roll < 0.75) spec[name] = r.pick(['1', '2', '3', '']);
    else if (roll < 0.88) spec[name] = exe(r.pick(['1', '2']));
    else spec[name] = link(r.pick(['a', '../x']));
  }
  return spec;
}

/** `leaf` wrapped in `depth` directories named `d`: a tree deeper than any call stack. */
export function deepChain(m: MemTrees, leaf: Spec, depth = 20000): string {
  let t = build(m, leaf);
  for (let k = 0; k < depth; k++) t = m.writeTree([{ name: 'd', mode: '40000', oid: t }]);
  return t;
}
