/**
 * Make a directory hold a tree: apply the changes between what it holds and what it should hold, writing only
 * the paths that differ. Removals never follow a symlink (a link is removed, not what it points to), and a
 * parent directory is checked to be a real directory before anything is written into it, so a layer's symlink
 * cannot carry a write outside the root.
 */
import * as fs from 'node:fs';
import type { Change } from '../core/changes.js';
import { dirname } from '../core/path.js';
import { walkTree, type Mode, type TreeSource } from '../core/tree.js';
import { UnsafePathError, IoError } from '../errors.js';
import type { Index } from './index-file.js';
import { fsPath } from './paths.js';

/** Where blob contents come from (the store, or a file known to hold them). */
export interface BlobSource {
  /** Create `dest` (which must not exist) as a regular file holding blob `oid`. */
  writeFile(oid: string, dest: Buffer, mode: number): Promise<void> | void;
  /** The bytes of a blob (a symlink target). */
  read(oid: string): Buffer;
}

export interface MaterializeProgress { done: number; total: number }

function fileMode(mode: Mode): number {
  return mode === '100755' ? 0o755 : 0o644;
}

export class Materializer {
  private readonly checked = new Set<string>();
  written = 0;

  constructor(
    private readonly root: string,
    private readonly src: TreeSource,
    private readonly blobs: BlobSource,
    private readonly index: Index,
    private readonly onProgress?: (p: MaterializeProgress) => void,
  ) {}

  /** Apply top-most changes (from diffTrees of what is there to what should be). */
  async apply(changes: readonly Change[]): Promise<void> {
    const total = changes.length;
    let done = 0;
    for (const c of changes) {
      if (c.old) this.remove(c.path, c.old.mode === '40000' ? c.old.oid : null);
      if (c.new) {
        if (c.new.mode === '40000') await this.writeDir(c.path, c.new.oid);
        else await this.writeEntry(c.path, c.new.mode, c.new.oid);
      }
      done++;
      if (this.onProgress && (done % 500 === 0 || done === total)) this.onProgress({ done, total });
    }
  }

  /** Make sure the directory `rel` is a real directory under root (not a symlink), once per run. */
  private checkDir(rel: string): void {
    if (rel === '' || this.checked.has(rel)) return;
    this.checkDir(dirname(rel));
    let st: fs.Stats;
    try { st = fs.lstatSync(fsPath(this.root, rel)); } catch (e) { throw new IoError(rel, e as NodeJS.ErrnoException); }
    if (!st.isDirectory()) throw new UnsafePathError(rel, st.isSymbolicLink() ? 'a symlink stands where a directory should be' : 'not a directory');
    this.checked.add(rel);
  }

  private remove(rel: string, dirTree: string | null): void {
    this.checkDir(dirname(rel));
    const abs = fsPath(this.root, rel);
    try {
      fs.rmSync(abs, { recursive: true, force: true });
    } catch (e) {
      throw new IoError(rel, e as NodeJS.ErrnoException);
    }
    this.checked.delete(rel);
    this.index.delete(rel);
    if (dirTree) for (const { path } of walkTree(this.src, dirTree, rel)) { this.index.delete(path); this.checked.delete(path); }
  }

  private async writeDir(rel: string, tree: string): Promise<void> {
    this.checkDir(dirname(rel));
    this.mkdir(rel);
    for (const { path, entry } of walkTree(this.src, tree, rel)) {
      if (entry.mode === '40000') this.mkdir(path);
      else await this.writeEntry(path, entry.mode, entry.oid, true);
    }
  }

  private mkdir(rel: string): void {
    const abs = fsPath(this.root, rel);
    try { fs.mkdirSync(abs, { mode: 0o755 }); } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new IoError(rel, e as NodeJS.ErrnoException);
      // Something is already there: only a real directory will do.
      if (!fs.lstatSync(abs).isDirectory()) throw new UnsafePathError(rel, 'exists and is not a directory');
    }
    this.checked.add(rel);
    this.record(rel, '40000', '', abs);
  }

  private async writeEntry(rel: string, mode: Mode, oid: string, parentChecked = false): Promise<void> {
    if (!parentChecked) this.checkDir(dirname(rel));
    const abs = fsPath(this.root, rel);
    try {
      if (mode === '120000') fs.symlinkSync(this.blobs.read(oid), abs);
      else if (mode === '160000') throw new UnsafePathError(rel, 'submodule entries are not layer content');
      else {
        await this.blobs.writeFile(oid, abs, fileMode(mode));
        // The umask may have cleared bits we need; set them exactly.
        fs.chmodSync(abs, fileMode(mode));
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code && !(e instanceof IoError)) throw new IoError(rel, e as NodeJS.ErrnoException);
      throw e;
    }
    this.written++;
    this.record(rel, mode, oid, abs);
  }

  private record(rel: string, mode: Mode, oid: string, abs: Buffer): void {
    const st = fs.lstatSync(abs);
    // We wrote this content ourselves; saveIndex marks it racy if it is too recent when the index is saved.
    this.index.set(rel, { mode, oid, stat: { mtime: st.mtimeMs, ctime: st.ctimeMs, size: st.size, ino: st.ino }, racy: false });
  }
}
