/**
 * Overlay markers on disk, in both spellings:
 * - the `.wh.` form (aufs, OCI, glayer's layers; fuse-overlayfs reads it in lower directories): an empty file
 *   `.wh.NAME` hides NAME, an empty file `.wh..wh..opq` makes its directory opaque;
 * - the kernel's form: a 0/0 character device NAME hides NAME, the xattr `trusted.overlay.opaque=y` makes a
 *   directory opaque.
 *
 * Node has neither mknod(2) nor the xattr calls, and native addons are out, so the kernel form is written by GNU
 * tar from a small tar stream we make (one process for any number of markers; names stay bytes, no argv
 * encoding), and read with getfattr (the `attr` package). Paths are byte strings (latin1), relative to `root`.
 */
import * as fs from '../sys/fs.js';
import { spawnSync } from 'node:child_process';
import { GlayerError } from '../errors.js';
import { fsPath } from '../fs/paths.js';

export const OPAQUE_XATTR = 'trusted.overlay.opaque';

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function header(name: Buffer, type: string, size: number, mode: number): Buffer {
  const h = Buffer.alloc(512);
  name.copy(h, 0, 0, Math.min(name.length, 100));
  h.write(octal(mode, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(0, 12), 136, 'latin1');
  h.write(type, 156, 'latin1');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.write(octal(0, 8), 329, 'latin1');
  h.write(octal(0, 8), 337, 'latin1');
  h.write('        ', 148, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'latin1');
  return h;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'latin1'), value, Buffer.from('\n')]);
  let total = body.length + String(body.length).length;
  if (String(total).length !== String(body.length).length) total = body.length + String(total).length;
  return Buffer.concat([Buffer.from(String(total)), body]);
}

function pad(b: Buffer): Buffer {
  const rest = b.length % 512;
  return rest ? Buffer.concat([b, Buffer.alloc(512 - rest)]) : b;
}

/** One tar entry; the name goes in a pax `path` record (any length, any bytes). */
function entry(parts: Buffer[], rel: string, type: string, mode: number, xattr?: string): void {
  const name = Buffer.from(rel === '' ? './' : `./${rel}${type === '5' ? '/' : ''}`, 'latin1');
  const records = [paxRecord('path', name)];
  if (xattr) records.push(paxRecord(`SCHILY.xattr.${xattr}`, Buffer.from('y')));
  const pax = Buffer.concat(records);
  parts.push(header(Buffer.from('./PaxHeader'), 'x', pax.length, 0o644), pad(pax));
  parts.push(header(name, type, 0, mode));
}

/**
 * Below `root`, make 0/0 character devices at `whiteouts` and set trusted.overlay.opaque=y on the directories
 * `opaque` (which exist). Needs root (CAP_MKNOD, CAP_SYS_ADMIN for trusted.*) and GNU tar.
 */
export function writeKernelMarks(root: string, whiteouts: readonly string[], opaque: readonly string[]): void {
  if (whiteouts.length === 0 && opaque.length === 0) return;
  const parts: Buffer[] = [];
  for (const rel of whiteouts) entry(parts, rel, '3', 0);
  for (const rel of opaque) entry(parts, rel, '5', fs.lstatSync(fsPath(root, rel)).mode & 0o7777, OPAQUE_XATTR);
  parts.push(Buffer.alloc(1024));
  const r = spawnSync('tar', ['--xattrs', `--xattrs-include=${OPAQUE_XATTR}`, '--no-overwrite-dir', '--numeric-owner', '-xpf', '-', '-C', root], { input: Buffer.concat(parts), stdio: ['pipe', 'pipe', 'pipe'] });
  if (r.error || r.status !== 0) {
    throw new GlayerError('E_MOUNT', `cannot write overlay whiteouts in ${root}: tar: ${(r.error?.message ?? String(r.stderr)).trim().split('\n')[0]}`, { root }, 2);
  }
  for (const rel of whiteouts) {
    const st = fs.lstatSync(fsPath(root, rel));
    if (!st.isCharacterDevice() || st.rdev !== 0) throw new GlayerError('E_MOUNT', `tar did not make the whiteout ${root}/${rel}`, { root }, 2);
  }
}

/** Remove trusted.overlay.opaque from directories (UTF-8 names; others keep it, which only a remount reads). */
export function removeOpaqueXattrs(root: string, dirs: readonly string[]): void {
  const names = dirs.filter(isUtf8).map((d) => (d === '' ? root : `${root}/${Buffer.from(d, 'latin1').toString('utf8')}`));
  if (names.length === 0) return;
  spawnSync('setfattr', ['-h', '-x', OPAQUE_XATTR, ...names], { stdio: 'ignore' });
}

function isUtf8(rel: string): boolean {
  const s = Buffer.from(rel, 'latin1').toString('utf8');
  return Buffer.from(s, 'utf8').toString('latin1') === rel;
}

/**
 * The directories below `root` (relative byte-string paths; '' is root) that carry an overlay opaque xattr with
 * the value `y` (the kernel's, or fuse-overlayfs's own). One getfattr process over the tree; null when getfattr is
 * missing.
 */
export function readOpaqueDirs(root: string): string[] | null {
  const r = spawnSync('getfattr', ['-R', '-P', '--absolute-names', '-d', '-m', '^(trusted\\.overlay\\.opaque|user\\.fuseoverlayfs\\.opaque|user\\.overlay\\.opaque)$', '-e', 'text', '.'], { cwd: root, maxBuffer: 1 << 28 });
  if (r.error) return null;
  const out: string[] = [];
  let file: string | null = null;
  for (const line of r.stdout.toString('latin1').split('\n')) {
    if (line.startsWith('# file: ')) { file = unescape(line.slice(8)); continue; }
    if (file !== null && /^[a-z.]+opaque="y"$/.test(line)) {
      const rel = file === '.' ? '' : file.startsWith('./') ? file.slice(2) : file;
      out.push(rel);
      file = null;
    }
  }
  return out.sort();
}

/** getfattr's escaping of names: `\ooo` octal for special bytes and `\\` for a backslash. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3}|\\)/g, (_m, g: string) => (g === '\\' ? '\\' : String.fromCharCode(parseInt(g, 8))));
}
