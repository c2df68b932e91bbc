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
 */
import * as fs from '../sys/fs.js';
import { join } from 'node:path';
import { diffTrees } from '../core/changes.js';
import { lowerForm } from '../core/lower.js';
import { join as joinRel } from '../core/path.js';
import { EMPTY_BLOB } from '../core/tree.js';
import { lookup } from '../core/tree.js';
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
}

class StoreBlobs implements BlobSource {
  constructor(private readonly store: Store) {}
  readSmall(oid: string): Buffer | null { return oid === EMPTY_BLOB ? Buffer.alloc(0) : this.store.objects.readSmallBlob(oid); }
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
  const out: Lowers = { cwd: root, dirs: [], extracted: 0 };
  const layers = store.layers(head);
  let flatBelow = layers.length;
  if (layers.length > DIRECT) flatBelow = layers.length - Math.floor((layers.length - 1) / CHUNK) * CHUNK;
  for (let k = 0; k < layers.length; k++) {
    const layer = layers[k];
    if (k === flatBelow) {
      // layers[k] and everything below it, as one directory.
      const tree = store.unionTree(layer.oid);
      if (tree !== null) out.dirs.push(await ensure(store, root, 'u', tree, tree, false, out));
      break;
    }
    out.dirs.push(await ensure(store, root, form, layer.oid, layer.tree, true, out));
    if (lookup(store.objects, layer.tree, OPAQUE_MARKER) !== null) break;
  }
  if (out.dirs.length === 0) {
    fs.mkdirSync(join(root, 'empty'), { recursive: true });
    out.dirs.push('empty');
  }
  return out;
}

/** The cache entry `kind/key` for `tree`, extracted (as a layer with markers, or a plain union) if missing. */
async function ensure(store: Store, root: string, kind: 'k' | 'f' | 'u', key: string, tree: string, layer: boolean, stats: Lowers): Promise<string> {
  const rel = `${kind}/${key}`;
  if (fs.existsSync(join(root, rel))) return rel;
  fs.mkdirSync(join(root, kind), { recursive: true });
  const tmp = join(root, 'tmp', `${process.pid}-${kind}-${key}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  try {
    const objects = store.objects;
    const form = layer ? lowerForm(objects, tree) : null;
    const plain = form ? form.plain : tree;
    await new Materializer(tmp, objects, new StoreBlobs(store), new Index()).apply(diffTrees(objects, null, plain));
    if (form) {
      if (kind === 'k') writeKernelMarks(tmp, form.whiteouts, form.opaque);
      else {
        for (const p of form.whiteouts) {
          const slash = p.lastIndexOf('/');
          fs.writeFileSync(fsPath(tmp, slash < 0 ? whiteoutName(p) : joinRel(p.slice(0, slash), whiteoutName(p.slice(slash + 1)))), '');
        }
        for (const d of form.opaque) fs.writeFileSync(fsPath(tmp, joinRel(d, OPAQUE_MARKER)), '');
      }
    }
    fs.renameSync(tmp, join(root, rel));
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if ((e as NodeJS.ErrnoException).code === 'ENOTEMPTY' || (e as NodeJS.ErrnoException).code === 'EEXIST') return rel; // another process made it
    throw e;
  }
  stats.extracted++;
  return rel;
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
