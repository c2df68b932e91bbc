/**
 * Verifying the layer cache (`glayer fsck`). An entry appears by one rename of a complete extraction (cache.ts),
 * so a mount uses one that exists without reading it; what can still be wrong with it is a change made after
 * that rename: a lower directory edited by hand, a damaged disk, a file removed by a cleaner. fsck extracts each
 * entry that a mount of some stack would use again, into cache/tmp/, and compares the two trees: the names, each
 * entry's kind, permission bits, owner and group, a file's bytes, a symlink's target, a device's numbers, the
 * xattrs (the kernel's opaque markers included), and the mtimes that the extraction set from a record (the other
 * files have the time they were written). An entry that differs is replaced by the new extraction, by two renames,
 * unless a live view uses it now: a lower directory must not change under a mount, so that one is reported.
 *
 * Names are compared in byte order (the directories are read as byte strings, core/path.ts).
 */
import * as fs from '../sys/fs.js';
import { join } from 'node:path';
import { display } from '../errors.js';
import { fsPath } from '../fs/paths.js';
import { readXattrs } from '../fs/xattr.js';
import type { Store } from '../store/store.js';
import { cacheEntries, cacheRoot, plannedEntries } from './cache.js';

/** Differences listed per entry (the first ones in byte order). */
const SHOWN = 5;
/** Bytes compared at a time. */
const CHUNK = 1 << 20;

export interface CacheVerdict {
  /** `kind/key` (cache.ts). */
  entry: string;
  /** The first differences, one phrase each (`etc/passwd: the bytes differ`). */
  differences: string[];
  /** A live view uses it: left as it is. */
  inUse: boolean;
  /** Replaced by the new extraction. */
  replaced: boolean;
}

export interface CacheCheck {
  /** Entries compared with a new extraction. */
  checked: number;
  /** The ones that differed. */
  bad: CacheVerdict[];
}

/**
 * Compare each entry present that a mount of a stack top in `tops` uses with a new extraction of it; replace
 * those that differ (`repair`) unless `inUse` (`kind/key` names of live mounts' lower directories) names them.
 */
export async function verifyCache(store: Store, stateDir: string, tops: Iterable<string>, inUse: ReadonlySet<string>, repair: boolean): Promise<CacheCheck> {
  const root = cacheRoot(stateDir);
  const present = new Set(cacheEntries(stateDir));
  const out: CacheCheck = { checked: 0, bad: [] };
  const planned = [...plannedEntries(store, stateDir, tops)].filter(([rel]) => present.has(rel));
  if (planned.length === 0) return out;
  fs.mkdirSync(join(root, 'tmp'), { recursive: true });
  for (const [rel, e] of planned) {
    const fresh = join(root, 'tmp', `${process.pid}-verify-${e.kind}-${e.key}`);
    removeTree(fresh);
    fs.mkdirSync(fresh);
    try {
      const since = Date.now() - 1000;
      await e.fill(fresh);
      out.checked++;
      const differences = compareTrees(join(root, rel), fresh, since);
      if (differences.length === 0) continue;
      const verdict: CacheVerdict = { entry: rel, differences, inUse: inUse.has(rel), replaced: false };
      out.bad.push(verdict);
      if (!repair || verdict.inUse) continue;
      const old = join(root, 'tmp', `${process.pid}-bad-${e.kind}-${e.key}`);
      fs.renameSync(join(root, rel), old);
      fs.renameSync(fresh, join(root, rel));
      verdict.replaced = true;
      removeTree(old);
    } finally {
      removeTree(fresh);
    }
  }
  return out;
}

/** What cannot be removed now (made read-only by a record, without root) is left in tmp/ for the next fsck. */
function removeTree(dir: string): void {
  try { fs.rmSync(dir, { recursive: true, force: true }); } catch { /* left in tmp/ */ }
}

type Kind = 'file' | 'directory' | 'symlink' | 'character device' | 'block device' | 'fifo' | 'socket';

function kindOf(st: fs.BigIntStats): Kind {
  return st.isFile() ? 'file' : st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : st.isCharacterDevice() ? 'character device'
    : st.isBlockDevice() ? 'block device' : st.isFIFO() ? 'fifo' : 'socket';
}

/** Names in a directory as byte strings, sorted in byte order. */
function names(dir: Buffer): string[] {
  return (fs.readdirSync(dir, { encoding: 'buffer' }) as Buffer[]).map((b) => b.toString('latin1')).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
}

/** The differences of the tree at `cached` from the one at `fresh` (extracted from `since` on), at most SHOWN. */
export function compareTrees(cached: string, fresh: string, since: number): string[] {
  const diffs: string[] = [];
  // The two read buffers of sameBytes, made once for the whole tree.
  const bufs: [Buffer, Buffer] = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
  const both: string[] = [];
  const say = (rel: string, what: string): void => { if (diffs.length < SHOWN) diffs.push(`${rel === '' ? '.' : display(rel)}: ${what}`); };
  const walk = (rel: string): void => {
    const a = names(fsPath(cached, rel));
    const b = names(fsPath(fresh, rel));
    let i = 0;
    let j = 0;
    while ((i < a.length || j < b.length) && diffs.length < SHOWN) {
      const x = a[i];
      const y = b[j];
      if (j >= b.length || (i < a.length && x < y)) { say(rel ? `${rel}/${x}` : x, 'not in the layer'); i++; continue; }
      if (i >= a.length || y < x) { say(rel ? `${rel}/${y}` : y, 'missing'); j++; continue; }
      i++; j++;
      const p = rel ? `${rel}/${x}` : x;
      const sa = fs.lstatSync(fsPath(cached, p), { bigint: true });
      const sb = fs.lstatSync(fsPath(fresh, p), { bigint: true });
      const ka = kindOf(sa);
      const kb = kindOf(sb);
      if (ka !== kb) { say(p, `a ${ka}, the layer gives a ${kb}`); continue; }
      both.push(p);
      if (ka !== 'symlink' && (sa.mode & 0o7777n) !== (sb.mode & 0o7777n)) say(p, `mode ${(sa.mode & 0o7777n).toString(8)}, the layer gives ${(sb.mode & 0o7777n).toString(8)}`);
      if (sa.uid !== sb.uid || sa.gid !== sb.gid) say(p, `owner ${sa.uid}:${sa.gid}, the layer gives ${sb.uid}:${sb.gid}`);
      if (ka === 'directory') { walk(p); continue; }
      if (ka === 'symlink') {
        if (!fs.readlinkSync(fsPath(cached, p), { encoding: 'buffer' }).equals(fs.readlinkSync(fsPath(fresh, p), { encoding: 'buffer' }))) say(p, 'the symlink\'s target differs');
        continue;
      }
      if (ka === 'character device' || ka === 'block device') { if (sa.rdev !== sb.rdev) say(p, 'the device numbers differ'); continue; }
      if (ka === 'file') {
        if (sa.size !== sb.size) say(p, `${sa.size} bytes, the layer gives ${sb.size}`);
        else if (!sameBytes(fsPath(cached, p), fsPath(fresh, p), bufs)) say(p, 'the bytes differ');
      }
      // A time the extraction set from a record (not the time it wrote the file).
      const set = sb.mtimeMs < BigInt(since);
      const d = sa.mtimeNs > sb.mtimeNs ? sa.mtimeNs - sb.mtimeNs : sb.mtimeNs - sa.mtimeNs;
      if (set && d > 2000n) say(p, 'the mtime differs');
    }
  };
  walk('');
  if (diffs.length < SHOWN && both.length) {
    const abs = (root: string, rel: string): string => fsPath(root, rel).toString('latin1');
    const xa = readXattrs(both.map((p) => abs(cached, p)));
    const xb = readXattrs(both.map((p) => abs(fresh, p)));
    for (const p of both) {
      const ma = xa.get(abs(cached, p)) ?? new Map<string, Buffer>();
      const mb = xb.get(abs(fresh, p)) ?? new Map<string, Buffer>();
      const keys = new Set([...ma.keys(), ...mb.keys()]);
      for (const k of [...keys].sort()) {
        const va = ma.get(k);
        const vb = mb.get(k);
        if (!va) say(p, `xattr ${k} is missing`);
        else if (!vb) say(p, `xattr ${k} is not in the layer`);
        else if (!va.equals(vb)) say(p, `xattr ${k} differs`);
      }
    }
  }
  return diffs;
}

function sameBytes(a: Buffer, b: Buffer, [ba, bb]: [Buffer, Buffer]): boolean {
  const fa = fs.openSync(a, 'r');
  try {
    const fb = fs.openSync(b, 'r');
    try {
      for (;;) {
        const na = fs.readSync(fa, ba, 0, CHUNK, null);
        const nb = fs.readSync(fb, bb, 0, CHUNK, null);
        if (na !== nb || !ba.subarray(0, na).equals(bb.subarray(0, nb))) return false;
        if (na === 0) return true;
      }
    } finally {
      fs.closeSync(fb);
    }
  } finally {
    fs.closeSync(fa);
  }
}
