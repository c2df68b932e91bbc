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
  const done = new Promise<void>((r) => { pack.on('data', (c: Buffer) => chunks.push(c)); pack.on('end', () => r()); });
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
