/**
 * Reconcile: bring the writable layer and the view into agreement before anything reads state.
 *
 * The view is where people edit; the writable layer (upper) can be edited too. Each keeps an index of what it
 * held at the last reconcile, and the view's index *is* the view as it was then (V0). A reconcile:
 *
 * 1. scans the upper (U1) and the view (V1); the stat caches mean only changed files are hashed;
 * 2. works out the view the upper and the stack now imply: Vu = union(stack, U1);
 * 3. merges, path by path: the view's edits (V0 -> V1) stand; the upper's and the stack's (V0 -> Vu) are
 *    brought in where the view did not touch the same path (or a path above or below it); where both changed a
 *    path differently, the view's version wins and a warning says so. The result is V*;
 * 4. records V* in the upper as overlayfs would: U* = delta(stack, V*) (copy-ups, whiteouts, opaque
 *    directories for directories deleted and re-created), and writes only what differs on each side.
 *
 * Metadata (owners, modes, mtimes, xattrs, devices, hardlinks: docs/metadata.md) goes the same way beside the
 * trees: the view's manifest as last reconciled (V0m, saved with its index), as the user left it (V1m: fs/
 * observe-meta.ts, from the entries the scan looked at again), and as the stack and the writable layer's
 * `.wh..wh..meta` imply (Mu: core/meta.ts applyManifest) merge into M*, and the writable layer's manifest is
 * what takes the stack's to M* (manifestDelta).
 *
 * Without a view, V* = Vu. Because U* is always derived from V*, the upper never keeps no-op entries, and an
 * interrupted commit (stack moved, upper not yet emptied) heals on the next reconcile.
 */
import * as fs from '../sys/fs.js';
import { diffTrees, type Change } from '../core/changes.js';
import { computeDelta } from '../core/delta.js';
import { editTree } from '../core/edit.js';
import { dirname, join } from '../core/path.js';
import { EMPTY_BLOB, EMPTY_TREE, lookup, sameEntry, type TreeEntry } from '../core/tree.js';
import { applyLayer } from '../core/union.js';
import { OPAQUE_MARKER } from '../core/whiteout.js';
import { hashObject } from '../core/hash.js';
import { LinkPartner } from '../fs/copy-up.js';
import {
  META_NAME, applyManifest, formatManifest, manifestDelta, manifestEntry, mergeManifests, metaChanges, parseLayerManifest, parseManifest,
  withManifest, type Manifest,
} from '../core/meta.js';
import { applyMeta } from '../fs/apply-meta.js';
import { observeView } from '../fs/observe-meta.js';
import { indexPath, loadIndex, saveIndex, type Index } from '../fs/index-file.js';
import { Materializer, type BlobSource } from '../fs/materialize.js';
import { withDeepPath, withDeepPathSync } from '../fs/paths.js';
import { hashFile, scanTree } from '../fs/scan.js';
import { GlayerError, ObjectError, display, isSystemRefusal } from '../errors.js';
import { LARGE_BLOB } from '../store/objects.js';
import type { Workspace, State } from '../workspace/workspace.js';
import type { Progress } from './types.js';
import { finishLive, planLive, type LivePlan } from './live.js';

export interface Synced {
  state: State;
  /** Stack top (commit) and its union tree. */
  head: string | null;
  lowerTree: string | null;
  /** The writable layer as a layer tree, as it should be (EMPTY_TREE when empty). */
  upperTree: string;
  upperIndex: Index;
  /** The view's content (the union of the stack and the writable layer). */
  viewTree: string;
  /** The metadata: the stack's union manifest, the view's (M*), and the writable layer's manifest file (null: none). */
  lowerMeta: Manifest;
  viewMeta: Manifest;
  upperMeta: Buffer | null;
  /** What could not be applied to the view (not root), said once: phrases, empty when everything was. */
  metaNotApplied: string[];
  viewIndex: Index | null;
  warnings: string[];
  /** Paths in the view that no layer can hold (names starting with '.wh.'). */
  unrepresentable: string[];
  blobs: WorkspaceBlobs;
}

/** A reconcile worked out but not yet written: what each side holds now and what it should hold. */
export interface SyncPlan extends Synced {
  /** What the writable layer holds now (U1) and whether its index must be saved. */
  upperNow: string;
  upperDirty: boolean;
  /** What the view holds now (V1; null: no view) and whether its index must be saved. */
  viewNow: string | null;
  viewDirty: boolean;
  /**
   * Each side as the other's partner (copy-up.ts): writing the writable layer shares the view's files at the
   * same paths, writing the view shares the writable layer's. Null without a view.
   */
  shared: { view: LinkPartner; upper: LinkPartner } | null;
  /** Files each scan had to read and hash (the rest were proved unchanged by the stat caches). */
  hashed: { upper: number; view: number };
  /** The view's metadata now (V1m). */
  viewMetaNow: Manifest;
}

/** Blob contents for writing: files of the view and the upper known to hold them, else the store. */
export class WorkspaceBlobs implements BlobSource {
  private readonly files = new Map<string, BlobFile>();
  private readonly roots: Array<{ root: string; index: Index }> = [];
  /** The files of the roots not yet put in `files` (read only as far as a lookup needs). */
  private pending: Iterator<BlobFile & { oid: string }> | null = null;
  /** Blobs made in memory (the writable layer's manifest), not yet in any file or the store. */
  private readonly memory = new Map<string, Buffer>();

  constructor(private readonly ws: Workspace) {}

  addMemory(oid: string, data: Buffer): void {
    this.memory.set(oid, data);
  }

  addRoot(root: string, index: Index): void {
    this.roots.push({ root, index });
    const roots = this.roots;
    this.files.clear();
    this.pending = (function* () {
      for (const { root: r, index: i } of roots) for (const [rel, oid, link] of i.files()) yield { root: r, rel, link, oid };
    })();
  }

  /** A file (or symlink) of the view or the writable layer known to hold blob `oid` at the last scan. */
  fileFor(oid: string): BlobFile | undefined {
    const known = this.files.get(oid);
    if (known || !this.pending) return known;
    for (let n = this.pending.next(); !n.done; n = this.pending.next()) {
      const f = n.value;
      if (!this.files.has(f.oid)) this.files.set(f.oid, { root: f.root, rel: f.rel, link: f.link });
      if (f.oid === oid) return this.files.get(oid);
    }
    this.pending = null;
    return undefined;
  }

  /**
   * The store first when it has the blob (a lookup in memory; finding a file for it may mean listing every file
   * of the indexes), a file of the view or the writable layer when it does not or its copy is damaged.
   */
  private fromStore<T>(oid: string, read: () => T): T | undefined {
    if (!this.ws.store.objects.has(oid)) return undefined;
    try { return read(); } catch (e) {
      if (!(e instanceof ObjectError)) throw e;
      if (!this.fileFor(oid)) throw e;
      return undefined;
    }
  }

  /** Only what the store holds whole in a pack: its bytes damaged, readSmall (which looks elsewhere) is asked. */
  packedData(oid: string): { comp: Buffer; size: number } | null {
    if (this.memory.has(oid)) return null;
    return this.ws.store.objects.packedBlobData(oid);
  }

  readSmall(oid: string): Buffer | null {
    if (oid === EMPTY_BLOB) return Buffer.alloc(0);
    const mem = this.memory.get(oid);
    if (mem) return mem;
    const stored = this.fromStore(oid, () => this.ws.store.objects.readSmallBlob(oid));
    if (stored !== undefined) return stored;
    const s = this.fileFor(oid);
    if (s && !s.link) {
      try {
        const data = withDeepPathSync(s.root, s.rel, (p) => (fs.statSync(p).size >= LARGE_BLOB ? null : fs.readFileSync(p)));
        if (data === null) return null;
        if (hashObject('blob', data) === oid) return data;
      } catch { /* changed or gone: fall back to the store */ }
      this.changedUnder(oid, s);
    }
    return this.ws.store.objects.readSmallBlob(oid);
  }

  read(oid: string): Buffer {
    const mem = this.memory.get(oid);
    if (mem) return mem;
    const stored = this.fromStore(oid, () => this.ws.store.objects.readType(oid, 'blob'));
    if (stored !== undefined) return stored;
    const s = this.fileFor(oid);
    if (s) {
      try {
        const data = withDeepPathSync(s.root, s.rel, (p) => (s.link ? fs.readlinkSync(p, { encoding: 'buffer' }) : fs.readFileSync(p)));
        if (hashObject('blob', data) === oid) return data;
      } catch { /* changed or gone: fall back to the store */ }
      this.changedUnder(oid, s);
    }
    return this.ws.store.objects.readType(oid, 'blob');
  }

  /** The file the scan hashed no longer holds that blob, and the store has no copy: the user's edit raced us. */
  private changedUnder(oid: string, s: BlobFile): void {
    if (!this.ws.store.objects.has(oid)) throw new ObjectError(oid, `not what ${display(s.rel)} holds now: it changed during the command; run it again`);
  }

  async writeFile(oid: string, dest: Buffer, mode: number): Promise<void> {
    if (oid === EMPTY_BLOB) { fs.writeFileSync(dest, '', { mode, flag: 'wx' }); return; }
    const s = this.fileFor(oid);
    if (s && !s.link) {
      try {
        const ok = await withDeepPath(s.root, s.rel, (p) => {
          // Another path's file (the same path is shared by the Materializer's partner): a copy-on-write clone
          // where the file system has reflinks, else a copy.
          fs.copyFileSync(p, dest, fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE);
          return hashFile(dest, fs.statSync(dest).size) === oid;
        });
        if (ok) return;
        fs.rmSync(dest, { force: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw e;
        fs.rmSync(dest, { force: true });
      }
      if (!this.ws.store.objects.has(oid)) throw new ObjectError(oid, `changed while glayer was copying it (${display(s.rel)}); run the command again`);
    }
    await this.ws.store.objects.writeBlobTo(oid, dest, mode);
  }
}

/** Where a blob's content can be read: root/rel (rel a byte string). */
export interface BlobFile { root: string; rel: string; link: boolean }

export interface SyncOptions {
  onProgress?: Progress;
}

/**
 * Scan both sides and work out the reconcile, writing nothing (steps 1-4 above). A commit uses the plan to
 * write the layer straight from the files that hold it, without copying them into the writable layer first.
 */
export function planSync(ws: Workspace): SyncPlan {
  const store = ws.store;
  const objects = store.objects;
  const state = ws.readState();
  // A live view is a mount whose upper directory holds exactly the changes: read that alone (live.ts).
  if (state.live) return planLive(ws, state);
  const head = store.head();
  const lowerTree = store.unionTree(head);
  const warnings: string[] = [];

  // 1. Scan the writable layer and the view. (A writable layer that cannot be made is read as empty.)
  try { fs.mkdirSync(ws.upper, { recursive: true }); } catch (e) { if (!isSystemRefusal(e)) throw e; }
  const upperPrev = loadIndex(indexPath(ws.gitdir, 'upper'), objects);
  const upperScan = scanTree(ws.upper, upperPrev.index, objects, { markers: true, prevRoot: upperPrev.root, prevRootCount: upperPrev.rootCount });
  for (const p of upperScan.skipped) warnings.push(`ignoring special file in the writable layer: ${display(p)}`);
  const U1 = upperScan.root ?? EMPTY_TREE;

  // 2. The view the stack and the writable layer imply.
  const Vu = applyLayer(objects, lowerTree, U1, { layer: 'writable layer', clean: store.clean });
  const lowerMeta = store.unionManifest(head);
  const upperOwn = readUpperManifest(ws, U1);
  const Mu = applyManifest(objects, lowerTree, lowerMeta, U1, upperOwn, Vu, 'writable layer', true);

  let viewScan: ReturnType<typeof scanTree> | null = null;
  let V1: string | null = null;
  let V0: string | null = null;
  let V0m: Manifest = Mu;
  if (state.view !== null) {
    const prev = loadIndex(indexPath(ws.gitdir, 'view'), objects);
    viewScan = scanTree(state.view, prev.index, objects, { markers: false, prevRoot: prev.root, prevRootCount: prev.rootCount, meta: true });
    if (prev.root !== null) {
      try { V0m = prev.meta ? parseManifest(prev.meta) : new Map(); } catch { V0m = new Map(); /* damaged: the scan's records stand */ }
    }
    if (viewScan.root === null) {
      warnings.push(`the view ${state.view} is gone; run 'glayer mount-view' to make it again`);
      state.view = null;
      viewScan = null;
    } else {
      V1 = viewScan.root;
      // No record of what the view held: count everything in it as the user's (nothing is lost).
      V0 = prev.root ?? Vu;
      for (const p of viewScan.skipped) warnings.push(`ignoring special file in the view: ${display(p)}`);
    }
  }

  // 3. Merge the two sides.
  let Vstar = Vu;
  let dV: Change[] = [];
  let V1m: Manifest = Mu;
  let Mstar: Manifest = Mu;
  if (V1 !== null) {
    dV = diffTrees(objects, V0, V1);
    const dU = diffTrees(objects, V0, Vu);
    const touched = new Set<string>();
    const above = new Set<string>();
    for (const c of dV) {
      touched.add(c.path);
      for (let p = dirname(c.path); ; p = dirname(p)) { above.add(p); if (p === '') break; }
    }
    const observed = observeView(state.view!, objects, V0m, V1, viewScan!.observed, dV);
    V1m = observed.manifest;
    const viewTouched = (path: string): boolean => {
      if (above.has(path)) return true;
      for (let p = path; ; p = dirname(p)) { if (touched.has(p)) return true; if (p === '' || p === '.') return false; }
    };
    Mstar = mergeManifests(V0m, V1m, observed.changed, Mu, viewTouched, (p) => {
      warnings.push(`${display(p)}: its metadata changed both in the view and in the writable layer; kept the view's`);
    });
    if (dV.length === 0) Vstar = Vu;
    else if (dU.length === 0) Vstar = V1;
    else {
      const edits = new Map<string, TreeEntry | null>();
      for (const c of dU) {
        let clash = touched.has(c.path) || above.has(c.path);
        for (let p = dirname(c.path); !clash; p = dirname(p)) { if (touched.has(p)) clash = true; if (p === '') break; }
        if (!clash) { edits.set(c.path, c.new); continue; }
        if (!sameEntry(lookup(objects, V1, c.path), lookup(objects, Vu, c.path))) {
          warnings.push(`${display(c.path)} changed both in the view and in the writable layer; kept the view's version`);
        }
      }
      Vstar = editTree(objects, V1, edits);
    }
  }

  // 4. The writable layer that records V* over the stack.
  // A directory deleted and re-created in the view has a new inode: record it as opaque, as overlayfs does.
  const opaque = (path: string): boolean =>
    (viewScan !== null && viewScan.recreated.has(path)) || lookup(objects, U1, join(path, OPAQUE_MARKER)) !== null;
  const Ucontent = computeDelta(objects, lowerTree, Vstar, opaque);
  const upperMeta = formatManifest(manifestDelta(objects, lowerTree, lowerMeta, Ucontent, Vstar, Mstar));
  const upperMetaOid = upperMeta ? hashObject('blob', upperMeta) : null;
  const Ustar = upperMeta || manifestEntry(objects, Ucontent) ? withManifest(objects, Ucontent, upperMetaOid) : Ucontent;

  const blobs = new WorkspaceBlobs(ws);
  if (upperMeta) blobs.addMemory(upperMetaOid!, upperMeta);
  if (viewScan && state.view) blobs.addRoot(state.view, viewScan.index);
  blobs.addRoot(ws.upper, upperScan.index);

  return {
    state,
    head,
    lowerTree,
    upperTree: Ustar,
    upperIndex: upperScan.index,
    viewTree: Vstar,
    viewIndex: viewScan ? viewScan.index : null,
    lowerMeta,
    viewMeta: Mstar,
    viewMetaNow: V1m,
    upperMeta,
    metaNotApplied: [],
    warnings,
    unrepresentable: viewScan?.unrepresentable ?? [],
    blobs,
    upperNow: U1,
    upperDirty: upperScan.restat > 0 || U1 !== (upperPrev.root ?? EMPTY_TREE) || Ustar !== U1,
    viewNow: V1,
    viewDirty: viewScan !== null && (viewScan.restat > 0 || V1 !== V0 || Vstar !== V1 || V1m !== V0m || Mstar !== V1m || viewScan.observed.size > 0),
    hashed: { upper: upperScan.hashed, view: viewScan?.hashed ?? 0 },
    shared: viewScan && state.view
      ? { view: new LinkPartner(state.view, viewScan.index, ws.upper), upper: new LinkPartner(ws.upper, upperScan.index, state.view) }
      : null,
  };
}

/** Write the view side of a plan: bring the upper's and the stack's changes into the view. */
export async function writeView(ws: Workspace, plan: SyncPlan, opts: SyncOptions = {}): Promise<number> {
  if (!plan.viewIndex || !plan.state.view || plan.viewNow === null) return 0;
  let written = 0;
  let changes: Change[] = [];
  if (plan.viewTree !== plan.viewNow) {
    const progress = opts.onProgress && ((p: { done: number; total: number }) => opts.onProgress!({ phase: 'view', ...p }));
    const m = new Materializer(plan.state.view, ws.store.objects, plan.blobs, plan.viewIndex, progress, plan.shared?.upper);
    changes = diffTrees(ws.store.objects, plan.viewNow, plan.viewTree);
    try {
      await m.apply(changes);
    } catch (e) {
      // Stopped part-way (a full disk): record what the view now holds, so that the next reconcile does not
      // mistake the half-applied changes for the user's edits (an emptied directory for a deletion).
      if (m.undone) {
        try {
          const held = new Map<string, TreeEntry | null>(changes.slice(0, m.applied).map((c) => [c.path, c.new]));
          held.set(changes[m.applied].path, null);
          saveIndex(indexPath(ws.gitdir, 'view'), ws.store.objects, editTree(ws.store.objects, plan.viewNow, held), plan.viewIndex, formatManifest(plan.viewMetaNow));
        } catch { /* nothing recorded: the next reconcile counts the view's content as the user's */ }
      }
      throw e;
    }
    written = m.written;
  }
  if (plan.viewMeta !== plan.viewMetaNow || changes.length) {
    const todo = metaChanges(ws.store.objects, plan.viewTree, plan.viewMetaNow, plan.viewMeta, changes);
    if (todo.length) plan.metaNotApplied = applyMeta(plan.state.view, plan.viewIndex, todo).notApplied;
  }
  return written;
}

/** Save what a plan says the view holds now (after writeView). */
export function saveView(ws: Workspace, plan: SyncPlan): void {
  if (plan.viewIndex && (plan.viewDirty || plan.shared?.view.touched)) saveIndex(indexPath(ws.gitdir, 'view'), ws.store.objects, plan.viewTree, plan.viewIndex, formatManifest(plan.viewMeta));
}

/** Empty the writable layer after a commit (its files' names in the view stay, with their index entries right). */
export async function emptyUpper(ws: Workspace, plan: SyncPlan): Promise<void> {
  if (plan.upperNow !== EMPTY_TREE) {
    await new Materializer(ws.upper, ws.store.objects, plan.blobs, plan.upperIndex, undefined, plan.shared?.view).apply(diffTrees(ws.store.objects, plan.upperNow, null));
  }
  saveIndex(indexPath(ws.gitdir, 'upper'), ws.store.objects, null, plan.upperIndex);
}

export async function reconcile(ws: Workspace, opts: SyncOptions = {}): Promise<Synced & { viewWritten: number }> {
  const plan = planSync(ws);
  if ((plan as LivePlan).live) { await finishLive(ws, plan as LivePlan); return { ...plan, viewWritten: 0 }; }
  const objects = ws.store.objects;
  // 5. Write what differs: the upper first (it is what a commit reads), then the view.
  // A copy-up shares the view's file (copy-up.ts): no second copy of the bytes, and no free space needed.
  if (plan.upperTree !== plan.upperNow) {
    await new Materializer(ws.upper, objects, plan.blobs, plan.upperIndex, undefined, plan.shared?.view).apply(diffTrees(objects, plan.upperNow, plan.upperTree));
  }
  const viewWritten = await writeView(ws, plan, opts);
  if (plan.metaNotApplied.length) plan.warnings.push(notAppliedWarning(plan.metaNotApplied));
  if (plan.upperDirty || plan.shared?.upper.touched) saveIndex(indexPath(ws.gitdir, 'upper'), objects, plan.upperTree === EMPTY_TREE ? null : plan.upperTree, plan.upperIndex);
  saveView(ws, plan);
  const before = ws.readState();
  if (before.lower !== plan.head || before.view !== plan.state.view) {
    plan.state.lower = plan.head;
    ws.writeState(plan.state);
  }
  return { ...plan, viewWritten };
}

/**
 * Before a commit writes anything: the writable layer's manifest (`plan.upperMeta`) over the stack's must give the
 * view's metadata; otherwise the layer would not reproduce what the user sees, which is a bug of ours.
 */
export function checkUpperManifest(ws: Workspace, plan: SyncPlan, union: string): void {
  const unionMeta = applyManifest(ws.store.objects, plan.lowerTree, plan.lowerMeta, plan.upperTree, plan.upperMeta ? parseManifest(plan.upperMeta) : null, union, 'writable layer');
  if (formatManifest(unionMeta)?.toString('latin1') !== formatManifest(plan.viewMeta)?.toString('latin1')) {
    throw new GlayerError('E_INTERNAL', "internal error: the writable layer's manifest does not reproduce the view's metadata; please report this bug", {}, 70);
  }
}

/** The one line that says what metadata a view did not get (not root). */
export function notAppliedWarning(what: readonly string[]): string {
  return `not running as root: the view does not have ${what.join(', ')} that the layers record (kept in the layers; run as root to apply them)`;
}

/** The writable layer's own manifest file, as its scan found it (null: none). */
function readUpperManifest(ws: Workspace, upper: string): Manifest | null {
  const e = manifestEntry(ws.store.objects, upper);
  if (!e) return null;
  let data: Buffer;
  try { data = fs.readFileSync(join(ws.upper, META_NAME)); } catch { data = ws.store.objects.readType(e.oid, 'blob'); }
  return parseLayerManifest(data, 'writable layer');
}

/**
 * For the commands that only read (status, diff): reconcile when the workspace can be written; when it cannot
 * (a read-only file system, a store owned by another user, a full disk), work out the same answer from a plan
 * without writing anything (the view's changes are reported, not copied into the writable layer), with one
 * warning line, as git status says "unable to refresh index".
 */
export async function reconcileIfWritable(ws: Workspace, opts: SyncOptions = {}): Promise<Synced> {
  let refused = await ws.lockIfWritable();
  if (refused === null) {
    try {
      return await reconcile(ws, opts);
    } catch (e) {
      if (!isSystemRefusal(e)) throw e;
      refused = (e as Error).message;
    }
  }
  const plan = planSync(ws);
  plan.warnings.push(`could not record the changes in the workspace (${refused}); showing them as the view holds them`);
  return plan;
}
