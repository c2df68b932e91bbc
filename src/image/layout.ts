/**
 * The structure of an image, read from its source: OCI image layouts (a directory or an archive), Docker's
 * `docker save` archives and plain root filesystem tarballs. Finds the manifest (through an index, by tag and
 * platform), reads and checks the config, and hands out each layer blob as a stream, in the order the source
 * holds them. Every small blob (index, manifest, config) is checked against its digest here; layer blobs are
 * checked by read.ts while they stream (digest and diff_id).
 *
 * Archives are read in two passes: the first keeps the small entries (JSON), the second streams the layer
 * blobs, so a layer is never held in memory and the archive is never unpacked to disk.
 */
import { createHash } from 'node:crypto';
import * as fs from '../sys/fs.js';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ImageError, UsageError } from '../errors.js';
import { tarExtract } from './tario.js';
import type { ImageRef } from './transport.js';

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

const LAYER_MEDIA: Record<string, 'gzip' | 'zstd' | 'none'> = {
  'application/vnd.oci.image.layer.v1.tar': 'none',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd': 'zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar': 'none',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd': 'zstd',
  'application/vnd.docker.image.rootfs.diff.tar': 'none',
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip': 'gzip',
  'application/vnd.docker.image.rootfs.diff.tar.zstd': 'zstd',
};

export interface HistoryEntry { created?: string; created_by?: string; author?: string; comment?: string; empty_layer?: boolean }

/** An image config (OCI image-spec config.md): the fields glayer keeps with a stack, and any others. */
export interface ImageConfig {
  created?: string;
  author?: string;
  architecture?: string;
  os?: string;
  variant?: string;
  config?: Record<string, unknown>;
  rootfs?: { type: string; diff_ids: string[] };
  history?: HistoryEntry[];
  [key: string]: unknown;
}

export interface LayerRef {
  /** Digest of the blob as stored (sha256:...), or null when the source does not give one (docker-archive, tar:). */
  digest: string | null;
  /** Expected diff_id (sha256 of the uncompressed tar), or null (tar:). */
  diffId: string | null;
  mediaType: string;
  /** Where the blob is in the source: a path under the layout directory, or an archive entry's name. */
  name: string;
  /** How to name the layer in messages. */
  label: string;
}

export interface SourceImage {
  config: ImageConfig;
  layers: LayerRef[];
  /** The tag the image was found under (ref.name annotation, RepoTags entry), if any. */
  tag: string | null;
}

export interface ImageSource {
  image: SourceImage;
  /** Bytes eachLayer will read (for progress). */
  totalBytes: number;
  /**
   * Call `fn` once for each distinct layer blob (index into image.layers of its first use) with its bytes as a
   * stream, in the order the source holds them, awaiting each call.
   */
  eachLayer(fn: (index: number, data: AsyncIterable<Buffer>) => Promise<void>): Promise<void>;
}

const SMALL = 4 * 1024 * 1024;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

function sha256(b: Buffer): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

function parseJson<T>(b: Buffer, where: string): T {
  try {
    const v = JSON.parse(b.toString('utf8')) as T;
    if (v === null || typeof v !== 'object') throw new Error('not an object');
    return v;
  } catch (e) {
    throw new ImageError(where, `not valid JSON (${(e as Error).message})`);
  }
}

interface Descriptor { mediaType?: string; digest: string; size?: number; annotations?: Record<string, string>; platform?: { os?: string; architecture?: string; variant?: string } }

function checkDescriptor(d: Descriptor, where: string): void {
  if (!d || typeof d.digest !== 'string') throw new ImageError(where, 'a descriptor has no digest');
  if (!DIGEST.test(d.digest)) throw new ImageError(where, `unsupported or malformed digest '${String(d.digest).slice(0, 80)}' (sha256 only)`);
}

/** Parse `--platform` (os/arch[/variant]). */
export function parsePlatform(p: string): { os: string; architecture: string; variant?: string } {
  const parts = p.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((x) => x === '')) throw new UsageError(`invalid platform '${p}' (OS/ARCH[/VARIANT], e.g. linux/amd64)`);
  return { os: parts[0], architecture: parts[1], ...(parts[2] ? { variant: parts[2] } : {}) };
}

/** Small blobs of an OCI layout, by digest, checked. */
type BlobReader = (digest: string, what: string) => Buffer;

/** Resolve an OCI index (index.json or a nested index) to one image manifest, then its config and layers. */
function resolveOci(readBlob: BlobReader, index: { manifests?: Descriptor[] }, tag: string | null, platform: string | undefined): SourceImage {
  if (!Array.isArray(index.manifests)) throw new ImageError('index.json', "no 'manifests' list");
  let candidates = index.manifests;
  if (tag !== null) {
    candidates = candidates.filter((d) => d.annotations?.['org.opencontainers.image.ref.name'] === tag);
    if (candidates.length === 0) {
      const known = index.manifests.map((d) => d.annotations?.['org.opencontainers.image.ref.name']).filter(Boolean);
      throw new UsageError(`no image tagged '${tag}' in the layout${known.length ? ` (tags: ${known.join(', ')})` : ''}`);
    }
  }
  let chosen = pickPlatform(candidates, platform, 'index.json', tag !== null);
  for (let depth = 0; ; depth++) {
    checkDescriptor(chosen, 'index.json');
    const mt = chosen.mediaType;
    if (mt === MEDIA.ociIndex || mt === MEDIA.dockerList) {
      if (depth > 4) throw new ImageError(chosen.digest, 'indexes nested too deep');
      const nested = parseJson<{ manifests?: Descriptor[] }>(readBlob(chosen.digest, 'index'), `index ${chosen.digest}`);
      if (!Array.isArray(nested.manifests)) throw new ImageError(`index ${chosen.digest}`, "no 'manifests' list");
      chosen = pickPlatform(nested.manifests, platform, `index ${chosen.digest}`, false);
      continue;
    }
    if (mt !== undefined && mt !== MEDIA.ociManifest && mt !== MEDIA.dockerManifest) throw new ImageError(`manifest ${chosen.digest}`, `unknown media type '${mt}'`);
    break;
  }
  const where = `manifest ${chosen.digest}`;
  const manifest = parseJson<{ mediaType?: string; config?: Descriptor; layers?: Descriptor[]; manifests?: unknown }>(readBlob(chosen.digest, 'manifest'), where);
  if (manifest.manifests !== undefined) throw new ImageError(where, 'is an index, not an image manifest');
  if (manifest.mediaType !== undefined && manifest.mediaType !== MEDIA.ociManifest && manifest.mediaType !== MEDIA.dockerManifest) throw new ImageError(where, `unknown media type '${manifest.mediaType}'`);
  if (!manifest.config || !Array.isArray(manifest.layers)) throw new ImageError(where, 'no config or no layers');
  checkDescriptor(manifest.config, where);
  const config = parseJson<ImageConfig>(readBlob(manifest.config.digest, 'config'), `config ${manifest.config.digest}`);
  const diffIds = checkConfig(config, `config ${manifest.config.digest}`, manifest.layers.length);
  const layers = manifest.layers.map((d, i): LayerRef => {
    checkDescriptor(d, where);
    const mt = d.mediaType ?? '';
    if (!(mt in LAYER_MEDIA)) throw new ImageError(`layer ${d.digest}`, `unknown media type '${mt}'`);
    return { digest: d.digest, diffId: diffIds[i], mediaType: mt, name: `blobs/sha256/${d.digest.slice(7)}`, label: `layer ${d.digest}` };
  });
  return { config, layers, tag: chosen.annotations?.['org.opencontainers.image.ref.name'] ?? tag };
}

function pickPlatform(list: Descriptor[], platform: string | undefined, where: string, tagged: boolean): Descriptor {
  if (list.length === 0) throw new ImageError(where, 'lists no manifests');
  const withPlatform = list.filter((d) => d.platform);
  if (platform === undefined && list.length === 1) return list[0];
  if (withPlatform.length === 0) {
    if (platform !== undefined && list.length === 1) return list[0];
    throw new UsageError(`${where} lists ${list.length} images; name one by tag (oci:DIR:TAG)${tagged ? '' : ''}`);
  }
  const want = parsePlatform(platform ?? 'linux/amd64');
  const match = withPlatform.filter((d) => d.platform!.os === want.os && d.platform!.architecture === want.architecture && (!want.variant || d.platform!.variant === want.variant));
  if (match.length >= 1) return match[0];
  if (platform === undefined && list.length === 1) return list[0];
  const have = withPlatform.map((d) => `${d.platform!.os}/${d.platform!.architecture}${d.platform!.variant ? '/' + d.platform!.variant : ''}`);
  throw new UsageError(`no image for platform ${platform ?? 'linux/amd64'} (available: ${have.join(', ')}); pass --platform`);
}

/** Check a config's rootfs against the layer count; returns the diff_ids. */
function checkConfig(config: ImageConfig, where: string, layers: number): string[] {
  const ids = config.rootfs?.diff_ids;
  if (!Array.isArray(ids)) throw new ImageError(where, 'no rootfs.diff_ids');
  if (ids.length !== layers) throw new ImageError(where, `rootfs lists ${ids.length} diff_ids for ${layers} layers`);
  for (const id of ids) if (typeof id !== 'string' || !DIGEST.test(id)) throw new ImageError(where, `malformed diff_id '${String(id).slice(0, 80)}'`);
  return ids;
}

// ---- sources ------------------------------------------------------------------------------------------------

/** Open the image `ref` names for reading. */
export async function openSource(ref: ImageRef, platform?: string): Promise<ImageSource> {
  switch (ref.transport) {
    case 'oci': return openOciDir(ref.path, ref.tag, platform);
    case 'oci-archive': return openOciArchive(ref.path, ref.tag, platform);
    case 'docker-archive': return openDockerArchive(ref.path, ref.tag);
    case 'tar': return openTarball(ref.path);
  }
}

function statOrFail(path: string, what: string): fs.Stats {
  try { return fs.statSync(path); } catch (e) {
    throw new UsageError(`cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`);
  }
}

function openOciDir(dir: string, tag: string | null, platform: string | undefined): ImageSource {
  if (!statOrFail(dir, 'OCI layout').isDirectory()) throw new UsageError(`${dir} is not a directory (an OCI layout)`);
  const read = (rel: string, what: string): Buffer => {
    try { return fs.readFileSync(join(dir, rel)); } catch {
      throw new ImageError(what, `missing from the layout (${rel})`);
    }
  };
  const layoutFile = parseJson<{ imageLayoutVersion?: string }>(read('oci-layout', 'oci-layout'), 'oci-layout');
  if (typeof layoutFile.imageLayoutVersion !== 'string') throw new ImageError('oci-layout', 'no imageLayoutVersion');
  const readBlob: BlobReader = (digest, what) => {
    const b = read(`blobs/sha256/${digest.slice(7)}`, `${what} ${digest}`);
    if (sha256(b) !== digest) throw new ImageError(`${what} ${digest}`, `digest mismatch (content is ${sha256(b)})`);
    return b;
  };
  const image = resolveOci(readBlob, parseJson(read('index.json', 'index.json'), 'index.json'), tag, platform);
  let totalBytes = 0;
  for (const name of new Set(image.layers.map((l) => l.name))) {
    const st = fs.statSync(join(dir, name), { throwIfNoEntry: false });
    if (!st) throw new ImageError(image.layers.find((l) => l.name === name)!.label, 'blob missing from the layout');
    totalBytes += st.size;
  }
  return {
    image,
    totalBytes,
    async eachLayer(fn) {
      const done = new Set<string>();
      for (let i = 0; i < image.layers.length; i++) {
        if (done.has(image.layers[i].name)) continue;
        done.add(image.layers[i].name);
        await fn(i, fs.createReadStream(join(dir, image.layers[i].name)));
      }
    },
  };
}

/** Read a tar archive's entries in order; `fn` gets each regular file's normalized name, size and stream. */
async function walkArchive(file: string, fn: (name: string, size: number, data: AsyncIterable<Buffer>) => Promise<void>): Promise<void> {
  const ex = tarExtract();
  const feeding = pipeline(fs.createReadStream(file), ex);
  try {
    for await (const entry of ex) {
      const h = entry.header;
      const name = h.name.replace(/^(\.\/)+/, '');
      if (h.type === 'file' || h.type === 'contiguous-file') await fn(name, h.size, entry);
      entry.resume(); // whatever fn left unread is skipped as the next entry is asked for
    }
    await feeding;
  } catch (e) {
    if (e instanceof ImageError || e instanceof UsageError) throw e;
    throw new ImageError(`archive ${file}`, `unreadable tar (${(e as Error).message})`);
  } finally {
    feeding.catch(() => undefined);
  }
}

async function readAll(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** First pass over an archive: every small regular file's content by name. */
async function smallEntries(file: string): Promise<Map<string, Buffer>> {
  statOrFail(file, 'archive');
  const small = new Map<string, Buffer>();
  await walkArchive(file, async (name, size, data) => {
    if (size <= SMALL) small.set(name, await readAll(data));
  });
  return small;
}

async function openOciArchive(file: string, tag: string | null, platform: string | undefined): Promise<ImageSource> {
  const small = await smallEntries(file);
  const get = (rel: string, what: string): Buffer => {
    const b = small.get(rel);
    if (!b) throw new ImageError(what, `missing from the archive (${rel})`);
    return b;
  };
  parseJson(get('oci-layout', 'oci-layout'), 'oci-layout');
  const readBlob: BlobReader = (digest, what) => {
    const b = get(`blobs/sha256/${digest.slice(7)}`, `${what} ${digest}`);
    if (sha256(b) !== digest) throw new ImageError(`${what} ${digest}`, `digest mismatch (content is ${sha256(b)})`);
    return b;
  };
  const image = resolveOci(readBlob, parseJson(get('index.json', 'index.json'), 'index.json'), tag, platform);
  return { image, totalBytes: fs.statSync(file).size, eachLayer: archiveLayers(file, image) };
}

function archiveLayers(file: string, image: SourceImage): ImageSource['eachLayer'] {
  return async (fn) => {
    const first = new Map<string, number>();
    image.layers.forEach((l, i) => { if (!first.has(l.name)) first.set(l.name, i); });
    const seen = new Set<string>();
    await walkArchive(file, async (name, _size, data) => {
      const i = first.get(name);
      if (i === undefined || seen.has(name)) return;
      seen.add(name);
      await fn(i, data);
    });
    for (const [name, i] of first) if (!seen.has(name)) throw new ImageError(image.layers[i].label, `blob missing from the archive (${name})`);
  };
}

async function openDockerArchive(file: string, tag: string | null): Promise<ImageSource> {
  const small = await smallEntries(file);
  const mf = small.get('manifest.json');
  if (!mf) throw new ImageError('manifest.json', 'missing from the archive (not a docker-archive)');
  const list = parseJson<Array<{ Config?: string; RepoTags?: string[] | null; Layers?: string[] }>>(mf, 'manifest.json');
  if (!Array.isArray(list) || list.length === 0) throw new ImageError('manifest.json', 'lists no images');
  let entry = list[0];
  let found: string | null = null;
  if (tag !== null && tag.startsWith('@')) {
    entry = list[Number(tag.slice(1))];
    if (!entry) throw new UsageError(`no image ${tag} in the archive (it holds ${list.length})`);
  } else if (tag !== null) {
    const want = new Set([tag, tag.includes(':') ? tag : `${tag}:latest`]);
    const hit = list.find((e) => (e.RepoTags ?? []).some((t) => want.has(t) || want.has(t.replace(/^(docker\.io\/(library\/)?|localhost\/)/, ''))));
    if (!hit) throw new UsageError(`no image tagged '${tag}' in the archive (tags: ${list.flatMap((e) => e.RepoTags ?? []).join(', ') || 'none'})`);
    entry = hit;
    found = tag;
  } else if (list.length > 1) {
    throw new UsageError(`the archive holds ${list.length} images; name one (docker-archive:FILE:NAME:TAG or :@INDEX)`);
  }
  if (found === null) found = entry.RepoTags?.[0] ?? null;
  if (typeof entry.Config !== 'string' || !Array.isArray(entry.Layers)) throw new ImageError('manifest.json', 'an entry has no Config or Layers');
  const cfgName = entry.Config.replace(/^(\.\/)+/, '');
  const cfgBytes = small.get(cfgName);
  if (!cfgBytes) throw new ImageError(`config ${cfgName}`, 'missing from the archive');
  const m = /^(?:blobs\/sha256\/)?([0-9a-f]{64})(?:\.json)?$/.exec(cfgName);
  if (m && sha256(cfgBytes) !== `sha256:${m[1]}`) throw new ImageError(`config ${cfgName}`, `digest mismatch (content is ${sha256(cfgBytes)})`);
  const config = parseJson<ImageConfig>(cfgBytes, `config ${cfgName}`);
  const diffIds = checkConfig(config, `config ${cfgName}`, entry.Layers.length);
  const layers = entry.Layers.map((name, i): LayerRef => {
    if (typeof name !== 'string') throw new ImageError('manifest.json', 'a layer name is not a string');
    const n = name.replace(/^(\.\/)+/, '');
    const dm = /^(?:blobs\/sha256\/)?([0-9a-f]{64})(?:\.tar)?$/.exec(n);
    return { digest: dm && !n.endsWith('.tar') ? `sha256:${dm[1]}` : null, diffId: diffIds[i], mediaType: 'application/vnd.docker.image.rootfs.diff.tar', name: n, label: `layer ${diffIds[i]}` };
  });
  return { image: { config, layers, tag: found }, totalBytes: fs.statSync(file).size, eachLayer: archiveLayers(file, { config, layers, tag: found }) };
}

function openTarball(file: string): ImageSource {
  if (!statOrFail(file, 'tarball').isFile()) throw new UsageError(`${file} is not a file`);
  const layers: LayerRef[] = [{ digest: null, diffId: null, mediaType: 'application/vnd.oci.image.layer.v1.tar', name: file, label: `tarball ${file}` }];
  return {
    image: { config: { architecture: 'amd64', os: 'linux', config: {} }, layers, tag: null },
    totalBytes: fs.statSync(file).size,
    async eachLayer(fn) { await fn(0, fs.createReadStream(file)); },
  };
}
