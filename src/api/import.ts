/**
 * `import`: an OCI or Docker image (or a root filesystem tarball) becomes a new stack, one layer per image
 * layer, bottom first, each with its history entry as message and `created` as date. The image config is kept
 * with the stack (image-config.ts) so that `export` reproduces it.
 *
 * Nothing is visible until everything checked out: every blob's digest and diff_id, every tar entry (read.ts).
 * Objects go to one writer that is flushed only at the end, then the stack ref and the config ref are created;
 * a refused image discards the writer (and the large objects it streamed), so the store is as it was.
 */
import { ImageError, UsageError } from '../errors.js';
import { applyLayer } from '../core/union.js';
import { openSource, type HistoryEntry, type ImageConfig, type SourceImage } from '../image/layout.js';
import { buildLayer, parseLayer, type ParsedLayer } from '../image/read.js';
import { parseImageRef, stackNameFor, type ImageRef } from '../image/transport.js';
import { formatCommit } from '../store/commits.js';
import { checkRefName, readRef, updateRef } from '../store/refs.js';
import type { Store } from '../store/store.js';
import { withWorkspace } from '../workspace/workspace.js';
import { saveImageConfig } from './image-config.js';
import type { Progress, WorkspaceOptions } from './types.js';

export interface ImportOptions extends WorkspaceOptions {
  /** The image: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG] or tar:FILE. */
  source: string;
  /** The new stack's name (default: from the image's tag). */
  stack?: string;
  /** os/arch[/variant] to pick from an index (default linux/amd64, else the only image). */
  platform?: string;
}

export interface ImportedLayer { id: string; digest: string; diffId: string; message: string; entries: number }
export interface ImportResult { stack: string; ref: string; head: string; layers: ImportedLayer[]; config: ImageConfig }

export async function importImage(opts: ImportOptions): Promise<ImportResult> {
  const ref = parseImageRef(opts.source);
  return withWorkspace(opts.cwd ?? process.cwd(), (ws) => importInto(ws.store, ref, opts));
}

/** Subject line and body of each layer's message, from the history (empty-layer entries kept in the body). */
export function layerMessages(image: SourceImage, source: string): string[] {
  const n = image.layers.length;
  const history = Array.isArray(image.config.history) ? image.config.history : [];
  const real = history.filter((h) => !h.empty_layer);
  const fallback = (i: number): string => `layer ${i + 1} of ${n} of ${source}`;
  if (real.length !== n) return image.layers.map((_, i) => fallback(i));
  const out: string[] = [];
  let empties: HistoryEntry[] = [];
  let k = 0;
  const line = (h: HistoryEntry): string => (h.created_by ?? h.comment ?? '').replace(/\s+/g, ' ').trim();
  const body = (h: HistoryEntry, es: HistoryEntry[]): string => {
    const subject = line(h) || fallback(k);
    const extra: string[] = [];
    if (h.comment && h.created_by) extra.push(h.comment.trim());
    for (const e of es) extra.push(`empty layer: ${line(e) || '(no description)'}`);
    return extra.length ? `${subject}\n\n${extra.join('\n')}\n` : `${subject}\n`;
  };
  for (const h of history) {
    if (h.empty_layer) { empties.push(h); continue; }
    out.push(body(h, empties));
    empties = [];
    k++;
  }
  if (empties.length && out.length) {
    const last = out.length - 1;
    const add = empties.map((e) => `empty layer: ${line(e) || '(no description)'}`).join('\n');
    out[last] = out[last].includes('\n\n') ? `${out[last]}${add}\n` : `${out[last]}\n${add}\n`;
  }
  return out;
}

function dates(image: SourceImage): number[] {
  const history = (Array.isArray(image.config.history) ? image.config.history : []).filter((h) => !h.empty_layer);
  const fallback = toSeconds(image.config.created) ?? 0;
  return image.layers.map((_, i) => (history.length === image.layers.length ? toSeconds(history[i].created) : null) ?? fallback);
}

function toSeconds(s: unknown): number | null {
  if (typeof s !== 'string') return null;
  const t = Date.parse(s);
  return Number.isFinite(t) && t >= 0 ? Math.floor(t / 1000) : null;
}

export interface ImportIntoOptions { stack?: string; platform?: string; onProgress?: Progress; source?: string }

/** Import the image `ref` names into `store` as a new stack. */
export async function importInto(store: Store, ref: ImageRef, opts: ImportIntoOptions): Promise<ImportResult> {
  const src = await openSource(ref, opts.platform);
  const image = src.image;
  const label = opts.source ?? `${ref.transport}:${ref.path}${ref.tag ? ':' + ref.tag : ''}`;
  const name = opts.stack ?? stackNameFor({ ...ref, tag: ref.transport === 'tar' ? null : image.tag ?? ref.tag } as ImageRef);
  if (!name) throw new UsageError('the image has no tag to name the stack after; name it with --stack NAME');
  const stackRef = `refs/heads/${name}`;
  try { checkRefName(stackRef); } catch { throw new UsageError(`invalid stack name: ${name}`); }
  if (readRef(store.gitdir, stackRef) !== null) throw new UsageError(`stack '${name}' already exists; import into a new one with --stack NAME`);
  if (image.layers.length === 0) throw new ImageError('manifest', 'the image has no layers');

  const objects = store.objects;
  // Blobs are deflated on a second thread while this one reads, hashes and parses.
  const w = objects.writer().parallel();
  try {
    const parsed = new Map<string, ParsedLayer>();
    // Progress: bytes of the source read (an archive's first pass, over its small entries, is not counted).
    let bytes = 0;
    const total = Math.max(1, src.totalBytes);
    await src.eachLayer(async (i, data) => {
      const l = image.layers[i];
      const p = await parseLayer(data, l, w, (n) => { bytes += n; if (bytes < total) opts.onProgress?.({ phase: 'import: bytes read', done: bytes, total }); });
      parsed.set(l.name, p);
    });
    opts.onProgress?.({ phase: 'import: bytes read', done: total, total });
    const messages = layerMessages(image, label);
    const when = dates(image);
    const me = store.signature('COMMITTER');
    let lower: string | null = null;
    let parent: string | null = null;
    const layers: ImportedLayer[] = [];
    for (let i = 0; i < image.layers.length; i++) {
      const l = image.layers[i];
      const p = parsed.get(l.name);
      if (!p) throw new ImageError(l.label, 'blob missing from the source');
      const { tree, bare } = buildLayer(p, l.label, objects, w, lower);
      lower = applyLayer(objects, lower, bare, { layer: l.label, clean: store.clean });
      objects.persistTrees(w, tree);
      const sig = { name: me.name, email: me.email, timestamp: when[i], tz: '+0000' };
      const id = w.add('commit', formatCommit({ tree, parents: parent ? [parent] : [], author: sig, committer: sig, message: messages[i] }));
      layers.push({ id, digest: p.digest, diffId: p.diffId, message: messages[i].split('\n')[0], entries: p.entries });
      parent = id;
    }
    const kept: ImageConfig = { ...image.config };
    delete kept.rootfs;
    delete kept.history;
    const moveConfig = saveImageConfig(store, w, name, kept, `image config of ${label}`);
    await w.settle();
    w.flush();
    // The config first: a kill between the two leaves a config without its stack (harmless), never the reverse.
    moveConfig();
    updateRef(store.gitdir, stackRef, parent!, null);
    return { stack: name, ref: stackRef, head: parent!, layers, config: kept };
  } catch (e) {
    w.discard();
    throw e;
  }
}
