/**
 * Give a materialized directory (a view) the metadata of its manifest (docs/metadata.md): devices and fifos,
 * hardlinks, owners, permission bits, xattrs and mtimes, after the Materializer has written the content.
 *
 * What needs root is applied only as root: devices (left as the empty files the tree holds), owners (files stay
 * the user's), setuid and setgid bits of files (cleared), and xattrs outside `user.*` that the kernel refuses.
 * What could not be applied is counted and told once (`notApplied`); the records themselves are kept, so a
 * commit made by a user who is not root still carries them.
 *
 * Node has no mknod(2) or xattr calls: devices and fifos are made by coreutils' `mknod` and `mkfifo` under a
 * temporary name in their directory and renamed into place; xattrs go through one `setfattr --restore` (xattr.ts).
 * Every path is reached through ConfinedDir (directory fds opened without following symlinks); a child process
 * gets the same directory as /proc/PID/fd/N.
 */
import * as fs from '../sys/fs.js';
import { spawnSync } from 'node:child_process';
import { defaultMode, mtimeSeconds, type MetaRecord } from '../core/meta.js';
import { dirname, join } from '../core/path.js';
import type { TreeEntry } from '../core/tree.js';
import { IoError } from '../errors.js';
import { statOf, type Index } from './index-file.js';
import { ConfinedDir } from './safe.js';
import { writeXattrs } from './xattr.js';

/** One path to bring to its record (null: the defaults), from the record it had (null: the defaults, or new). */
export interface MetaTarget { path: string; entry: TreeEntry; record: MetaRecord | null; old: MetaRecord | null }

export interface MetaApplied {
  /** Paths given their metadata. */
  applied: number;
  /** What could not be applied, as phrases ("owners of 3 paths"), empty when everything was. */
  notApplied: string[];
}

const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;
const NOFOLLOW = fs.constants.O_NOFOLLOW ?? 0;
const NONBLOCK = fs.constants.O_NONBLOCK ?? 0;

/** The path as a child process sees it (its /proc/self is not ours), as a string (ASCII: the name is ours). */
function forChild(p: Buffer): string {
  return p.toString('latin1').replace(/^\/proc\/self\//, `/proc/${process.pid}/`);
}

let tmpCounter = 0;

export function applyMeta(root: string, index: Index, targets: readonly MetaTarget[], asRoot = IS_ROOT): MetaApplied {
  const safe = new ConfinedDir(root);
  const skipped = { owners: 0, devices: 0, setuid: 0, xattrs: 0, other: 0 };
  const touched = new Set<string>();
  const sorted = [...targets].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const checked = new Set<string>();
  const xattrs: Array<{ path: string; set: Map<string, Buffer>; remove: string[] }> = [];
  // /proc/PID/fd/N paths stay valid only while their fds are open: the batch goes before any fd is closed.
  const flushXattrs = (): void => {
    if (xattrs.length) skipped.xattrs += writeXattrs(xattrs).length;
    xattrs.length = 0;
  };
  const at = (path: string): Buffer => {
    const rel = path === '.' ? '' : path;
    const d = dirname(rel);
    if (d !== '' && !checked.has(d)) { safe.assertDir(d); checked.add(d); }
    if (safe.pendingCloses() > 0) flushXattrs();
    safe.releasePending();
    return safe.path(rel);
  };
  const tmpIn = (rel: string): { tmp: Buffer; child: string } => {
    const name = `.glayer-meta-${process.pid}-${++tmpCounter}`;
    const tmp = at(join(dirname(rel), name));
    return { tmp, child: forChild(tmp) };
  };
  const run = (cmd: string, args: string[]): void => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    if (r.error || r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.error?.message ?? r.stderr.trim()}`);
  };
  try {
    // 1. Devices and fifos in place of the empty files the tree holds (and back to a file when a record drops its type).
    for (const t of sorted) {
      const type = t.record?.type;
      if (!type && !t.old?.type) continue;
      if ((type === 'char' || type === 'block') && !asRoot) { skipped.devices++; continue; }
      const { tmp, child } = tmpIn(t.path);
      try {
        const perm = (t.record?.mode ?? 0o644).toString(8);
        if (type === 'fifo') run('mkfifo', ['-m', perm, child]);
        else if (type) run('mknod', ['-m', perm, child, type === 'char' ? 'c' : 'b', String(t.record!.dev![0]), String(t.record!.dev![1])]);
        else fs.writeFileSync(tmp, '', { flag: 'wx' });
        fs.renameSync(tmp, at(t.path));
        touched.add(t.path);
      } catch (e) {
        try { fs.unlinkSync(tmp); } catch { /* not made */ }
        if ((e as NodeJS.ErrnoException).code) throw new IoError(t.path, e as NodeJS.ErrnoException);
        skipped.other++;
      }
    }
    // 2. Hardlinks: the path becomes a second name of its group's first path.
    for (const t of sorted) {
      const link = t.record?.link;
      if (link === undefined) continue;
      const { tmp } = tmpIn(t.path);
      try {
        fs.linkSync(at(link), tmp);
        fs.renameSync(tmp, at(t.path));
      } catch (e) {
        try { fs.unlinkSync(tmp); } catch { /* not made */ }
        throw new IoError(t.path, e as NodeJS.ErrnoException);
      }
      touched.add(t.path);
      touched.add(link);
    }
    // 3. Owner first (a chown clears setuid bits), then permission bits, then xattrs.
    for (const t of sorted) {
      // A second name of a file has the file's metadata: its group's first path has the record that counts.
      if (t.record?.link !== undefined) continue;
      const r = t.record ?? {};
      const p = at(t.path);
      const symlink = t.entry.mode === '120000';
      const uid = r.uid ?? 0;
      const gid = r.gid ?? 0;
      if (asRoot) fs.lchownSync(p, uid, gid);
      else if (uid !== 0 || gid !== 0) skipped.owners++;
      if (!symlink) {
        let mode = r.mode ?? defaultMode(t.entry.mode);
        if (!asRoot && (mode & 0o6000) && t.entry.mode !== '40000') { mode &= ~0o6000; skipped.setuid++; }
        const special = r.type !== undefined;
        if (special) { if (r.type === 'fifo' || asRoot) fs.chmodSync(p, mode); }
        else {
          // Through an fd opened without following links (a fifo would block an ordinary open).
          const fd = fs.openSync(p, fs.constants.O_RDONLY | NOFOLLOW | NONBLOCK);
          try { fs.fchmodSync(fd, mode); } finally { fs.closeSync(fd); }
        }
      }
      const set = r.xattrs ?? new Map<string, Buffer>();
      const remove = [...(t.old?.xattrs?.keys() ?? [])].filter((k) => !set.has(k));
      if (set.size || remove.length) xattrs.push({ path: forChild(p), set, remove });
      touched.add(t.path);
    }
    flushXattrs();
    // 4. mtimes last: linking and making devices changed their directories' mtimes.
    for (const t of sorted) {
      const m = t.record?.mtime;
      if (m === undefined || t.record?.link !== undefined) continue;
      const s = mtimeSeconds(m);
      fs.lutimesSync(at(t.path), s, s);
    }
    // The index keeps what the view now holds, so the next scan sees none of this as an edit.
    for (const rel of touched) {
      const e = index.get(rel);
      if (!e) continue;
      index.set(rel, { ...e, stat: statOf(fs.lstatSync(at(rel))) });
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code && !(e instanceof IoError)) throw new IoError(root, e as NodeJS.ErrnoException);
    throw e;
  } finally {
    safe.close();
  }
  const notApplied: string[] = [];
  const n = (k: number, one: string, many: string): void => { if (k) notApplied.push(`${k} ${k === 1 ? one : many}`); };
  n(skipped.owners, 'owner', 'owners');
  n(skipped.devices, 'device (left as an empty file)', 'devices (left as empty files)');
  n(skipped.setuid, 'setuid/setgid bit', 'setuid/setgid bits');
  n(skipped.xattrs, 'path with xattrs', 'paths with xattrs');
  n(skipped.other, 'special file', 'special files');
  return { applied: touched.size, notApplied };
}
