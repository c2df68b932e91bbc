/**
 * The view's metadata, as the user left it: the manifest the view had at the last reconcile (V0m, saved with the
 * view's index), updated for the entries the scan had to look at again (their ctime changed: a chmod, chown,
 * `touch`, setfattr or `ln` changes it, as does any write) and for what was removed.
 *
 * Field by field, an entry still on the same inode keeps its recorded value unless the view's value differs from
 * the one last seen (so a setuid bit or an owner that could not be applied without root is not lost); a new
 * file takes what the view shows. Rules (docs/metadata.md, "In the view"):
 * - mtime is recorded only for a file whose content did not change (`touch -m`, `touch -d`); a write drops it,
 *   and a directory's mtime is never read from the view (adding a file changes it);
 * - owners are read only when glayer runs as root (otherwise the view's files are the user's own, and the
 *   records keep the owners they had);
 * - xattrs are read (getfattr, xattr.ts) for new entries and for entries whose metadata changed without their
 *   content; a file edited in place keeps its recorded xattrs (as overlayfs's copy-up keeps them);
 * - hardlinks are the entries of the view that share an inode (the group's first path in byte order is `link=`).
 */
import * as fs from '../sys/fs.js';
import { formatMtime, normalizeRecord, sameRecord, type Manifest, type MetaRecord } from '../core/meta.js';
import { dirname } from '../core/path.js';
import { lookup, type Mode, type TreeSource } from '../core/tree.js';
import type { Change } from '../core/changes.js';
import { fsPath } from './paths.js';
import type { Observed } from './scan.js';
import { readXattrs } from './xattr.js';

const S_IFMT = 0o170000;
const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFDIR = 0o040000;

export const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;

/** Linux's dev_t split (glibc's gnu_dev_major/minor). */
function devOf(rdev: number): [number, number] {
  const r = BigInt(rdev);
  const major = Number(((r >> 8n) & 0xfffn) | ((r >> 32n) & ~0xfffn));
  const minor = Number((r & 0xffn) | ((r >> 12n) & ~0xffn));
  return [major, minor];
}

export interface ViewManifest {
  manifest: Manifest;
  /** Paths whose record the view changed (or dropped). */
  changed: Set<string>;
}

/**
 * V1m from V0m: `observed` from the view's scan (meta: true), `dV` the tree changes from V0 to V1 (for removals).
 * Returns V0m itself when nothing changed.
 */
export function observeView(
  root: string, src: TreeSource, v0m: Manifest, v1: string, observed: ReadonlyMap<string, Observed>, dV: readonly Change[], owners = IS_ROOT,
): ViewManifest {
  const changed = new Set<string>();
  // Removed paths lose their records, and so does everything below a path whose kind changed (an observed
  // path gets its own record below).
  let out: Manifest = v0m;
  const own = (): Manifest => (out === v0m ? (out = new Map(v0m)) : out);
  const dropSelf = new Set<string>();
  const dropBelow = new Set<string>();
  for (const c of dV) {
    if (!c.old) continue;
    if (!c.new) dropSelf.add(c.path);
    else if ((c.old.mode === '40000') !== (c.new.mode === '40000')) dropBelow.add(c.path);
  }
  if ((dropSelf.size || dropBelow.size) && v0m.size) {
    for (const p of v0m.keys()) {
      let drop = dropSelf.has(p);
      for (let a = dirname(p); !drop && p !== '.'; a = dirname(a)) {
        if (dropSelf.has(a) || dropBelow.has(a)) drop = true;
        if (a === '') break;
      }
      if (drop) { own().delete(p); changed.add(p); }
    }
  }
  if (observed.size === 0) return { manifest: out, changed };
  const records = new Map<string, MetaRecord>();
  const modes = new Map<string, Mode>();
  const readAttrs: string[] = [];
  const groups = new Map<number, string[]>();
  const mtimes: string[] = [];
  for (const [rel, o] of observed) {
    const entry = lookup(src, v1, rel);
    if (!entry) continue;
    const { stat, prev } = o;
    const same = prev !== null && prev.ino === stat.ino && (prev.mode & S_IFMT) === (stat.mode & S_IFMT);
    const base = same ? v0m.get(rel) ?? {} : {};
    const sameContent = same && o.prevOid === entry.oid;
    const r: MetaRecord = {};
    const fmt = stat.mode & S_IFMT;
    if (fmt === S_IFIFO) r.type = 'fifo';
    else if (fmt === S_IFCHR || fmt === S_IFBLK) { r.type = fmt === S_IFCHR ? 'char' : 'block'; r.dev = devOf(o.rdev); }
    else if (same && base.type) { r.type = base.type; if (base.dev) r.dev = base.dev; }
    const perm = stat.mode & 0o7777;
    r.mode = same && (prev!.mode & 0o7777) === perm ? base.mode : perm;
    if (owners) {
      r.uid = same && prev!.uid === stat.uid ? base.uid : stat.uid;
      r.gid = same && prev!.gid === stat.gid ? base.gid : stat.gid;
    } else {
      const old = v0m.get(rel);
      r.uid = old?.uid;
      r.gid = old?.gid;
    }
    if (fmt === S_IFDIR) r.mtime = same ? base.mtime : undefined;
    else if (sameContent && prev!.mtime === stat.mtime) r.mtime = base.mtime;
    else if (sameContent) mtimes.push(rel);
    if (same && !sameContent) { if (base.xattrs) r.xattrs = base.xattrs; }
    else if (entry.mode !== '120000') readAttrs.push(rel);
    if (o.nlink > 1 && fmt !== S_IFDIR) {
      const g = groups.get(stat.ino);
      if (g) g.push(rel); else groups.set(stat.ino, [rel]);
    }
    records.set(rel, r);
    modes.set(rel, entry.mode);
  }
  for (const rel of mtimes) {
    const st = fs.lstatSync(fsPath(root, rel), { bigint: true, throwIfNoEntry: false });
    if (st) records.get(rel)!.mtime = formatMtime(Number(st.mtimeNs / 1_000_000_000n), Number(st.mtimeNs % 1_000_000_000n));
  }
  if (readAttrs.length) {
    const byAbs = new Map(readAttrs.map((rel) => [Buffer.concat([Buffer.from(root, 'utf8'), Buffer.from('/' + rel, 'latin1')]).toString('latin1'), rel]));
    for (const [abs, attrs] of readXattrs([...byAbs.keys()])) {
      const rel = byAbs.get(abs);
      if (rel !== undefined) records.get(rel)!.xattrs = attrs;
    }
  }
  for (const members of groups.values()) {
    if (members.length < 2) continue;
    members.sort();
    for (const m of members.slice(1)) records.get(m)!.link = members[0];
  }
  for (const [rel, r] of records) {
    const n = normalizeRecord(r, modes.get(rel)!);
    const old = out.get(rel);
    if (n === null) { if (old) { own().delete(rel); changed.add(rel); } continue; }
    if (!old || !sameRecord(old, n)) { own().set(rel, n); changed.add(rel); }
  }
  // A link whose first path is not in the view any more is no link.
  if (changed.size) {
    for (const [p, r] of out) {
      if (r.link === undefined || lookup(src, v1, r.link)) continue;
      const { link: _, ...rest } = r;
      const n = normalizeRecord(rest, lookup(src, v1, p)?.mode ?? '100644');
      if (n) own().set(p, n); else own().delete(p);
      changed.add(p);
    }
  }
  return { manifest: out, changed };
}
