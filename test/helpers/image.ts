/**
 * Images built by hand for tests: layer tars written with tar-stream (any name, any type, hostile ones
 * included), gzip or plain, put in an OCI layout with a correct (or deliberately wrong) manifest and config.
 * Plus the podman sandbox (own --root/--runroot, vfs driver, a containers.conf with no ulimits).
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import tarStream from 'tar-stream';
import { tmpdir } from './tmp.js';

export interface TarItem {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';
  content?: string | Buffer;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  devmajor?: number;
  devminor?: number;
}

/** A tar of `items`, in order, as tar-stream writes it (names verbatim). */
export async function makeTar(items: TarItem[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((r) => { pack.on('data', (c: unknown) => chunks.push(c as Buffer)); pack.on('end', () => r()); });
  for (const it of items) {
    const type = it.type ?? 'file';
    const body = type === 'file' ? Buffer.from(it.content ?? '') : undefined;
    await new Promise<void>((res, rej) => {
      const header = {
        name: it.name, type, mode: it.mode ?? (type === 'directory' ? 0o755 : type === 'symlink' ? 0o777 : 0o644), uid: it.uid ?? 0, gid: it.gid ?? 0,
        mtime: new Date((it.mtime ?? 1700000000) * 1000), linkname: it.linkname, devmajor: it.devmajor, devminor: it.devminor,
      } as tarStream.Header;
      if (body) pack.entry(header, body, (e) => (e ? rej(e) : res()));
      else pack.entry(header, (e) => (e ? rej(e) : res()));
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export const sha256 = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

export interface LayerSpec { tar: Buffer; compress?: 'gzip' | 'none'; mediaType?: string; badDigest?: boolean; badDiffId?: boolean; missing?: boolean; blob?: Buffer }

/** An OCI layout in a new directory: one image, tagged `tag`, with these layers. Returns the directory. */
export function ociLayout(layers: LayerSpec[], opts: { tag?: string; config?: Record<string, unknown>; dir?: string; history?: unknown[] } = {}): string {
  const dir = opts.dir ?? tmpdir('glayer-img-');
  const blobs = join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const put = (b: Buffer): string => { const d = sha256(b); fs.writeFileSync(join(blobs, d.slice(7)), b); return d; };
  const descs = layers.map((l) => {
    const gz = (l.compress ?? 'gzip') === 'gzip';
    const blob = l.blob ?? (gz ? zlib.gzipSync(l.tar) : l.tar);
    let digest = sha256(blob);
    if (!l.missing) put(blob);
    if (l.badDigest) { digest = sha256(Buffer.from('other')); fs.writeFileSync(join(blobs, digest.slice(7)), blob); }
    return { mediaType: l.mediaType ?? (gz ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar'), digest, size: blob.length };
  });
  const diffIds = layers.map((l) => (l.badDiffId ? sha256(Buffer.from('nope')) : sha256(l.tar)));
  const config = { architecture: 'amd64', os: 'linux', config: {}, ...opts.config, rootfs: { type: 'layers', diff_ids: diffIds }, ...(opts.history ? { history: opts.history } : {}) };
  const cfg = Buffer.from(JSON.stringify(config));
  const cfgDigest = put(cfg);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfgDigest, size: cfg.length }, layers: descs }));
  const mDigest = put(manifest);
  fs.writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  fs.writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: mDigest, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': opts.tag ?? 'latest' } }] }));
  return dir;
}

export function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: Buffer } = {}): string {
  const r = spawnSync(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, input: opts.input, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr?.toString()}`);
  return r.stdout.toString();
}

/** podman with its own storage in a temp dir. */
export function podman(): (args: string[]) => string {
  const base = tmpdir('glayer-podman-');
  fs.writeFileSync(join(base, 'containers.conf'), '[containers]\ndefault_ulimits = []\n');
  const env = { ...process.env, CONTAINERS_CONF: join(base, 'containers.conf') };
  return (args) => run('podman', ['--root', join(base, 'root'), '--runroot', join(base, 'run'), '--storage-driver', 'vfs', ...args], { env });
}

/**
 * A directory as sorted lines: path, kind, permission bits, owner, link count, size and content hash, symlink
 * target, device numbers, xattrs. Mtimes are left out unless asked for.
 */
export function describeTree(root: string, opts: { mtime?: boolean; xattrs?: boolean } = {}): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const n of fs.readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const p = join(root, r);
      const st = fs.lstatSync(p);
      let what: string;
      if (st.isDirectory()) what = 'dir';
      else if (st.isSymbolicLink()) what = `symlink ${fs.readlinkSync(p)}`;
      else if (st.isFile()) what = `file ${st.size} ${createHash('sha1').update(fs.readFileSync(p)).digest('hex')}`;
      else if (st.isCharacterDevice()) what = `char ${st.rdev}`;
      else if (st.isBlockDevice()) what = `block ${st.rdev}`;
      else if (st.isFIFO()) what = 'fifo';
      else what = 'other';
      const mode = st.isSymbolicLink() ? '' : (st.mode & 0o7777).toString(8);
      let x = '';
      if (opts.xattrs && !st.isSymbolicLink()) {
        const g = spawnSync('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', p]);
        x = g.stdout.toString().split('\n').filter((l) => l.includes('=') && !l.startsWith('security.selinux')).sort().join(',');
      }
      out.push(`${r} ${what} ${mode} ${st.uid}:${st.gid} n${st.isDirectory() ? '' : st.nlink}${opts.mtime ? ` t${Math.floor(st.mtimeMs / 1000)}` : ''}${x ? ` ${x}` : ''}`);
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

import { spawnSync as spawn2 } from 'node:child_process';
import { stackUnion } from '../../src/api/export.js';
import { Store } from '../../src/store/store.js';

/**
 * glayer's layers and manifests written out as root would see them (contents, modes, owners, links, xattrs,
 * devices, mtimes): the union of the stack's layer trees and each path's record, applied with plain fs calls.
 * The reference to compare umoci's and podman's unpacking with, until the view applies manifests itself.
 */
export async function writeStackAsRoot(gitdir: string, stack: string, dest: string): Promise<void> {
  const store = new Store(gitdir);
  try {
    const top = store.resolve(`refs/heads/${stack}`);
    if (!top) throw new Error(`no stack ${stack}`);
    const { tree, record } = stackUnion(store, top);
    fs.mkdirSync(dest, { recursive: true });
    const fixes: Array<() => void> = [];
    const walk = (oid: string, rel: string): void => {
      for (const e of store.objects.readTree(oid)) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        const p = Buffer.from(join(dest, r), 'latin1');
        const rec = record(r);
        if (e.mode === '40000') { fs.mkdirSync(p); walk(e.oid, r); }
        else if (e.mode === '120000') fs.symlinkSync(store.objects.readType(e.oid, 'blob'), p);
        else if (rec?.type) {
          const t = rec.type === 'fifo' ? 'p' : rec.type === 'char' ? 'c' : 'b';
          spawn2('mknod', [p.toString('latin1'), t, ...(rec.dev ? [String(rec.dev[0]), String(rec.dev[1])] : [])]);
        } else if (rec?.link !== undefined) fs.linkSync(Buffer.from(join(dest, rec.link), 'latin1'), p);
        else fs.writeFileSync(p, store.objects.readType(e.oid, 'blob'));
        const mode = rec?.mode ?? (e.mode === '40000' || e.mode === '100755' ? 0o755 : 0o644);
        fs.lchownSync(p, rec?.uid ?? 0, rec?.gid ?? 0);
        if (e.mode !== '120000') fs.chmodSync(p, mode);
        for (const [k, v] of rec?.xattrs ?? []) spawn2('setfattr', ['-h', '-n', k, '-v', '0x' + v.toString('hex'), p.toString('latin1')]);
        if (rec?.mtime !== undefined) { const t = Number(rec.mtime); fixes.push(() => fs.lutimesSync(p, t, t)); }
      }
    };
    walk(tree, '');
    for (const f of fixes.reverse()) f();
  } finally {
    store.close();
  }
}
