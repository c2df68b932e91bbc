/**
 * Path edits on immutable trees: set or remove entries at given paths, copying only the directories on the
 * way to an edit (path copying) and reusing every other subtree by oid.
 */
import { EMPTY_TREE, type TreeEntry, type TreeSink } from './tree.js';

/** `edits` maps a path to its new entry, or null to remove it. Missing parent directories are created. */
export function editTree(sink: TreeSink, root: string | null, edits: ReadonlyMap<string, TreeEntry | null>): string {
  if (edits.size === 0) return root ?? EMPTY_TREE;
  return editDir(sink, root, [...edits].map(([path, entry]) => ({ parts: path.split('/'), entry })), 0);
}

interface Edit { parts: string[]; entry: TreeEntry | null }

function editDir(sink: TreeSink, dir: string | null, edits: Edit[], depth: number): string {
  const entries = new Map<string, TreeEntry>();
  for (const e of dir ? sink.readTree(dir) : []) entries.set(e.name, e);
  const nested = new Map<string, Edit[]>();
  for (const ed of edits) {
    const name = ed.parts[depth];
    if (ed.parts.length === depth + 1) {
      if (ed.entry) entries.set(name, { ...ed.entry, name });
      else entries.delete(name);
    } else {
      let list = nested.get(name);
      if (!list) nested.set(name, (list = []));
      list.push(ed);
    }
  }
  for (const [name, list] of nested) {
    const cur = entries.get(name);
    const sub = editDir(sink, cur && cur.mode === '40000' ? cur.oid : null, list, depth + 1);
    entries.set(name, { name, mode: '40000', oid: sub });
  }
  const out = [...entries.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return sink.writeTree(out);
}
