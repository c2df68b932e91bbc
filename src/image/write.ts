/**
 * glayer layers -> image layer blobs and image layouts (OCI directory, OCI archive, docker-archive).
 *
 * Reproducible by construction: entries in tree order (byte order of names, a directory before its
 * contents), headers with no user or group names, mtimes from the metadata or else the layer's commit date,
 * no wall-clock time anywhere, gzip from zlib on worker threads in fixed blocks (pgzip.ts: the same bytes
 * whatever the number of threads) with a fixed header (mtime 0), archives with mtime 0 and
 * entries in a fixed order. The same stack exported twice gives the same bytes, so the same digests.
 *
 * Every file is written under a temporary name and renamed into place once complete; an archive appears
 * whole or not at all.
 */
import { createHash, type Hash } from 'node:crypto';
import * as fs from '../sys/fs.js';
import { basename, dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { MetaRecord } from '../core/meta.js';
import { join as pjoin } from '../core/path.js';
import type { TreeEntry, TreeSource } from '../core/tree.js';
import { classifyName } from '../core/whiteout.js';
import { ImageError, UsageError } from '../errors.js';
import { MEDIA, type ImageConfig } from './layout.js';
import { ParallelGzip } from './pgzip.js';
import { TarWriter, type TarEntryOut, type TarType } from './tario.js';

/** What write.ts needs of the object store. */
export interface BlobSource extends TreeSource {
  sizeOf(oid: string): number;
  readType(oid: string, type: 'blob'): Buffer;
  blobChunks(oid: string): AsyncIterable<Buffer>;
}

export interface LayerContent {
  /** The layer's tree (markers included, no manifest). */
  tree: string;
  /** The record of the entry at `path` ('.' for the root), with the union's rules applied; undefined: defaults. */
  record(path: string, entry: TreeEntry | null): MetaRecord | undefined;
  /** Entries the layer changes only the metadata of (records for paths its tree does not hold), from below. */
  metaOnly: Array<{ path: string; entry: TreeEntry }>;
  /** mtime for entries without one: the layer's date. */
  defaultMtime: string;
  /** Whether the root has a record of its own (then `./` is written). */
  rootRecord: MetaRecord | undefined;
}

const DEV_TYPE: Record<string, TarType> = { char: 'character-device', block: 'block-device', fifo: 'fifo' };

/** Write one layer's entries to `tw`. */
export async function writeLayerEntries(tw: TarWriter, objects: BlobSource, layer: LayerContent, onFile?: () => void): Promise<void> {
  const emitted = new Set<string>();
  const base = (rec: MetaRecord | undefined, mode: number): Pick<TarEntryOut, 'mode' | 'uid' | 'gid' | 'mtime' | 'xattrs'> => ({
    mode: rec?.mode ?? mode, uid: rec?.uid ?? 0, gid: rec?.gid ?? 0, mtime: rec?.mtime ?? layer.defaultMtime, xattrs: rec?.xattrs,
  });
  const emit = async (path: string, e: TreeEntry): Promise<void> => {
    onFile?.();
    const marker = classifyName(e.name);
    if (marker.kind === 'opaque' || marker.kind === 'whiteout') {
      await tw.add({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: layer.defaultMtime, size: 0 });
      return;
    }
    const rec = layer.record(path, e);
    if (e.mode === '40000') {
      await tw.add({ path, type: 'directory', ...base(rec, 0o755) });
    } else if (e.mode === '120000') {
      const target = objects.readType(e.oid, 'blob').toString('latin1');
      await tw.add({ path, type: 'symlink', ...base(rec, 0o777), mode: 0o777, linkname: target });
    } else if (rec?.type) {
      await tw.add({ path, type: DEV_TYPE[rec.type], ...base(rec, 0o644), devmajor: rec.dev?.[0] ?? 0, devminor: rec.dev?.[1] ?? 0 });
    } else if (rec?.link !== undefined && emitted.has(rec.link)) {
      await tw.add({ path, type: 'link', ...base(rec, e.mode === '100755' ? 0o755 : 0o644), linkname: rec.link });
    } else {
      const size = objects.sizeOf(e.oid);
      await tw.add({ path, type: 'file', ...base(rec, e.mode === '100755' ? 0o755 : 0o644), size }, size ? objects.blobChunks(e.oid) : undefined);
    }
    emitted.add(path);
  };
  if (layer.rootRecord) await tw.add({ path: '.', type: 'directory', ...base(layer.rootRecord, 0o755) });
  // Depth first, names in byte order, a directory before its contents; iterative (trees can be very deep).
  const stack: Array<{ path: string; entries: readonly TreeEntry[]; i: number }> = [{ path: '', entries: objects.readTree(layer.tree), i: 0 }];
  while (stack.length) {
    const f = stack[stack.length - 1];
    if (f.i >= f.entries.length) { stack.pop(); continue; }
    const e = f.entries[f.i++];
    const path = pjoin(f.path, e.name);
    await emit(path, e);
    if (e.mode === '40000') stack.push({ path, entries: objects.readTree(e.oid), i: 0 });
  }
  for (const m of layer.metaOnly) await emit(m.path, m.entry);
}

class HashTap extends Transform {
  readonly hash: Hash = createHash('sha256');
  size = 0;
  _transform(chunk: Buffer, _e: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }
}

export interface WrittenBlob { digest: string; diffId: string; size: number; file: string }

/**
 * Write one layer blob to a temporary file in `dir`: gzip (level GZIP_LEVEL, on worker threads) or plain. Returns its digests; the
 * caller renames it into place.
 */
export async function writeLayerBlob(dir: string, objects: BlobSource, layer: LayerContent, gzip: boolean, onFile?: () => void): Promise<WrittenBlob> {
  const tmp = join(dir, `.tmp-layer-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const tw = new TarWriter();
  const diff = new HashTap();
  const dig = new HashTap();
  const stages: NodeJS.ReadWriteStream[] = gzip ? [diff, new ParallelGzip({ level: GZIP_LEVEL }), dig] : [diff, dig];
  const done = pipeline([tw.readable, ...stages, fs.createWriteStream(tmp)] as NodeJS.ReadWriteStream[]);
  try {
    await writeLayerEntries(tw, objects, layer, onFile);
    tw.finalize();
    await done;
  } catch (e) {
    done.catch(() => undefined);
    tw.readable.destroy();
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  return { digest: 'sha256:' + dig.hash.digest('hex'), diffId: 'sha256:' + diff.hash.digest('hex'), size: dig.size, file: tmp };
}

/** zlib's level for layer blobs: 1 is four times faster than 6 here and about 10% larger (fixed for reproducibility). */
export const GZIP_LEVEL = 1;

// ---- layouts ------------------------------------------------------------------------------------------------

export interface BuiltImage {
  config: ImageConfig;
  layers: WrittenBlob[];
}

function writeFileAtomic(path: string, data: Buffer | string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, path);
}

function putBlob(dir: string, digest: string, from: string | Buffer): { digest: string; size: number } {
  const blobs = join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const final = join(blobs, digest.slice(7));
  if (typeof from === 'string') {
    if (fs.existsSync(final)) fs.rmSync(from, { force: true }); else fs.renameSync(from, final);
    return { digest, size: fs.statSync(final).size };
  }
  if (!fs.existsSync(final)) writeFileAtomic(final, from);
  return { digest, size: from.length };
}

const sha = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v), 'utf8');

/** Write an OCI layout into `dir` (created, or added to: the index entry of the same tag is replaced). */
export function writeOciLayout(dir: string, img: BuiltImage, tag: string | null): { manifest: string; config: string } {
  fs.mkdirSync(dir, { recursive: true });
  const layoutFile = join(dir, 'oci-layout');
  if (!fs.existsSync(layoutFile)) writeFileAtomic(layoutFile, json({ imageLayoutVersion: '1.0.0' }));
  const cfg = json(img.config);
  const config = putBlob(dir, sha(cfg), cfg);
  const layers = img.layers.map((l) => ({ mediaType: MEDIA.ociLayerGzip, ...putBlob(dir, l.digest, l.file) }));
  const manifest = json({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { mediaType: MEDIA.ociConfig, digest: config.digest, size: config.size }, layers });
  const m = putBlob(dir, sha(manifest), manifest);
  const indexFile = join(dir, 'index.json');
  let index: { schemaVersion: number; mediaType?: string; manifests: Array<Record<string, unknown>> } = { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [] };
  if (fs.existsSync(indexFile)) {
    try { index = JSON.parse(fs.readFileSync(indexFile, 'utf8')); } catch { throw new ImageError(indexFile, 'the existing index.json is not valid JSON'); }
    if (!Array.isArray(index.manifests)) throw new ImageError(indexFile, "the existing index.json has no 'manifests' list");
  }
  const REF = 'org.opencontainers.image.ref.name';
  index.manifests = index.manifests.filter((d) => tag === null ? d.digest !== m.digest : (d.annotations as Record<string, string> | undefined)?.[REF] !== tag);
  index.manifests.push({ mediaType: MEDIA.ociManifest, digest: m.digest, size: m.size, ...(tag !== null ? { annotations: { [REF]: tag } } : {}), platform: { architecture: img.config.architecture ?? 'amd64', os: img.config.os ?? 'linux' } });
  writeFileAtomic(indexFile, json(index));
  return { manifest: m.digest, config: config.digest };
}

/** Write a docker-archive directory (then tarred): `<hex>.json` config, `<hex>.tar` layers, manifest.json. */
export function writeDockerDir(dir: string, img: BuiltImage, tag: string | null): { config: string } {
  fs.mkdirSync(dir, { recursive: true });
  const cfg = json(img.config);
  const cfgDigest = sha(cfg);
  writeFileAtomic(join(dir, `${cfgDigest.slice(7)}.json`), cfg);
  const names: string[] = [];
  for (const l of img.layers) {
    const name = `${l.diffId.slice(7)}.tar`;
    if (fs.existsSync(join(dir, name))) fs.rmSync(l.file, { force: true }); else fs.renameSync(l.file, join(dir, name));
    names.push(name);
  }
  writeFileAtomic(join(dir, 'manifest.json'), json([{ Config: `${cfgDigest.slice(7)}.json`, RepoTags: tag ? [tag] : [], Layers: names }]));
  return { config: cfgDigest };
}

/** Tar the directory `dir` into `file` (atomically): sorted entries, mtime 0, modes 644/755, owner 0. */
export async function tarDirectory(dir: string, file: string): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.tmp-${process.pid}`);
  const tw = new TarWriter();
  const done = pipeline(tw.readable, fs.createWriteStream(tmp));
  try {
    const walk = async (rel: string): Promise<void> => {
      const names = fs.readdirSync(join(dir, rel)).sort();
      for (const n of names) {
        const r = rel ? `${rel}/${n}` : n;
        const st = fs.statSync(join(dir, r));
        if (st.isDirectory()) {
          await tw.add({ path: r, type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: '0' });
          await walk(r);
        } else {
          await tw.add({ path: r, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: '0', size: st.size }, st.size ? fs.createReadStream(join(dir, r)) as AsyncIterable<Buffer> : undefined);
        }
      }
    };
    await walk('');
    tw.finalize();
    await done;
    fs.renameSync(tmp, file);
  } catch (e) {
    done.catch(() => undefined);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** Refuse a destination we would have to overwrite something odd at. */
export function checkDest(path: string, kind: 'dir' | 'file'): void {
  let st: fs.Stats | undefined;
  try { st = fs.lstatSync(path); } catch { return; }
  if (kind === 'dir' && !st.isDirectory()) throw new UsageError(`${path} exists and is not a directory`);
  if (kind === 'file' && !st.isFile()) throw new UsageError(`${path} exists and is not a file`);
  if (kind === 'dir' && fs.readdirSync(path).length && !fs.existsSync(join(path, 'oci-layout'))) throw new UsageError(`${path} is a non-empty directory that is not an OCI layout`);
}

/** A private temporary directory beside `path`. */
export function tempDirBeside(path: string): string {
  const parent = dirname(path);
  fs.mkdirSync(parent, { recursive: true });
  return fs.mkdtempSync(join(parent, `.glayer-export-`));
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

export function ensureDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
}

export function removeFile(file: string): void {
  fs.rmSync(file, { force: true });
}
