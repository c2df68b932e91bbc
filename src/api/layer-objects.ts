/** Write a layer tree's blobs (read from the directory that holds them) and trees into a batch. */
import * as fs from '../sys/fs.js';
import { walkTree, EMPTY_BLOB } from '../core/tree.js';
import { ObjectError, display } from '../errors.js';
import { fsPath } from '../fs/paths.js';
import type { ObjectWriter } from '../store/objects.js';
import type { Store } from '../store/store.js';

export async function addLayerObjects(store: Store, w: ObjectWriter, tree: string, dir: string): Promise<void> {
  for (const { path, entry } of walkTree(store.objects, tree)) {
    if (entry.mode === '40000') continue;
    if (entry.oid === EMPTY_BLOB) { w.add('blob', Buffer.alloc(0)); continue; }
    const abs = fsPath(dir, path);
    const oid = entry.mode === '120000'
      ? w.add('blob', fs.readlinkSync(abs, { encoding: 'buffer' }))
      : await w.addFile(abs, fs.lstatSync(abs).size, entry.oid);
    if (oid !== entry.oid) throw new ObjectError(entry.oid, `not what ${display(path)} holds now: it changed during the command; run it again`);
  }
  store.objects.persistTrees(w, tree);
}
