/**
 * `fsck`: check a workspace and repair what can be repaired without judgement.
 *
 * Checks: the stack ref (HEAD names a branch; the branch names a commit), every object reachable from the stack
 * (read in full; hashes verified, blobs included), every layer by the union rules, the writable layer (valid
 * markers, a real directory), and the view's index against the view (edits not yet recorded are reported, not
 * problems), and the layer cache of live views (each entry compared with a new extraction, mount/verify.ts).
 *
 * Repairs, only for leftovers of a glayer process that is gone (it holds the workspace lock while it works, so
 * fsck takes that lock first): a stale workspace lock (its pid is dead), staging and trash directories of an
 * interrupted mount-view (`.<name>.glayer-staging-<pid>`, `.<name>.glayer-old-<pid>`; a target left missing
 * between the two renames gets its old contents back), temporary object and pack files (`tmp_obj_<pid>_*`,
 * `tmp_pack_<pid>_*`, `tmp_idx_<pid>_*`), ref lock files no process holds open, and temporary state and index
 * files; and a layer-cache entry that differs from its layer, replaced by the new extraction unless a live view uses
 * it. Nothing in the view, the writable layer or the objects is ever changed.
 */
import * as fs from '../sys/fs.js';
import { dirname, join } from 'node:path';
import { diffTrees } from '../core/changes.js';
import { hashObject } from '../core/hash.js';
import { EMPTY_TREE, type TreeEntry } from '../core/tree.js';
import { applyLayer } from '../core/union.js';
import { GlayerError, InvalidLayerError, display } from '../errors.js';
import { indexPath, loadIndex } from '../fs/index-file.js';
import { scanTree } from '../fs/scan.js';
import { readRef, readSymbolicHead } from '../store/refs.js';
import { Workspace, alive, lockHolder } from '../workspace/workspace.js';
import type { WorkspaceOptions } from './types.js';
import { staleExtractions } from '../mount/cache.js';
import { verifyCache } from '../mount/verify.js';
import { cacheUse } from './gc.js';
import { liveMountAt, ourMounts, rmWork, staleLiveDirs } from '../mount/live.js';
import { readLiveUpper } from '../mount/upper.js';

export interface FsckProblem {
  /** What was checked: objects, layer, stack, upper, view, index. */
  area: string;
  message: string;
}

export interface FsckResult {
  /** True when no problem remains (repairs do not count as problems). */
  ok: boolean;
  problems: FsckProblem[];
  /** What fsck repaired, one line each. */
  repaired: string[];
  /** Notes that need no repair (e.g. view edits not yet recorded). */
  notes: string[];
  /** Layer-cache entries are compared with a new extraction of their layer (mount/verify.ts). */
  checked: { layers: number; objects: number; cacheEntries: number };
}

export interface FsckOptions extends WorkspaceOptions {
  /** Only check; repair nothing. */
  dryRun?: boolean;
}

export async function fsck(opts: FsckOptions = {}): Promise<FsckResult> {
  const ws = Workspace.find(opts.cwd ?? process.cwd());
  const result: FsckResult = { ok: true, problems: [], repaired: [], notes: [], checked: { layers: 0, objects: 0, cacheEntries: 0 } };
  const problem = (area: string, message: string): void => { result.problems.push({ area, message }); };
  const repair = (what: string, action: () => void): void => {
    if (opts.dryRun) { result.notes.push(`would repair: ${what}`); return; }
    try { action(); result.repaired.push(what); } catch (e) { problem('repair', `could not repair (${what}): ${(e as Error).message}`); }
  };
  try {
    const lockFile = join(ws.stateDir, 'lock');
    const holder = lockHolder(lockFile);
    if (holder !== null && !alive(holder)) result.repaired.push(`removed a stale workspace lock (pid ${holder} is gone)`);
    if (opts.dryRun) {
      // Only reading: a store that cannot be written (read-only, another user's) is checked without the lock.
      const refused = await ws.lockIfWritable();
      if (refused !== null) result.notes.push(`checked without the workspace lock: ${refused}`);
    } else await ws.lock();
    const state = ws.readState();

    repairLeftovers(ws, state.view, repair);
    repairLive(ws, state, repair, result.notes);
    await verifyLayerCache(ws, opts.dryRun === true, result);

    // The stack ref.
    let head: string | null = null;
    let stackOk = true;
    try {
      const ref = readSymbolicHead(ws.gitdir);
      head = readRef(ws.gitdir, ref);
      if (head === null) result.notes.push(`the stack ${ref} has no layers yet`);
    } catch (e) {
      stackOk = false;
      problem('stack', (e as Error).message);
    }

    // Objects reachable from the stack, and every layer by the union rules.
    const objects = ws.store.objects;
    const seen = new Set<string>();
    const verify = (oid: string, type: string): Buffer | null => {
      if (seen.has(oid)) return null;
      seen.add(oid);
      try {
        const o = objects.read(oid);
        if (o.type !== type) { problem('objects', `object ${oid} is a ${o.type}, not a ${type}`); return null; }
        if (hashObject(o.type, o.data) !== oid) { problem('objects', `object ${oid} is corrupt (hash mismatch)`); return null; }
        result.checked.objects++;
        return o.data;
      } catch (e) {
        problem('objects', (e as Error).message);
        return null;
      }
    };
    const layerTrees: Array<{ oid: string; tree: string }> = [];
    if (stackOk && head) {
      const commits: string[] = [head];
      let first: string | null = head;
      const firstParent = new Set<string>();
      while (commits.length) {
        const c = commits.pop()!;
        if (!verify(c, 'commit')) continue;
        let commit;
        try { commit = ws.store.readCommit(c); } catch (e) { problem('objects', (e as Error).message); continue; }
        if (c === first) { firstParent.add(c); layerTrees.push({ oid: c, tree: commit.tree }); first = commit.parents[0] ?? null; }
        commits.push(...commit.parents);
        // Trees and blobs, iteratively.
        const trees = [commit.tree];
        while (trees.length) {
          const t = trees.pop()!;
          if (!verify(t, 'tree')) continue;
          let entries: readonly TreeEntry[];
          try { entries = objects.readTree(t); } catch (e) { problem('objects', (e as Error).message); continue; }
          for (const e of entries) {
            if (e.mode === '40000') trees.push(e.oid);
            else if (e.mode !== '160000') verify(e.oid, 'blob');
          }
        }
      }
      result.checked.layers = layerTrees.length;
      for (const l of layerTrees.reverse()) {
        try { applyLayer(objects, null, l.tree, { layer: l.oid.slice(0, 12) }); ws.store.layerManifest(ws.store.readCommit(l.oid)); } catch (e) {
          if (e instanceof GlayerError) problem('layer', e.message); else throw e;
        }
      }
      // The layers' manifests through the union (records for paths that are there, links that hold).
      if (result.problems.length === 0) {
        try { ws.store.unionManifest(head); } catch (e) {
          if (e instanceof GlayerError) problem('layer', e.message); else throw e;
        }
      }
    }

    // The writable layer.
    let lowerTree: string | null = null;
    try { lowerTree = stackOk ? ws.store.unionTree(head) : null; } catch { /* reported above */ }
    let upperSt: fs.Stats | null = null;
    try { upperSt = fs.lstatSync(ws.upper); } catch { /* missing */ }
    let upperTree: string | null = null;
    if (!upperSt) result.notes.push(`the writable layer ${ws.upper} is missing (it will be re-created empty)`);
    else if (!upperSt.isDirectory()) problem('upper', `the writable layer ${ws.upper} is not a directory${upperSt.isSymbolicLink() ? ' (a symlink)' : ''}`);
    else {
      try {
        if (state.live) {
          // A live view's upper directory, in whichever whiteout form the mount left it.
          upperTree = readLiveUpper(ws.gitdir, ws.upper, objects).tree;
          applyLayer(objects, lowerTree, upperTree, { layer: 'writable layer' });
        } else {
          const prev = loadIndex(indexPath(ws.gitdir, 'upper'), objects);
          const scan = scanTree(ws.upper, prev.index, objects, { markers: true });
          upperTree = scan.root ?? EMPTY_TREE;
          applyLayer(objects, lowerTree, upperTree, { layer: 'writable layer' });
          for (const p of scan.unrepresentable) problem('upper', `invalid name in the writable layer: ${display(p)}`);
        }
      } catch (e) {
        if (e instanceof InvalidLayerError || e instanceof GlayerError) problem('upper', e.message); else throw e;
      }
    }

    // The view against its index.
    if (state.view !== null && !state.live) {
      let st: fs.Stats | null = null;
      try { st = fs.lstatSync(state.view); } catch { /* gone */ }
      if (!st) result.notes.push(`the view ${state.view} is gone; 'glayer mount-view' makes it again`);
      else if (!st.isDirectory()) problem('view', `the view ${state.view} is not a directory${st.isSymbolicLink() ? ' (a symlink)' : ''}`);
      else {
        try {
          const prev = loadIndex(indexPath(ws.gitdir, 'view'), objects);
          if (prev.root === null) result.notes.push("the view's index is missing or unreadable; the next command counts everything in the view as the user's");
          const scan = scanTree(state.view, prev.index, objects, { markers: false });
          const edits = diffTrees(objects, prev.root, scan.root);
          if (prev.root !== null && edits.length) result.notes.push(`${edits.length} path(s) in the view changed since glayer last recorded it (run 'glayer status' to record them)`);
          for (const p of scan.unrepresentable) result.notes.push(`${display(p)} in the view cannot be stored in a layer`);
        } catch (e) {
          if (e instanceof GlayerError) problem('view', e.message); else throw e;
        }
      }
    }
  } finally {
    ws.close();
  }
  result.ok = result.problems.length === 0;
  return result;
}

type Repair = (what: string, action: () => void) => void;

/**
 * The layer cache: each entry a stack's mount would use, compared with a new extraction of it; one that differs is
 * replaced (not in a dry run, and not while a live view uses it: then it is a problem to act on).
 */
async function verifyLayerCache(ws: Workspace, dryRun: boolean, result: FsckResult): Promise<void> {
  const use = cacheUse(ws);
  let check;
  try {
    check = await verifyCache(ws.store, ws.sharedDir, use.tops, use.inUse, !dryRun);
  } catch (e) {
    if (!(e instanceof GlayerError) && !(e as NodeJS.ErrnoException).code) throw e;
    result.notes.push(`the layer cache was not verified: ${(e as Error).message}`);
    return;
  }
  result.checked.cacheEntries = check.checked;
  for (const b of check.bad) {
    const why = `the layer cache entry ${b.entry} differs from its layer (${b.differences.join('; ')})`;
    if (b.replaced) result.repaired.push(`replaced ${why}`);
    else if (b.inUse) result.problems.push({ area: 'cache', message: `${why}; a live view uses it: unmount it ('glayer umount') and run 'glayer fsck' again` });
    else result.notes.push(`would repair: replace ${why}`);
  }
}

/**
 * Live views: unmount mounts of this workspace's views that the state does not name (a kill between mounting and
 * recording, or a remount killed half way), remove work and retired upper directories no mount uses, and cache
 * extractions a killed process left.
 */
function repairLive(ws: Workspace, state: ReturnType<Workspace['readState']>, repair: Repair, notes: string[]): void {
  const current = state.live && state.view ? state.view : null;
  let seenCurrent = false;
  for (const m of ourMounts(ws)) {
    if (current !== null && m.target === current && !seenCurrent) { seenCurrent = true; continue; }
    repair(`unmounted ${m.target} (a live view of this workspace that no state names)`, () => m.backend.umount(m.target, true));
  }
  for (const d of staleLiveDirs(ws, state)) repair(`removed ${d} (left by an interrupted live mount or commit)`, () => rmWork(d));
  for (const d of staleExtractions(ws.sharedDir)) repair(`removed ${d} (an interrupted layer cache extraction)`, () => rmWork(d));
  if (current !== null && liveMountAt(ws, current, state.live) === null) notes.push(`the live view ${current} is not mounted; 'glayer mount-view --live' mounts it`);
}

function repairLeftovers(ws: Workspace, view: string | null, repair: Repair): void {
  // Staging and trash directories of an interrupted mount-view, beside the view (and the default view).
  const dirs = new Set<string>([ws.root]);
  if (view) dirs.add(dirname(view));
  for (const t of readPending(ws)) dirs.add(dirname(t));
  for (const dir of dirs) {
    for (const name of list(dir)) {
      const m = /^\.(.+)\.glayer-(staging|old)-(\d+)$/.exec(name);
      if (!m || alive(Number(m[3]))) continue;
      const path = join(dir, name);
      const target = join(dir, m[1]);
      if (m[2] === 'old' && !exists(target)) {
        repair(`restored ${target} from ${path} (an interrupted 'mount-view --force')`, () => fs.renameSync(path, target));
      } else {
        repair(`removed ${path} (left by an interrupted mount-view)`, () => fs.rmSync(path, { recursive: true, force: true }));
      }
    }
  }
  // Temporary object files.
  const objectsDir = join(ws.store.commonDir, 'objects');
  const tmpRe = /^tmp_(obj|pack|idx)_(\d+)_/;
  for (const d of [objectsDir, join(objectsDir, 'pack'), ...list(objectsDir).filter((n) => /^[0-9a-f]{2}$/.test(n)).map((n) => join(objectsDir, n))]) {
    for (const name of list(d)) {
      const m = tmpRe.exec(name);
      if (!m || alive(Number(m[2]))) continue;
      const path = join(d, name);
      repair(`removed ${path} (a temporary object file of an interrupted write)`, () => fs.rmSync(path, { force: true }));
    }
  }
  // Ref lock files: glayer holds them only while it holds the workspace lock (which we hold now), so one no
  // process has open is left over.
  const locks: string[] = [];
  if (exists(join(ws.gitdir, 'HEAD.lock'))) locks.push(join(ws.gitdir, 'HEAD.lock'));
  if (exists(join(ws.store.commonDir, 'packed-refs.lock'))) locks.push(join(ws.store.commonDir, 'packed-refs.lock'));
  const walk = (d: string): void => {
    for (const e of listDirents(d)) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.lock')) locks.push(p);
    }
  };
  walk(join(ws.store.commonDir, 'refs'));
  if (locks.length) {
    const open = openFiles();
    for (const l of locks) {
      if (open === null) {
        // No /proc: only remove a lock old enough that no git command can still be writing it.
        let age = 0;
        try { age = Date.now() - fs.statSync(l).mtimeMs; } catch { continue; }
        if (age < 10 * 60_000) continue;
      } else if (open.has(l)) continue;
      repair(`removed ${l} (a ref lock no process holds)`, () => fs.rmSync(l, { force: true }));
    }
  }
  // Temporary state and index files (written under the workspace lock, renamed into place).
  for (const name of list(ws.stateDir)) {
    // `lock.<pid>`: the file a lock taker links into place (workspace.ts).
    const m = /\.tmp(\d*)$/.exec(name) ?? /^lock\.(\d+)$/.exec(name);
    if (!m || (m[1] !== '' && alive(Number(m[1])))) continue;
    const path = join(ws.stateDir, name);
    repair(`removed ${path} (a temporary state file of an interrupted command)`, () => fs.rmSync(path, { force: true }));
  }
}

/** Targets of mount-views that may have been interrupted (recorded by mount-view while it stages). */
function readPending(ws: Workspace): string[] {
  try {
    return fs.readFileSync(join(ws.stateDir, 'pending-views'), 'utf8').split('\n').filter((l) => l.startsWith('/'));
  } catch {
    return [];
  }
}

function list(dir: string): string[] {
  try { return fs.readdirSync(dir); } catch { return []; }
}

function listDirents(dir: string): fs.Dirent[] {
  try { return fs.readdirSync(dir, { withFileTypes: true }); } catch { return []; }
}

function exists(p: string): boolean {
  try { fs.lstatSync(p); return true; } catch { return false; }
}

/** Every file some process has open (Linux /proc), or null where that cannot be known. */
function openFiles(): Set<string> | null {
  let pids: string[];
  try { pids = fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n)); } catch { return null; }
  const out = new Set<string>();
  for (const pid of pids) {
    let fds: string[];
    try { fds = fs.readdirSync(`/proc/${pid}/fd`); } catch { continue; }
    for (const fd of fds) {
      try { out.add(fs.readlinkSync(`/proc/${pid}/fd/${fd}`)); } catch { /* closed meanwhile */ }
    }
  }
  return out;
}


