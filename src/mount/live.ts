/**
 * Mounting and unmounting a workspace's live view: the stack's cached lower directories (cache.ts) under the
 * writable layer (`upper/`, the mount's upper directory), at the view's target.
 *
 * Never half made: the mount itself is one system call (the kernel) or a daemon that detaches once the mount is
 * in place (fuse-overlayfs), so a target is either mounted, complete, or not. The workspace state names the
 * mount's work directory before the mount is made, so a kill between the two leaves a record of a mount that is
 * not there (the next `mount-view` makes it) or a mount that is recorded; `glayer fsck` unmounts any mount with
 * one of this workspace's work directories that the state does not name, and removes work directories and
 * retired upper directories nobody uses.
 *
 *   .glayer/glayer/live/work-PID-N     a mount's work directory (kernel: same file system as upper/)
 *   .glayer/glayer/live/retired-PID-N  the upper directory of a view a commit replaced, removed right after
 */
import * as fs from '../sys/fs.js';
import { join } from 'node:path';
import { GlayerError, TargetNotEmptyError, UnsafePathError } from '../errors.js';
import { Index, indexPath, saveIndex } from '../fs/index-file.js';
import { withDeepPath } from '../fs/paths.js';
import type { BlobFile } from '../api/sync.js';
import type { Store } from '../store/store.js';
import type { ObjectWriter } from '../store/objects.js';
import { alive, type LiveState, type State, type Workspace } from '../workspace/workspace.js';
import { type Backend, type BackendName } from './backend.js';
import { lowersFor, StoreBlobs } from './cache.js';
import { fuseBackend } from './fuse.js';
import { kernelBackend } from './kernel.js';
import { listMounts, mountsAt } from './mountinfo.js';
import { realizeUpperManifest, upperToKernelForm, upperToWhForm } from './upper.js';

export const BACKENDS: Record<BackendName, Backend> = { kernel: kernelBackend, fuse: fuseBackend };

/** The backend to use: `want`, else the kernel when the process may mount, else fuse-overlayfs. */
export function chooseBackend(want?: BackendName): Backend {
  if (want) {
    const b = BACKENDS[want];
    if (!b) throw new GlayerError('E_USAGE', `unknown backend '${want}' (kernel or fuse)`, { backend: want });
    const why = b.unavailable();
    if (why) throw new GlayerError('E_MOUNT_UNAVAILABLE', `cannot mount a live view with the ${want} backend: ${why}`, { backend: want, reason: why });
    return b;
  }
  const k = kernelBackend.unavailable();
  if (k === null) return kernelBackend;
  const f = fuseBackend.unavailable();
  if (f === null) return fuseBackend;
  throw new GlayerError('E_MOUNT_UNAVAILABLE', `cannot mount a live view: ${k}, and ${f}; plain 'glayer mount-view' (a copy) still works`, { kernel: k, fuse: f });
}

export function liveDir(ws: Workspace): string {
  return join(ws.stateDir, 'live');
}

/** The live mount at `target` that belongs to this workspace (by its work directory), if any. */
export function liveMountAt(ws: Workspace, target: string, live: LiveState | null | undefined): { backend: Backend } | null {
  const here = mountsAt(target);
  if (here.length === 0) return null;
  for (const m of here.reverse()) {
    if (kernelBackend.owns(m.fstype) && m.options.includes(`workdir=${liveDir(ws)}/`)) return { backend: kernelBackend };
    if (fuseBackend.owns(m.fstype)) {
      const f = fuseTargets(ws).get(target);
      if (f !== undefined || (live && live.backend === 'fuse')) return { backend: fuseBackend };
    }
  }
  return null;
}

/** Targets of fuse-overlayfs processes that use one of this workspace's work directories. */
function fuseTargets(ws: Workspace): Map<string, number> {
  const out = new Map<string, number>();
  let pids: string[] = [];
  try { pids = fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n)); } catch { return out; }
  const mark = `workdir=${liveDir(ws)}/`;
  for (const pid of pids) {
    let argv: string[];
    try { argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean); } catch { continue; }
    if (!argv.length || !argv[0].endsWith('fuse-overlayfs') || !argv.some((a) => a.includes(mark))) continue;
    out.set(argv[argv.length - 1], Number(pid));
  }
  return out;
}

/** Every mount of this workspace's live views (by their work directories), wherever they are. */
export function ourMounts(ws: Workspace): Array<{ target: string; backend: Backend }> {
  const out: Array<{ target: string; backend: Backend }> = [];
  const fuse = fuseTargets(ws);
  for (const m of listMounts()) {
    if (kernelBackend.owns(m.fstype) && m.options.includes(`workdir=${liveDir(ws)}/`)) out.push({ target: m.target, backend: kernelBackend });
    else if (fuseBackend.owns(m.fstype) && fuse.has(m.target)) out.push({ target: m.target, backend: fuseBackend });
  }
  return out;
}

export interface LiveMount {
  backend: BackendName;
  /** Lower directories mounted (a flattened bottom counts as one). */
  lowers: number;
  /** Cache entries extracted for this mount (0: the cache was warm). */
  extracted: number;
}

/**
 * Mount the stack `head` with the workspace's upper directory at `target` (an empty directory, not mounted).
 * Writes the state (view: target, live) before mounting; on failure restores `state` and removes the work dir.
 */
export async function mountLive(ws: Workspace, state: State, target: string, backend: Backend, head: string | null): Promise<LiveMount> {
  const lowers = await lowersFor(ws.store, ws.sharedDir, head, backend.form);
  fs.mkdirSync(ws.upper, { recursive: true });
  // A live upper directory keeps its metadata as its entries' own (a copied view's writable layer, as a manifest).
  await realizeUpperManifest(ws.upper, ws.store, head, new StoreBlobs(ws.store), lowers.dirs.map((d) => join(lowers.cwd, d)));
  // The kernel shows a `.wh.` file in its upper directory as a file: give it its own form first.
  if (backend.form === 'k') upperToKernelForm(ws.upper);
  const dir = liveDir(ws);
  fs.mkdirSync(dir, { recursive: true });
  const work = join(dir, `work-${process.pid}-${Date.now()}`);
  fs.mkdirSync(work);
  const before = { ...state };
  ws.writeState({ ...state, view: target, live: { backend: backend.name, head, work, lowers: lowers.dirs.map((d) => join(lowers.cwd, d)) } });
  try {
    backend.mount({ cwd: lowers.cwd, lowers: lowers.dirs, upper: ws.upper, work, target });
  } catch (e) {
    ws.writeState(before);
    rmWork(work);
    throw e;
  }
  return { backend: backend.name, lowers: lowers.dirs.length, extracted: lowers.extracted };
}

/**
 * Unmount the live view at `target` if it is mounted (`lazy`: detach it at once, letting processes that hold
 * files in it keep them; else a busy mount is detached lazily too, with a warning) and remove its work dir.
 */
export function unmountLive(ws: Workspace, target: string, live: LiveState | null | undefined, warnings: string[], lazy = false): void {
  for (let m = liveMountAt(ws, target, live), n = 0; m && n < 8; m = liveMountAt(ws, target, live), n++) {
    try {
      m.backend.umount(target, lazy);
    } catch (e) {
      if (lazy) throw e;
      warnings.push(`the live view ${target} is busy; detached it (processes using it keep the old view)`);
      m.backend.umount(target, true);
    }
  }
  if (live) rmWork(live.work);
}

/** Remove a work directory (the kernel leaves a `work/` inside it owned by root with mode 000). */
export function rmWork(work: string): void {
  try { fs.rmSync(work, { recursive: true, force: true }); } catch { /* fsck removes it later */ }
}

/**
 * After `glayer umount`: the upper directory back in the `.wh.` form that the copy mode (and every layer) uses.
 */
export function upperAfterUmount(ws: Workspace, store: Store): void {
  upperToWhForm(ws.upper, store.objects);
}

/** Work and retired directories of live views that no mount and no live process uses. */
export function staleLiveDirs(ws: Workspace, state: State): string[] {
  const dir = liveDir(ws);
  let names: string[] = [];
  try { names = fs.readdirSync(dir); } catch { return []; }
  const out: string[] = [];
  const used = new Set<string>();
  if (state.live) used.add(state.live.work);
  for (const name of names) {
    const m = /^(work|retired)-(\d+)-\d+$/.exec(name);
    if (!m) continue;
    const p = join(dir, name);
    if (used.has(p)) continue;
    if (m[1] === 'work' && ourMountsUsing(ws, p)) continue;
    if (alive(Number(m[2])) && Number(m[2]) !== process.pid) continue;
    out.push(p);
  }
  return out;
}

function ourMountsUsing(ws: Workspace, work: string): boolean {
  if (listMounts().some((m) => m.options.includes(`workdir=${work},`) || m.options.endsWith(`workdir=${work}`))) return true;
  for (const pid of fuseTargets(ws).values()) {
    try { if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`workdir=${work}`)) return true; } catch { /* gone */ }
  }
  return false;
}

/** Move the upper directory aside (a detached mount may still use it), make an empty one, remove the old. */
export function emptyUpper(ws: Workspace): void {
  const retired = join(liveDir(ws), `retired-${process.pid}-${Date.now()}`);
  fs.mkdirSync(liveDir(ws), { recursive: true });
  try { fs.renameSync(ws.upper, retired); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; }
  fs.mkdirSync(ws.upper, { recursive: true });
  saveIndex(indexPath(ws.gitdir, 'upper-live'), ws.store.objects, null, new Index());
  rmWork(retired);
}

/** A view target for a live mount: absent (made), an empty directory, or this workspace's live mount. */
export function prepareTarget(ws: Workspace, target: string, force: boolean): void {
  let st: fs.Stats | null = null;
  try { st = fs.lstatSync(target); } catch { /* absent */ }
  if (st && st.isSymbolicLink()) throw new UnsafePathError(target, 'the view target is a symlink');
  if (st && !st.isDirectory()) throw new UnsafePathError(target, 'the view target exists and is not a directory');
  if (!st) fs.mkdirSync(target, { recursive: true });
  else if (liveMountAt(ws, target, null) === null && fs.readdirSync(target).length > 0 && !force) throw new TargetNotEmptyError(target);
}

export function samePath(a: string, b: string): boolean {
  try { return fs.realpathSync(a) === fs.realpathSync(b); } catch { return a === b; }
}

/** Remove everything inside `dir` (a copied view whose content is all in the stack and the writable layer). */
export function emptyDir(dir: string): void {
  for (const name of fs.readdirSync(dir, { encoding: 'buffer' })) {
    fs.rmSync(Buffer.concat([Buffer.from(dir + '/'), name]), { recursive: true, force: true });
  }
}

/** Add the blob a file of the upper directory holds to a pack writer; returns its id. */
export async function addFile(w: ObjectWriter, src: BlobFile, oid: string): Promise<string> {
  return withDeepPath(src.root, src.rel, (p) => src.link
    ? w.add('blob', fs.readlinkSync(p, { encoding: 'buffer' }))
    : w.addFile(p, fs.lstatSync(p).size, oid));
}
