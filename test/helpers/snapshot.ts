/**
 * A directory as a canonical description, to compare two trees with one deep-equality assertion: for every path
 * (a byte string, latin1, '/'-separated, sorted in byte order) its kind and what matters about it:
 *
 *   dir                         (empty directories included)
 *   file 644|755 <size> <sha1>  (only the owner's executable bit counts: 755 means executable)
 *   symlink -> <target>         (the target verbatim, never followed)
 *   chardev <major>/<minor>, fifo, socket, blockdev, ...
 *
 * Symlinks are never followed, whatever they point at. A name readdir lists but lstat cannot find is left out
 * (overlayfs does that with whiteouts in a directory only one layer has).
 */
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';

export type Snapshot = Record<string, string>;

export interface SnapshotOptions {
  /** Leave out a path (and, for a directory, everything below it). `rel` is the byte-string path. */
  ignore?: (rel: string) => boolean;
}

/** The description of one path (an absolute byte path), from its lstat. */
export function describe(abs: Buffer, st: fs.Stats = fs.lstatSync(abs)): string {
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return `symlink -> ${fs.readlinkSync(abs, { encoding: 'buffer' }).toString('latin1')}`;
  if (st.isFile()) {
    const data = fs.readFileSync(abs);
    const sha = createHash('sha1').update(data).digest('hex');
    return `file ${st.mode & 0o100 ? '755' : '644'} ${data.length} ${sha}`;
  }
  const dev = `${Math.floor(st.rdev / 256) & 0xfff}/${(st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)}`;
  if (st.isCharacterDevice()) return `chardev ${dev}`;
  if (st.isBlockDevice()) return `blockdev ${dev}`;
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  return 'unknown';
}

/** Describe every path below `root` (not `root` itself). */
export function snapshot(root: string, opts: SnapshotOptions = {}): Snapshot {
  const out: Array<[string, string]> = [];
  const walk = (abs: Buffer, rel: string): void => {
    const names = fs.readdirSync(abs, { encoding: 'buffer' }).sort(Buffer.compare);
    for (const n of names) {
      const r = rel === '' ? n.toString('latin1') : `${rel}/${n.toString('latin1')}`;
      if (opts.ignore?.(r)) continue;
      const a = Buffer.concat([abs, Buffer.from('/'), n]);
      let st: fs.Stats;
      try { st = fs.lstatSync(a); } catch (e) {
        // overlayfs lists the whiteouts of a directory only one layer has (it reads that directory directly), but
        // a lookup of one finds nothing: it is not there.
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      out.push([r, describe(a, st)]);
      if (st.isDirectory()) walk(a, r);
    }
  };
  walk(Buffer.from(root, 'utf8'), '');
  out.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  return Object.fromEntries(out);
}

/** A short, readable list of the differences between two snapshots (for failure messages). */
export function snapshotDiff(a: Snapshot, b: Snapshot, labels: [string, string] = ['a', 'b'], max = 20): string {
  const lines: string[] = [];
  for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    if (a[k] === b[k]) continue;
    lines.push(`  ${JSON.stringify(k)}: ${labels[0]}=${a[k] ?? '(absent)'} | ${labels[1]}=${b[k] ?? '(absent)'}`);
    if (lines.length >= max) { lines.push('  ...'); break; }
  }
  return lines.join('\n');
}
