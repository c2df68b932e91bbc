/**
 * `export`: a stack (or the stack up to LAYER) as an image: one image layer per glayer layer, or with `squash`
 * one layer of the union. Whiteouts and opaque markers are written as the `.wh.` entries they are; the metadata
 * manifest (docs/metadata.md) becomes tar headers (modes, owners, mtimes, xattrs, devices, fifos, hardlinks),
 * never a file. The config is the one kept with the stack (image-config.ts) with diff_ids and one history entry
 * per layer. Reproducible: the same layers give the same digests (see image/write.ts).
 */
import { META_NAME, parseManifest, MetaParseError, type Manifest, type MetaRecord } from '../core/meta.js';
import { EMPTY_TREE, type TreeEntry } from '../core/tree.js';
import { applyLayer } from '../core/union.js';
import { classifyName, whiteoutName, OPAQUE_MARKER } from '../core/whiteout.js';
import { InvalidLayerError, UsageError } from '../errors.js';
import type { ImageConfig } from '../image/layout.js';
import { lookup } from '../image/read.js';
import { parseImageRef, dockerRepoTag } from '../image/transport.js';
import { checkDest, ensureDir, removeDir, removeFile, tarDirectory, tempDirBeside, writeDockerDir, writeLayerBlob, writeOciLayout, type LayerContent, type WrittenBlob } from '../image/write.js';
import type { Commit, Store } from '../store/store.js';
import { withWorkspace } from '../workspace/workspace.js';
import { defaultConfig, readImageConfig } from './image-config.js';
import { resolveLayer, stackName } from './resolve.js';
import { readRef } from '../store/refs.js';
import type { WorkspaceOptions } from './types.js';

export interface ExportOptions extends WorkspaceOptions {
  /** oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME:TAG]. */
  dest: string;
  /** The top layer to export (a layer name, see resolve.ts); default the stack's top. */
  layer?: string;
  /** One image layer holding the union, instead of one per glayer layer. */
  squash?: boolean;
}

export interface ExportResult {
  dest: string;
  /** OCI manifest digest (oci, oci-archive), or null (docker-archive). */
  manifest: string | null;
  config: string;
  layers: Array<{ digest: string; diffId: string; size: number }>;
}

/** A layer's tree without its manifest, and the manifest (empty when it has none). */
interface Split { bare: string; manifest: Manifest }

function splitLayer(store: Store, c: Commit, w: { writeTree(e: readonly TreeEntry[]): string }): Split {
  const entries = store.objects.readTree(c.tree);
  const meta = entries.find((e) => e.name === META_NAME);
  if (!meta) return { bare: c.tree, manifest: new Map() };
  if (meta.mode !== '100644') throw new InvalidLayerError(c.oid.slice(0, 12), META_NAME, 'the metadata manifest must be a regular file');
  let manifest: Manifest;
  try { manifest = parseManifest(store.objects.readType(meta.oid, 'blob')); } catch (e) {
    if (e instanceof MetaParseError) throw new InvalidLayerError(c.oid.slice(0, 12), META_NAME, e.message);
    throw e;
  }
  return { bare: w.writeTree(entries.filter((e) => e.name !== META_NAME)), manifest };
}

/**
 * The record of `path` at layer `k` (bottom-first index): the nearest layer at or below k with a record for it,
 * through layers where it is a directory merged over the one below; a layer that holds it as anything else, or
 * whites it out, ends the search with the defaults (docs/metadata.md, "Through the union", rules 1-4).
 * This is the one place export merges manifests; meta10's union of manifests can replace it.
 */
export function recordAt(store: Store, layers: readonly Split[], k: number, path: string): MetaRecord | undefined {
  const key = path === '' ? '.' : path;
  const slash = path.lastIndexOf('/');
  const parent = slash < 0 ? '' : path.slice(0, slash);
  const name = path.slice(slash + 1);
  for (let j = k; j >= 0; j--) {
    const rec = layers[j].manifest.get(key);
    if (rec) return rec;
    if (path === '') continue;
    const e = lookup(store.objects, layers[j].bare, path);
    if (e && e.mode !== '40000') return undefined;
    if (!e) {
      // Whited out here (the path or its directory made opaque): nothing below counts.
      const dir = parent === '' ? store.objects.readTree(layers[j].bare) : (() => { const d = lookup(store.objects, layers[j].bare, parent); return d && d.mode === '40000' ? store.objects.readTree(d.oid) : []; })();
      if (dir.some((x) => x.name === whiteoutName(name) || x.name === OPAQUE_MARKER)) return undefined;
    }
  }
  return undefined;
}

/**
 * The union of the stack whose top is `top`, as a tree without manifests, and each path's record in it. What
 * `export --squash` writes; tests use it to compare glayer's layers and manifests with other tools' unpacking.
 */
export function stackUnion(store: Store, top: string): { tree: string; record(path: string): MetaRecord | undefined } {
  const chain = store.layers(top).reverse();
  const splits = chain.map((c) => splitLayer(store, c, store.objects));
  let u: string | null = null;
  for (let k = 0; k < chain.length; k++) u = applyLayer(store.objects, u, splits[k].bare, { layer: chain[k].oid.slice(0, 12), clean: store.clean });
  return { tree: u ?? EMPTY_TREE, record: (path) => recordAt(store, splits, chain.length - 1, path) };
}

function countEntries(store: Store, tree: string): number {
  let n = 0;
  const todo = [tree];
  while (todo.length) for (const e of store.objects.readTree(todo.pop()!)) { n++; if (e.mode === '40000') todo.push(e.oid); }
  return n;
}

export async function exportImage(opts: ExportOptions): Promise<ExportResult> {
  const dest = parseImageRef(opts.dest);
  if (dest.transport === 'tar') throw new UsageError('export writes oci:, oci-archive: or docker-archive: (tar: is for import)');
  return withWorkspace(opts.cwd ?? process.cwd(), async (ws) => {
    const store = ws.store;
    let top: Commit;
    let stack = stackName(store.stackRef);
    if (opts.layer !== undefined) {
      top = resolveLayer(store, opts.layer).commit;
      if (readRef(store.gitdir, `refs/heads/${opts.layer}`) !== null) stack = opts.layer;
    } else {
      const head = store.head();
      if (!head) throw new UsageError(`stack '${stack}' has no layers to export`);
      top = store.readCommit(head);
    }
    const chain = store.layers(top.oid).reverse();
    const splits = chain.map((c) => splitLayer(store, c, store.objects));
    const date = (c: Commit): string => String(Math.max(0, c.committer.timestamp));
    // The union below each layer (trees without manifests), for metadata-only records.
    const unions: Array<string | null> = [];
    let u: string | null = null;
    for (let k = 0; k < chain.length; k++) {
      unions.push(u);
      u = applyLayer(store.objects, u, splits[k].bare, { layer: chain[k].oid.slice(0, 12), clean: store.clean });
    }
    const contents: LayerContent[] = [];
    if (opts.squash) {
      const k = chain.length - 1;
      contents.push({
        tree: u ?? EMPTY_TREE,
        record: (path) => recordAt(store, splits, k, path),
        metaOnly: [],
        defaultMtime: date(chain[k]),
        rootRecord: recordAt(store, splits, k, ''),
      });
    } else {
      for (let k = 0; k < chain.length; k++) {
        const s = splits[k];
        const metaOnly: Array<{ path: string; entry: TreeEntry }> = [];
        for (const p of s.manifest.keys()) {
          if (p === '.' || lookup(store.objects, s.bare, p)) continue;
          const e = lookup(store.objects, unions[k], p);
          if (e) metaOnly.push({ path: p, entry: e });
        }
        contents.push({
          tree: s.bare,
          record: (path, e) => (e && classifyName(e.name).kind !== 'none' ? undefined : e && e.mode !== '40000' ? s.manifest.get(path) : recordAt(store, splits, k, path)),
          metaOnly,
          defaultMtime: date(chain[k]),
          rootRecord: s.manifest.get('.'),
        });
      }
    }
    const gzip = dest.transport !== 'docker-archive';
    const work = dest.transport === 'oci' ? dest.path : tempDirBeside(dest.path);
    if (dest.transport === 'oci') checkDest(dest.path, 'dir'); else checkDest(dest.path, 'file');
    const blobs: WrittenBlob[] = [];
    try {
      ensureDir(work);
      let files = 0;
      const total = opts.onProgress ? contents.reduce((n, c) => n + countEntries(store, c.tree) + c.metaOnly.length, 0) : 0;
      for (const c of contents) {
        blobs.push(await writeLayerBlob(work, store.objects, c, gzip, () => { if (++files < total) opts.onProgress?.({ phase: 'export: entries written', done: files, total }); }));
      }
      opts.onProgress?.({ phase: 'export: entries written', done: total, total });
      const stored = readImageConfig(store, stack) ?? defaultConfig();
      const iso = (c: Commit): string => new Date(Math.max(0, c.committer.timestamp) * 1000).toISOString().replace('.000Z', 'Z');
      const subject = (c: Commit): string => c.message.split('\n')[0];
      const history = opts.squash
        ? [{ created: iso(chain[chain.length - 1]), created_by: `glayer export --squash of ${chain.length} layer${chain.length === 1 ? '' : 's'}: ${subject(chain[chain.length - 1])}` }]
        : chain.map((c) => ({ created: iso(c), created_by: subject(c) }));
      const config: ImageConfig = { ...stored, created: iso(chain[chain.length - 1]), architecture: stored.architecture ?? 'amd64', os: stored.os ?? 'linux', config: stored.config ?? {}, rootfs: { type: 'layers', diff_ids: blobs.map((b) => b.diffId) }, history };
      let manifest: string | null = null;
      let configDigest: string;
      if (dest.transport === 'docker-archive') {
        ({ config: configDigest } = writeDockerDir(work, { config, layers: blobs }, dest.tag ? dockerRepoTag(dest.tag) : null));
        await tarDirectory(work, dest.path);
      } else {
        const layoutDir = dest.transport === 'oci' ? dest.path : work;
        ({ manifest, config: configDigest } = writeOciLayout(layoutDir, { config, layers: blobs }, dest.tag));
        if (dest.transport === 'oci-archive') await tarDirectory(work, dest.path);
      }
      return { dest: opts.dest, manifest, config: configDigest, layers: blobs.map((b) => ({ digest: b.digest, diffId: b.diffId, size: b.size })) };
    } finally {
      for (const b of blobs) removeFile(b.file);
      if (dest.transport !== 'oci') removeDir(work);
    }
  }, { lock: false });
}
