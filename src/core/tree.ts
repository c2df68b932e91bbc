/**
 * Trees as git has them: a directory is a list of entries {name, mode, oid}; a subdirectory is an entry whose
 * oid names another tree. Trees are immutable and addressed by their oid, so two equal subtrees are one value
 * and a walk can skip a subtree the moment two oids match.
 *
 * Walk order: in memory, the entries of a tree are kept sorted by plain byte order of their names (names are
 * byte strings, see path.ts), and every walk in core/ is a sorted merge in that order. Git's own order (a
 * directory sorts as if its name ended in '/') only matters for the bytes of a tree object; store/ applies it
 * when it encodes one.
 */

export type Mode = '100644' | '100755' | '120000' | '40000' | '160000';

export interface TreeEntry {
  readonly name: string;
  readonly mode: Mode;
  readonly oid: string;
}

export const EMPTY_TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';
export const EMPTY_BLOB = 'e69de29bb2d1d6434b8b29ae775ad8c2e48c5391';

export type Kind = 'file' | 'symlink' | 'dir' | 'submodule';

export function kindOf(mode: Mode): Kind {
  switch (mode) {
    case '40000': return 'dir';
    case '120000': return 'symlink';
    case '160000': return 'submodule';
    default: return 'file';
  }
}

export const isDir = (e: { mode: Mode } | null | undefined): boolean => e != null && e.mode === '40000';

/** Reads trees by oid. Implementations cache; core never mutates what it gets. */
export interface TreeSource {
  readTree(oid: string): readonly TreeEntry[];
}

/** Also makes trees: returns the oid of a tree holding `entries` (which must be sorted, names unique). */
export interface TreeSink extends TreeSource {
  writeTree(entries: readonly TreeEntry[]): string;
}

export function byName(a: TreeEntry, b: TreeEntry): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export function sameEntry(a: TreeEntry | null | undefined, b: TreeEntry | null | undefined): boolean {
  if (!a || !b) return a === b || (!a && !b);
  return a.mode === b.mode && a.oid === b.oid;
}

/** Visit two sorted entry lists as a merge: `fn(name, a, b)` with the entry from each side or null. */
export function mergeEntries(
  a: readonly TreeEntry[],
  b: readonly TreeEntry[],
  fn: (name: string, a: TreeEntry | null, b: TreeEntry | null) => void,
): void {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = i < a.length ? a[i] : null;
    const y = j < b.length ? b[j] : null;
    if (x && (!y || x.name < y.name)) { fn(x.name, x, null); i++; }
    else if (y && (!x || y.name < x.name)) { fn(y.name, null, y); j++; }
    else { fn(x!.name, x, y); i++; j++; }
  }
}

/** Look up one path (byte string, '/'-separated) from a root tree; null when absent. */
export function lookup(src: TreeSource, root: string | null, path: string): TreeEntry | null {
  if (root === null) return null;
  if (path === '') return { name: '', mode: '40000', oid: root };
  let dir = root;
  const parts = path.split('/');
  for (let k = 0; k < parts.length; k++) {
    const e = src.readTree(dir).find((x) => x.name === parts[k]);
    if (!e) return null;
    if (k === parts.length - 1) return e;
    if (e.mode !== '40000') return null;
    dir = e.oid;
  }
  return null;
}

/** Every entry below `root` (depth first, byte order), with its path. Directories come before their children. */
export function* walkTree(src: TreeSource, root: string, prefix = ''): Generator<{ path: string; entry: TreeEntry }> {
  const stack: Array<{ entries: readonly TreeEntry[]; i: number; prefix: string }> = [{ entries: src.readTree(root), i: 0, prefix }];
  while (stack.length) {
    const top = stack[stack.length - 1];
    if (top.i >= top.entries.length) { stack.pop(); continue; }
    const entry = top.entries[top.i++];
    const path = top.prefix === '' ? entry.name : top.prefix + '/' + entry.name;
    yield { path, entry };
    if (entry.mode === '40000') stack.push({ entries: src.readTree(entry.oid), i: 0, prefix: path });
  }
}
