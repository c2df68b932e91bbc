/**
 * The Linux kernel's overlayfs as a reference for the union: each layer commit (or a writable-layer directory) is
 * turned into an overlayfs lower directory the way container runtimes do it from an OCI layer, and the stack is
 * mounted read-only (`mount -t overlay overlay -o lowerdir=TOP:...:BOTTOM`). What the kernel shows is the oracle.
 *
 * Conversion of one layer (its tree extracted with native git):
 * - `.wh.NAME` -> a 0/0 character device NAME (an overlayfs whiteout); when the same layer also has NAME, that
 *   entry replaces the lower one anyway, and if it is a directory it is made opaque (it hides everything below);
 * - `.wh..wh..opq` in D -> the xattr trusted.overlay.opaque=y on D, the marker removed;
 * - empty directories (git archive leaves them out) are created from `git ls-tree -r -t`.
 * No setfattr or mknod needed: GNU tar makes the devices and the xattrs from a tar stream we write (names as bytes).
 */
import * as fs from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { git } from './git.js';

const OPAQUE = '.wh..wh..opq';
const WH = '.wh.';

/** Why the kernel reference cannot run here, or null when it can (root, overlay, GNU tar with xattrs and devices). */
export function overlayUnavailable(scratch: string): string | null {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'not running as root (mount needs CAP_SYS_ADMIN)';
  const tar = spawnSync('tar', ['--version']);
  if (tar.status !== 0 || !/GNU tar/.test(String(tar.stdout))) return 'GNU tar is not installed (needed to set trusted.overlay.opaque)';
  // Try a real mount: containers without CAP_SYS_ADMIN refuse it with EPERM.
  const lo1 = join(scratch, 'probe-l1');
  const lo2 = join(scratch, 'probe-l2');
  const mnt = join(scratch, 'probe-mnt');
  for (const d of [lo1, lo2, mnt]) fs.mkdirSync(d, { recursive: true });
  try {
    try { mountOverlay([lo1, lo2], mnt); } catch (e) { return `mount -t overlay failed: ${(e as Error).message.split('\n')[0]}`; }
    umount(mnt);
    try { applyOverlayMarks(lo1, [''], ['wh']); } catch (e) { return `cannot make whiteouts or set trusted.overlay.opaque: ${(e as Error).message.split('\n')[0]}`; }
    return null;
  } finally {
    for (const d of [lo1, lo2, mnt]) fs.rmSync(d, { recursive: true, force: true });
  }
}

/** `mount -t overlay` read-only with `lowers` (top first); a single lower gets an empty one below it. */
export function mountOverlay(lowers: string[], target: string): void {
  let dirs = lowers;
  if (dirs.length === 1) {
    const empty = `${target}.empty-lower`;
    fs.mkdirSync(empty, { recursive: true });
    dirs = [...dirs, empty];
  }
  for (const d of dirs) if (d.includes(':') || d.includes(',')) throw new Error(`lowerdir path not usable by mount: ${d}`);
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${dirs.join(':')}`, target], { stdio: 'pipe' });
}

export function umount(target: string): void {
  execFileSync('umount', [target], { stdio: 'pipe' });
}

/** Mount `lowers` (top first) at a fresh `target`, run fn, and always unmount. */
export function withOverlay<T>(lowers: string[], target: string, fn: (merged: string) => T): T {
  fs.mkdirSync(target, { recursive: true });
  mountOverlay(lowers, target);
  try {
    return fn(target);
  } finally {
    umount(target);
  }
}

// ---- pax tar with xattrs (just enough for GNU tar to set trusted.overlay.opaque on directories) ----

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function tarHeader(name: string, type: string, size: number, mode: number): Buffer {
  const h = Buffer.alloc(512);
  const nameBuf = Buffer.from(name, 'latin1');
  if (nameBuf.length > 100) throw new Error(`tar name too long for the test helper: ${name}`);
  nameBuf.copy(h, 0);
  h.write(octal(mode, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(0, 12), 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write(type, 156, 'latin1');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  fixChecksum(h);
  return h;
}

function fixChecksum(h: Buffer): void {
  h.write('        ', 148, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'latin1');
}

function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body, 'latin1');
  let total = len + String(len).length;
  if (String(total).length !== String(len).length) total = len + String(total).length;
  return Buffer.from(`${total}${body}`, 'latin1');
}

function pad(b: Buffer): Buffer {
  const rest = b.length % 512;
  return rest ? Buffer.concat([b, Buffer.alloc(512 - rest)]) : b;
}

/**
 * Below `root`, set trusted.overlay.opaque=y on the directories `opaque` and create 0/0 character devices (overlayfs
 * whiteouts) at `whiteouts` (byte-string paths; '' is the root). One tar stream: names stay bytes, no argv encoding.
 */
export function applyOverlayMarks(root: string, opaque: string[], whiteouts: string[] = []): void {
  if (opaque.length === 0 && whiteouts.length === 0) return;
  const parts: Buffer[] = [];
  for (const rel of whiteouts) {
    const h = tarHeader(`./${rel}`, '3', 0, 0);
    h.write(octal(0, 8), 329, 'latin1');
    h.write(octal(0, 8), 337, 'latin1');
    fixChecksum(h);
    parts.push(h);
  }
  for (const rel of opaque) {
    const mode = fs.statSync(abs(root, rel)).mode & 0o7777;
    const pax = paxRecord('SCHILY.xattr.trusted.overlay.opaque', 'y');
    parts.push(tarHeader(`./PaxHeaders/${parts.length}`, 'x', pax.length, 0o644), pad(pax));
    parts.push(tarHeader(rel === '' ? './' : `./${rel}/`, '5', 0, mode));
  }
  parts.push(Buffer.alloc(1024));
  execFileSync('tar', ['--xattrs', '--xattrs-include=trusted.*', '--no-overwrite-dir', '-xf', '-', '-C', root], { input: Buffer.concat(parts), stdio: ['pipe', 'pipe', 'pipe'] });
  // Check it took: a silently ignored xattr or device would make the reference wrong.
  for (const rel of whiteouts) {
    const st = fs.lstatSync(abs(root, rel));
    if (!st.isCharacterDevice() || st.rdev !== 0) throw new Error(`whiteout device was not made at ${root}/${rel}`);
  }
  // (argv is UTF-8: check the directories whose names are UTF-8)
  const utf8 = opaque.map((rel) => Buffer.from(rel, 'latin1').toString('utf8')).filter((p, i) => Buffer.from(p, 'utf8').toString('latin1') === opaque[i]);
  if (utf8.length) {
    const chk = spawnSync('tar', ['--xattrs', '--xattrs-include=trusted.*', '-cf', '-', '--no-recursion', '-C', root, ...utf8.map((p) => (p === '' ? '.' : p))], { encoding: 'latin1', maxBuffer: 1 << 30 });
    const n = String(chk.stdout).split('SCHILY.xattr.trusted.overlay.opaque=y').length - 1;
    if (n !== utf8.length) throw new Error(`trusted.overlay.opaque was not set on every directory of ${root} (${n} of ${utf8.length})`);
  }
}

// ---- layers as lower directories ----

interface LsEntry { mode: string; type: string; oid: string; path: string }

function lsTree(gitdir: string, commit: string): LsEntry[] {
  const out = execFileSync('git', ['--git-dir', gitdir, 'ls-tree', '-r', '-t', '-z', commit], { maxBuffer: 1 << 30 }).toString('latin1');
  return out.split('\0').filter(Boolean).map((line) => {
    const tab = line.indexOf('\t');
    const [mode, type, oid] = line.slice(0, tab).split(' ');
    return { mode, type, oid, path: line.slice(tab + 1) };
  });
}

function abs(root: string, rel: string): Buffer {
  return Buffer.concat([Buffer.from(root, 'utf8'), Buffer.from(rel === '' ? '' : '/' + rel, 'latin1')]);
}

function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

function baseOf(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

/** Convert `.wh.` markers in an extracted layer directory `dir` (entries as listed) to overlayfs form. */
function convertMarkers(dir: string, entries: Array<{ path: string; isDir: boolean }>): void {
  const kinds = new Map(entries.map((e) => [e.path, e.isDir]));
  const opaque = new Set<string>();
  const whiteouts: string[] = [];
  for (const e of entries) {
    const name = baseOf(e.path);
    if (!name.startsWith(WH)) continue;
    const parent = parentOf(e.path);
    fs.rmSync(abs(dir, e.path));
    if (name === OPAQUE) { opaque.add(parent); continue; }
    const target = parent === '' ? name.slice(WH.length) : `${parent}/${name.slice(WH.length)}`;
    const own = kinds.get(target);
    if (own === undefined) whiteouts.push(target);
    else if (own) opaque.add(target); // re-created as a directory in the same layer: it hides everything below
    // re-created as a file or symlink in the same layer: it replaces the lower entry by itself
  }
  applyOverlayMarks(dir, [...opaque].sort(), whiteouts);
}

/** Extract layer `commit`'s tree into `dir` (created) as an overlayfs lower directory. */
export function layerToLowerdir(gitdir: string, commit: string, dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const archive = execFileSync('git', ['--git-dir', gitdir, 'archive', '--format=tar', commit], { maxBuffer: 1 << 30 });
  execFileSync('tar', ['-xf', '-', '-C', dir], { input: archive, stdio: ['pipe', 'pipe', 'pipe'] });
  const entries = lsTree(gitdir, commit);
  for (const e of entries) if (e.type === 'tree') fs.mkdirSync(abs(dir, e.path), { recursive: true });
  convertMarkers(dir, entries.map((e) => ({ path: e.path, isDir: e.type === 'tree' })));
}

/** Copy a writable-layer directory (`.wh.` markers as files) into `dir` as an overlayfs lower directory. */
export function upperToLowerdir(upper: string, dir: string): void {
  execFileSync('cp', ['-a', `${upper}/.`, dir], { stdio: 'pipe' });
  const entries: Array<{ path: string; isDir: boolean }> = [];
  const walk = (rel: string): void => {
    for (const n of fs.readdirSync(abs(dir, rel), { encoding: 'buffer' })) {
      const r = rel === '' ? n.toString('latin1') : `${rel}/${n.toString('latin1')}`;
      const isDir = fs.lstatSync(abs(dir, r)).isDirectory();
      entries.push({ path: r, isDir });
      if (isDir) walk(r);
    }
  };
  walk('');
  convertMarkers(dir, entries);
}

/** The first-parent chain of `top`, bottom first. */
export function stackOf(gitdir: string, top: string): string[] {
  return git(gitdir, ['rev-list', '--first-parent', '--reverse', top]).split('\n').filter(Boolean);
}
