/**
 * One image layer -> one glayer layer: the layer blob streams through its digest check, the decompressor
 * (gzip, zstd or none, by magic bytes), the diff_id check and the tar reader; each file's content goes straight
 * to the object writer (large files stream to disk), and the rest becomes a tree of nodes plus metadata records
 * (docs/metadata.md) for owners, modes, mtimes, xattrs, devices, fifos and hardlinks.
 *
 * The layer tar is untrusted. Refused, naming the layer and the entry: absolute paths, `..`, names git refuses,
 * duplicate entries, an entry under a non-directory, hardlinks to directories, to paths neither earlier in the
 * layer nor in the layers below, or out of the layer, invalid whiteout names (`.wh.` alone, `.wh..wh.x`, a
 * whiteout of the root), unknown entry types, malformed headers, truncated or corrupt compression, and any
 * digest or diff_id mismatch. glayer writes objects, never files, so nothing is written through a symlink at
 * import; still, a layer whose entries would go through a symlink of a lower layer (an implied directory
 * where the union below has a symlink or a file) is refused, as a tar-slip would be.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import { GlayerError, ImageError, InvalidLayerError } from '../errors.js';
import { formatManifest, META_NAME, type Manifest, type MetaRecord } from '../core/meta.js';
import { nameProblem, join as pjoin } from '../core/path.js';
import { EMPTY_BLOB, type Mode, type TreeEntry, type TreeSink } from '../core/tree.js';
import { classifyName } from '../core/whiteout.js';
import { tarExtract, type TarHeader } from './tario.js';
import type { LayerRef } from './layout.js';

export interface Leaf { kind: 'leaf'; mode: Mode; oid: string }
export interface Dir { kind: 'dir'; children: Map<string, Node>; explicit: boolean }
export type Node = Leaf | Dir;

export interface ParsedLayer {
  root: Dir;
  records: Manifest;
  /** Hardlinks whose target is not in this layer: resolved against the union below (path -> target). */
  lowerLinks: Map<string, string>;
  digest: string;
  diffId: string;
  entries: number;
}

/** What the object writer must offer (store/objects.ts ObjectWriter). */
export interface BlobWriter {
  add(type: 'blob', data: Buffer): string;
  addStream(size: number, source: AsyncIterable<Buffer>): Promise<string>;
}

const GZIP = [0x1f, 0x8b];
const ZSTD = [0x28, 0xb5, 0x2f, 0xfd];

/** Decompress by magic bytes; errors name the compression. */
async function* decompress(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const it = src[Symbol.asyncIterator]();
  let head = Buffer.alloc(0);
  let ended = false;
  while (head.length < 4) {
    const r = await it.next();
    if (r.done) { ended = true; break; }
    head = Buffer.concat([head, r.value]);
  }
  async function* rest(): AsyncGenerator<Buffer> {
    if (head.length) yield head;
    if (ended) return;
    for (;;) { const r = await it.next(); if (r.done) return; yield r.value; }
  }
  if (GZIP.every((b, i) => head[i] === b)) {
    // Large output chunks: fewer trips through the generators and the tar parser (default 16 KiB).
    const gunzip = zlib.createGunzip({ chunkSize: 256 * 1024 });
    const input = Readable.from(rest());
    input.on('error', (e) => gunzip.destroy(e));
    input.pipe(gunzip);
    try {
      for await (const c of gunzip) yield c as Buffer;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code?.startsWith('Z_') || /unexpected end of file/.test((e as Error).message)) throw new Error(`truncated or corrupt gzip (${(e as Error).message})`);
      throw e;
    }
    return;
  }
  if (ZSTD.every((b, i) => head[i] === b)) {
    const out: Buffer[] = [];
    const d = new ZstdDecompress((chunk) => { out.push(Buffer.from(chunk)); });
    let sawFinal = false;
    try {
      for await (const c of rest()) {
        d.push(c);
        while (out.length) yield out.shift()!;
      }
      d.push(new Uint8Array(0), true);
      sawFinal = true;
    } catch (e) {
      throw new Error(`corrupt zstd (${(e as Error).message})`);
    }
    while (out.length) yield out.shift()!;
    if (!sawFinal) throw new Error('truncated zstd');
    return;
  }
  yield* rest();
}

/** A tar entry name -> a layer path ('' for the root); throws a reason for an unsafe one. */
export function entryPath(name: string): string {
  if (name.startsWith('/')) throw new Error('absolute path');
  const parts: string[] = [];
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') throw new Error("path with '..'");
    const problem = nameProblem(p);
    if (problem) throw new Error(problem);
    parts.push(p);
  }
  return parts.join('/');
}

const MTIME_PAX = /^(-?)([0-9]{1,12})(?:\.([0-9]+))?$/;

function mtimeOf(h: TarHeader): string {
  const pax = h.pax?.mtime;
  const m = pax !== undefined ? MTIME_PAX.exec(pax) : null;
  if (m) {
    if (m[1] === '-') return '0';
    const sec = String(Number(m[2]));
    const frac = (m[3] ?? '').slice(0, 9).replace(/0+$/, '');
    return frac ? `${sec}.${frac}` : sec;
  }
  const s = Math.floor(h.mtime.getTime() / 1000);
  return String(s < 0 || !Number.isFinite(s) ? 0 : s);
}

function idOf(h: TarHeader, key: 'uid' | 'gid'): number {
  const pax = h.pax?.[key];
  if (pax !== undefined && /^[0-9]{1,10}$/.test(pax) && Number(pax) <= 0xffffffff) return Number(pax);
  const v = h[key];
  return Number.isInteger(v) && v >= 0 && v <= 0xffffffff ? v : 0;
}

/** The record of an entry: every field that is not the default for its kind. */
function recordOf(h: TarHeader, defaultMode: number | null): MetaRecord {
  const r: MetaRecord = {};
  const perm = h.mode & 0o7777;
  if (defaultMode !== null && perm !== defaultMode) r.mode = perm;
  const uid = idOf(h, 'uid');
  const gid = idOf(h, 'gid');
  if (uid) r.uid = uid;
  if (gid) r.gid = gid;
  r.mtime = mtimeOf(h);
  for (const [k, v] of Object.entries(h.pax ?? {})) {
    if (k.startsWith('SCHILY.xattr.') && k.length > 13) (r.xattrs ??= new Map()).set(k.slice(13), Buffer.from(v, 'latin1'));
  }
  return r;
}

/**
 * Read one layer blob into objects (through `writer`) and a node tree with records. Throws ImageError naming
 * `ref.label` (and the entry) on any refusal; the caller discards the writer's objects.
 */
export async function parseLayer(data: AsyncIterable<Buffer>, ref: LayerRef, writer: BlobWriter, onBytes?: (n: number) => void): Promise<ParsedLayer> {
  const digestHash = createHash('sha256');
  const diffHash = createHash('sha256');
  async function* raw(): AsyncGenerator<Buffer> {
    for await (const c of data) { digestHash.update(c); onBytes?.(c.length); yield c; }
  }
  async function* plain(): AsyncGenerator<Buffer> {
    for await (const c of decompress(raw())) { diffHash.update(c); yield c; }
  }
  const root: Dir = { kind: 'dir', children: new Map(), explicit: false };
  const records: Manifest = new Map();
  const leaves = new Map<string, Leaf>();
  const linkOf = new Map<string, string>(); // hardlink path -> target path, both in this layer
  const lowerLinks = new Map<string, string>();
  let entries = 0;
  let current: string | undefined;
  const fail = (reason: string, entry = current): never => { throw new ImageError(ref.label, reason, entry); };

  const place = (path: string, node: Node): Node => {
    if (path === '') {
      if (node.kind !== 'dir') fail('the layer root must be a directory');
      if (root.explicit) fail('duplicate entry');
      root.explicit = true;
      return root;
    }
    const parts = path.split('/');
    let dir = root;
    for (let i = 0; i < parts.length - 1; i++) {
      let child = dir.children.get(parts[i]);
      if (!child) { child = { kind: 'dir', children: new Map(), explicit: false }; dir.children.set(parts[i], child); }
      if (child.kind !== 'dir') fail(`conflicts with the non-directory entry ${JSON.stringify(parts.slice(0, i + 1).join('/'))} above it`);
      dir = child as Dir;
    }
    const name = parts[parts.length - 1];
    const existing = dir.children.get(name);
    if (existing) {
      if (existing.kind === 'dir' && node.kind === 'dir' && !existing.explicit) { existing.explicit = true; return existing; }
      fail(existing.kind === node.kind ? 'duplicate entry' : 'conflicting entries (a directory and a non-directory at one path)');
    }
    dir.children.set(name, node);
    return node;
  };

  const ex = tarExtract();
  const feeding = pipeline(Readable.from(plain()), ex);
  feeding.catch(() => undefined);
  try {
    for await (const entry of ex) {
      const h = entry.header;
      entries++;
      current = h.name;
      let path: string;
      try { path = entryPath(h.name); } catch (e) { fail((e as Error).message); }
      current = path! === '' ? h.name : path!;
      const base = path!.slice(path!.lastIndexOf('/') + 1);
      const marker = path! === '' ? { kind: 'none' as const } : classifyName(base);
      if (marker.kind === 'invalid') fail(marker.reason);
      if (marker.kind === 'whiteout' || marker.kind === 'opaque') {
        if (h.type !== 'file' && h.type !== 'contiguous-file') fail('a whiteout marker must be a regular file');
        place(path!, { kind: 'leaf', mode: '100644', oid: writer.add('blob', Buffer.alloc(0)) });
        entry.resume();
        continue;
      }
      switch (h.type) {
        case 'directory': {
          place(path!, { kind: 'dir', children: new Map(), explicit: true });
          records.set(path! === '' ? '.' : path!, recordOf(h, 0o755));
          entry.resume();
          break;
        }
        case 'file':
        case 'contiguous-file': {
          const exec = (h.mode & 0o100) !== 0;
          const node: Leaf = { kind: 'leaf', mode: exec ? '100755' : '100644', oid: '' };
          place(path!, node);
          try { node.oid = await writer.addStream(h.size, entry as unknown as AsyncIterable<Buffer>); } catch (e) {
            if (e instanceof GlayerError) throw e;
            fail(`unreadable content (${(e as Error).message})`);
          }
          leaves.set(path!, node);
          records.set(path!, recordOf(h, exec ? 0o755 : 0o644));
          break;
        }
        case 'symlink': {
          if (h.linkname === null || h.linkname === '') fail('a symlink without a target');
          const node: Leaf = { kind: 'leaf', mode: '120000', oid: writer.add('blob', Buffer.from(h.linkname!, 'latin1')) };
          place(path!, node);
          leaves.set(path!, node);
          const r = recordOf(h, null);
          records.set(path!, r);
          entry.resume();
          break;
        }
        case 'link': {
          let target: string;
          try { target = entryPath(h.linkname ?? ''); } catch (e) { fail(`hardlink target ${JSON.stringify(h.linkname)}: ${(e as Error).message}`); }
          if (target! === '' || target! === path!) fail(`hardlink to ${JSON.stringify(h.linkname)}`);
          let t = target!;
          while (linkOf.has(t)) t = linkOf.get(t)!;
          const leaf = leaves.get(t);
          if (leaf) {
            place(path!, { kind: 'leaf', mode: leaf.mode, oid: leaf.oid });
            leaves.set(path!, { kind: 'leaf', mode: leaf.mode, oid: leaf.oid });
            linkOf.set(path!, t);
          } else {
            // A directory of this layer, or something of the layers below: checked when the layers are stacked.
            if (findNode(root, t)?.kind === 'dir') fail(`hardlink to the directory ${JSON.stringify(h.linkname)}`);
            place(path!, { kind: 'leaf', mode: '100644', oid: '' });
            lowerLinks.set(path!, t);
          }
          entry.resume();
          break;
        }
        case 'character-device':
        case 'block-device':
        case 'fifo': {
          const node: Leaf = { kind: 'leaf', mode: '100644', oid: writer.add('blob', Buffer.alloc(0)) };
          place(path!, node);
          leaves.set(path!, node);
          const r = recordOf(h, 0o644);
          const rec: MetaRecord = { type: h.type === 'fifo' ? 'fifo' : h.type === 'character-device' ? 'char' : 'block', ...r };
          if (h.type !== 'fifo') rec.dev = [h.devmajor ?? 0, h.devminor ?? 0];
          records.set(path!, orderRecord(rec));
          entry.resume();
          break;
        }
        default:
          fail(`unsupported entry type '${h.type}'`);
      }
    }
    await feeding;
  } catch (e) {
    ex.destroy();
    if (e instanceof ImageError || e instanceof InvalidLayerError) throw e;
    const msg = (e as Error).message ?? String(e);
    throw new ImageError(ref.label, /gzip|zstd/.test(msg) ? msg : `malformed tar (${msg})${current !== undefined ? ` after entry ${JSON.stringify(current)}` : ''}`);
  }
  const digest = 'sha256:' + digestHash.digest('hex');
  const diffId = 'sha256:' + diffHash.digest('hex');
  if (ref.digest !== null && digest !== ref.digest) throw new ImageError(ref.label, `digest mismatch: the blob's content is ${digest}`);
  if (ref.diffId !== null && diffId !== ref.diffId) throw new ImageError(ref.label, `diff_id mismatch: the uncompressed layer is ${diffId}, the config says ${ref.diffId}`);
  // Hardlink groups: each path of a group gets the first path's record, the later ones link= the first.
  const groups = new Map<string, string[]>();
  for (const [p, t] of linkOf) { const g = groups.get(t) ?? [t]; g.push(p); groups.set(t, g); }
  for (const [orig, members] of groups) {
    const { link: _drop, ...base } = records.get(orig) ?? {};
    members.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const p of members) records.set(p, p === members[0] ? { ...base } : { ...base, link: members[0] });
  }
  return { root, records, lowerLinks, digest, diffId, entries };
}

function orderRecord(r: MetaRecord): MetaRecord {
  return r;
}

export function findNode(root: Dir, path: string): Node | null {
  let n: Node = root;
  for (const p of path.split('/')) {
    if (n.kind !== 'dir') return null;
    const c: Node | undefined = n.children.get(p);
    if (!c) return null;
    n = c;
  }
  return n;
}

/** The entry at `path` in a (union) tree, or null. */
export function lookup(trees: TreeSink, tree: string | null, path: string): TreeEntry | null {
  if (tree === null || path === '') return null;
  let cur = tree;
  const parts = path.split('/');
  for (let i = 0; i < parts.length; i++) {
    const e = trees.readTree(cur).find((x) => x.name === parts[i]);
    if (!e) return null;
    if (i === parts.length - 1) return e;
    if (e.mode !== '40000') return null;
    cur = e.oid;
  }
  return null;
}

/**
 * Stack a parsed layer on the union below (`lower`, no manifests in it): resolve hardlinks into lower layers,
 * refuse implied directories over a lower symlink or file, and write the layer's trees. Returns the layer tree
 * with its manifest, and the same tree without it (what the union engine takes until it reads manifests).
 */
export function buildLayer(p: ParsedLayer, label: string, trees: TreeSink, writer: BlobWriter, lower: string | null): { tree: string; bare: string } {
  for (const [path, target] of p.lowerLinks) {
    const e = lookup(trees, lower, target);
    if (!e || e.mode === '40000' || e.mode === '160000') throw new ImageError(label, `hardlink to ${JSON.stringify(target)}, which is neither earlier in the layer nor a file of the layers below`, path);
    const n = findNode(p.root, path) as Leaf;
    n.mode = e.mode;
    n.oid = e.oid;
    if (target < path) p.records.set(path, { ...(p.records.get(path) ?? {}), link: target });
  }
  // Implied directories (no entry of their own) over something that is not a directory below.
  const stack: Array<[string, Dir]> = [['', p.root]];
  while (stack.length) {
    const [path, dir] = stack.pop()!;
    for (const [name, child] of dir.children) {
      if (child.kind !== 'dir') continue;
      const cp = pjoin(path, name);
      if (!child.explicit) {
        const below = lookup(trees, lower, cp);
        if (below && below.mode !== '40000') {
          throw new ImageError(label, `would write through the ${below.mode === '120000' ? 'symlink' : 'file'} ${JSON.stringify(cp)} of a lower layer`, firstLeaf(child, cp));
        }
      }
      stack.push([cp, child]);
    }
  }
  const bare = writeDir(trees, p.root);
  const text = formatManifest(p.records);
  if (!text) return { tree: bare, bare };
  const meta: TreeEntry = { name: META_NAME, mode: '100644', oid: writer.add('blob', text) };
  const entries = [...trees.readTree(bare), meta].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { tree: trees.writeTree(entries), bare };
}

function firstLeaf(d: Dir, path: string): string {
  for (const [n, c] of d.children) return c.kind === 'dir' ? firstLeaf(c, pjoin(path, n)) : pjoin(path, n);
  return path;
}

function writeDir(trees: TreeSink, d: Dir): string {
  const out: TreeEntry[] = [];
  const names = [...d.children.keys()].sort();
  for (const name of names) {
    const c = d.children.get(name)!;
    if (c.kind === 'dir') out.push({ name, mode: '40000', oid: writeDir(trees, c) });
    else out.push({ name, mode: c.mode, oid: c.oid || EMPTY_BLOB });
  }
  return trees.writeTree(out);
}

export { InvalidLayerError };
