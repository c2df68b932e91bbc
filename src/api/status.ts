/** `status`: the writable layer's changes against the stack, as `docker diff` lists them. */
import { diffTrees, statusEntries, type ChangeKind } from '../core/changes.js';
import { changedFields } from '../core/meta.js';
import { kindOf, lookup, type Kind } from '../core/tree.js';
import { display } from '../errors.js';
import { withWorkspace } from '../workspace/workspace.js';
import { planSync, reconcileIfWritable } from './sync.js';
import type { WorkspaceOptions } from './types.js';

export interface StatusItem {
  /** Relative, '/'-separated (UTF-8 where the name decodes). */
  path: string;
  /** `M`: only the metadata changed (owner, mode bits, mtime, xattrs, hardlink: docs/metadata.md). */
  change: ChangeKind | 'M';
  /** Kind after the change (before it, for a deletion). */
  kind: Kind;
  /** The metadata fields that changed (`mode`, `uid`, `gid`, `mtime`, `link`, `xattrs`, `type`), when any did. */
  fields?: string[];
}

export interface StatusResult {
  changes: StatusItem[];
  warnings: string[];
  /** View files no layer can hold (reserved '.wh.' names): commit refuses them. */
  unrepresentable: string[];
}

export interface StatusOptions extends WorkspaceOptions {
  /**
   * Work out the changes without writing anything and without the workspace lock (`glayer serve`): the view's
   * edits not yet recorded in the writable layer are included, but neither side nor any index is updated.
   */
  readOnly?: boolean;
}

export async function status(opts: StatusOptions = {}): Promise<StatusResult> {
  return withWorkspace(opts.cwd ?? process.cwd(), async (ws) => {
    // reconcileIfWritable takes the lock when the workspace can be written; read-only mode never does.
    const s = opts.readOnly ? planSync(ws) : await reconcileIfWritable(ws, opts);
    const objects = ws.store.objects;
    const entries = statusEntries(objects, diffTrees(objects, s.lowerTree, s.viewTree));
    const items: Array<StatusItem & { key: string }> = entries.map((e) => {
      const item: StatusItem & { key: string } = { key: e.path.replaceAll('/', '\0'), path: display(e.path), change: e.change, kind: kindOf((e.new ?? e.old)!.mode) };
      if (e.change === 'C') {
        const fields = changedFields(s.lowerMeta.get(e.path), s.viewMeta.get(e.path));
        if (fields.length) item.fields = fields;
      }
      return item;
    });
    // Metadata-only changes: paths of the view whose record differs from the stack's, with the same content.
    if (s.lowerMeta.size || s.viewMeta.size) {
      const content = new Set(entries.map((e) => e.path));
      const seen = new Set<string>();
      for (const p of [...s.viewMeta.keys(), ...s.lowerMeta.keys()]) {
        if (seen.has(p) || content.has(p)) continue;
        seen.add(p);
        const fields = changedFields(s.lowerMeta.get(p), s.viewMeta.get(p));
        if (!fields.length) continue;
        const e = p === '.' ? { mode: '40000' as const } : lookup(objects, s.viewTree, p);
        if (!e) continue;
        items.push({ key: p === '.' ? '' : p.replaceAll('/', '\0'), path: p === '.' ? '.' : display(p), change: 'M', kind: kindOf(e.mode), fields });
      }
      items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    }
    return {
      changes: items.map(({ key: _, ...rest }) => rest),
      warnings: s.warnings,
      unrepresentable: s.unrepresentable.map(display),
    };
  }, { lock: false });
}
