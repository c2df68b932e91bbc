/**
 * `diff`: what changed between two views, file by file, with line hunks made by jsdiff, in the shape of git's
 * patches (the CLI renders them; see src/cli/diff-format.ts).
 *
 * - no layer: the writable layer against the stack below it (the stack top's union against the view);
 * - one layer L: L against the union beneath it; with `view`, the union at L against the view;
 * - two layers A and B: the union at A against the union at B.
 *
 * Trees are compared structurally (core/changes.ts); a removed or added directory is expanded to every file it
 * removes or adds, directories themselves are not files (git shows no empty directory). Files come out in walk
 * order (byte order of names, a directory's files right where its name sorts), the order of
 * `git diff --no-index`; where a path is a file on one side and a directory on the other, the file comes
 * first. A change of kind (file <-> symlink) is a deletion and an addition, as in git's patches.
 *
 * Metadata (docs/metadata.md): when the two sides' union manifests differ, the first file of the diff is the
 * manifest `.wh..wh..meta` itself, the union's records on each side, so a reviewer sees `-usr/bin/passwd
 * mode=755` / `+usr/bin/passwd mode=4755` as lines (limited to the records of the paths asked for).
 *
 * Big inputs: files are produced one at a time through `onFile` (nothing of a file's content is kept after
 * it), a file larger than `maxBytes` or whose diff takes longer than `timeoutMs` gets no hunks (`skipped`),
 * and binary files (a NUL byte in the first 8,000 bytes, git's rule) get none either.
 */
import { structuredPatch } from 'diff';
import { diffTrees, type Change } from '../core/changes.js';
import { EMPTY_BLOB, isDir, kindOf, lookup, sameEntry, walkTree, type Kind, type Mode, type TreeEntry, type TreeSource } from '../core/tree.js';
import { display, ObjectError, UsageError } from '../errors.js';
import { detectRenames, MAX_SCORE, similarityIndex, type RenameFile } from '../core/renames.js';
import type { Store } from '../store/store.js';
import { hashObject } from '../core/hash.js';
import { META_NAME, formatManifest, type Manifest } from '../core/meta.js';
import { isAncestorOrSelf } from '../core/path.js';
import { withWorkspace, type Workspace } from '../workspace/workspace.js';
import { resolveLayer, resolveViewPaths } from './resolve.js';
import { planSync, reconcileIfWritable, type Synced } from './sync.js';
import type { WorkspaceOptions } from './types.js';

export type FileChange = 'A' | 'M' | 'D' | 'R' | 'C';

export interface FileSide {
  kind: Kind;
  mode: Mode;
  /** Blob id (the file's content, or the symlink's target). */
  oid: string;
  /** Bytes; null when content was not asked for. */
  size: number | null;
}

/** A hunk, numbered as its `@@` header shows it (a side with no lines starts at the line before). */
export interface Hunk {
  oldStart: number;
  oldLines: number;
  newStart: number;
  newLines: number;
  /** Text after the `@@ ... @@` (git's default function-name rule), or ''. A byte string. */
  heading: string;
  /** Lines with their ' ', '-', '+' or '\' prefix and no line end: byte strings (latin1), as paths are. */
  lines: string[];
}

export interface FileDiff {
  /** The path, UTF-8 where it decodes (for display). */
  path: string;
  /** The path as a byte string (latin1), exactly as stored. */
  pathBytes: string;
  change: FileChange;
  /** For a rename or copy (R, C): the source's path (display and bytes) and git's similarity index (0-100). */
  oldPath?: string;
  oldPathBytes?: string;
  similarity?: number;
  /** Part of a change of kind (file <-> symlink), shown as a deletion and an addition. */
  typeChange: boolean;
  old: FileSide | null;
  new: FileSide | null;
  binary: boolean;
  /** Why a content change has no hunks though it is not binary: too slow to diff, or too large. */
  skipped: null | 'timeout' | 'too-large';
  hunks: Hunk[];
  /** Lines added and deleted (0 for binary and skipped files). */
  added: number;
  deleted: number;
}

export interface DiffContentOptions {
  /** Lines of context (default 3). */
  context?: number;
  /** Compute hunks (default true). False: only paths, changes and modes (for --name-only, --name-status). */
  content?: boolean;
  /** Give up on one file's hunks after this long (default 5000 ms). */
  timeoutMs?: number;
  /** No hunks for a file bigger than this on either side (default 64 MiB). */
  maxBytes?: number;
  /** Detect renames (git's -M; default on) with this minimum similarity (0-100, default 50). */
  renames?: boolean;
  renameThreshold?: number;
  /** Detect copies too (git's -C; implies renames), with this minimum similarity (default: renameThreshold). */
  copies?: boolean;
  copyThreshold?: number;
  /** Called with each file as it is made; when given, `files` in the result stays empty. */
  onFile?: (f: FileDiff) => void | Promise<void>;
}

export interface DiffOptions extends WorkspaceOptions, DiffContentOptions {
  /** A layer name (see resolve.ts). */
  from?: string;
  to?: string;
  /** Compare against the working state (the stack and the writable layer, as the view shows it). */
  view?: boolean;
  /** Limit to these paths (user paths, see resolve.ts). */
  paths?: string[];
  /**
   * Write nothing and take no lock (`glayer serve`): the working state is worked out as `status` would, but the
   * view's edits are not recorded in the writable layer.
   */
  readOnly?: boolean;
}

export interface DiffEnd {
  /** What the user named ('HEAD~2', 'main'), or a description ('view', 'below 1a2b3c4d5e6f'). */
  name: string;
  /** The layer (commit) id, or null for the view or for nothing (below the bottom layer). */
  id: string | null;
}

export interface DiffResult {
  from: DiffEnd;
  to: DiffEnd;
  /** Every file, unless `onFile` took them. */
  files: FileDiff[];
  /** Number of files that differ. */
  count: number;
  warnings: string[];
}

export const DEFAULT_TIMEOUT_MS = 5000;
export const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
/** git's rule: a NUL in the first this many bytes makes a file binary. */
const BINARY_PROBE = 8000;

export async function diff(opts: DiffOptions = {}): Promise<DiffResult> {
  const cwd = opts.cwd ?? process.cwd();
  if (opts.to !== undefined && opts.from === undefined) throw new UsageError('name the first layer before the second');
  if (opts.to !== undefined && opts.view) throw new UsageError('--view compares one layer with the working state: give at most one layer with it');
  const needView = opts.view === true || opts.from === undefined;
  return withWorkspace(cwd, async (ws) => {
    const paths = resolveViewPaths(ws, cwd, opts.paths ?? []);
    const store = ws.store;
    let synced: Synced | null = null;
    if (needView) {
      synced = opts.readOnly ? planSync(ws) : await reconcileIfWritable(ws, { onProgress: opts.onProgress });
      // Everything after this reads immutable trees and blobs: let other glayer commands run meanwhile.
      ws.unlock();
    }
    let a: string | null;
    let b: string | null;
    let from: DiffEnd;
    let to: DiffEnd;
    let metas: { a: Manifest; b: Manifest };
    if (opts.from === undefined) {
      a = synced!.lowerTree;
      b = synced!.viewTree;
      metas = { a: synced!.lowerMeta, b: synced!.viewMeta };
      from = { name: 'HEAD', id: synced!.head };
      to = { name: 'view', id: null };
    } else {
      const A = resolveLayer(store, opts.from);
      if (opts.view) {
        a = store.unionTree(A.commit.oid);
        b = synced!.viewTree;
        metas = { a: store.unionManifest(A.commit.oid), b: synced!.viewMeta };
        from = { name: A.name, id: A.commit.oid };
        to = { name: 'view', id: null };
      } else if (opts.to === undefined) {
        const parent = A.commit.parents[0] ?? null;
        a = store.unionTree(parent);
        b = store.unionTree(A.commit.oid);
        metas = { a: store.unionManifest(parent), b: store.unionManifest(A.commit.oid) };
        from = { name: parent ? `${A.name}~1` : 'nothing', id: parent };
        to = { name: A.name, id: A.commit.oid };
      } else {
        const B = resolveLayer(store, opts.to);
        a = store.unionTree(A.commit.oid);
        b = store.unionTree(B.commit.oid);
        metas = { a: store.unionManifest(A.commit.oid), b: store.unionManifest(B.commit.oid) };
        from = { name: A.name, id: A.commit.oid };
        to = { name: B.name, id: B.commit.oid };
      }
    }
    const r = await diffViews(ws, a, b, paths, opts, synced, metas);
    return { from, to, ...r, warnings: synced?.warnings ?? [] };
  }, { lock: false });
}

/** Diff two union trees of `ws` (limited to view paths `paths`); `synced` supplies blobs of the view. */
export async function diffViews(
  ws: Workspace,
  a: string | null,
  b: string | null,
  paths: readonly string[],
  opts: DiffContentOptions,
  synced: Synced | null = null,
  metas: { a: Manifest; b: Manifest } | null = null,
): Promise<{ files: FileDiff[]; count: number }> {
  const reader = new BlobReader(ws.store, synced);
  const files: FileDiff[] = [];
  let count = 0;
  const m = metas && manifestDiff(metas.a, metas.b, paths, opts);
  if (m) {
    count++;
    if (opts.onFile) await opts.onFile(m);
    else files.push(m);
  }
  let pairs: Iterable<FilePair> = filePairs(ws.store.objects, limitedChanges(ws.store.objects, a, b, paths));
  if (opts.renames !== false || opts.copies) pairs = withRenames([...pairs], reader, opts);
  for (const pair of pairs) {
    const f = fileDiff(pair, reader, opts);
    count++;
    if (opts.onFile) await opts.onFile(f);
    else files.push(f);
  }
  return { files, count };
}

/**
 * The pairs with renames and copies found (core/renames.ts): a deletion used as a rename's source goes, and its
 * rename takes the place of the added file, as git orders them.
 */
export function withRenames(pairs: FilePair[], reader: BlobReader, opts: DiffContentOptions): FilePair[] {
  const sources: RenameFile[] = [];
  const deleted: boolean[] = [];
  const srcAt: number[] = [];
  const dests: RenameFile[] = [];
  const dstAt: number[] = [];
  const regular = (e: TreeEntry): boolean => e.mode === '100644' || e.mode === '100755';
  pairs.forEach((p, k) => {
    if (p.typeChange) return;
    if (p.old && !p.new) { sources.push({ path: p.path, oid: p.old.oid, regular: regular(p.old) }); deleted.push(true); srcAt.push(k); }
    else if (!p.old && p.new) { dests.push({ path: p.path, oid: p.new.oid, regular: regular(p.new) }); dstAt.push(k); }
    else if (opts.copies && p.old && p.new) { sources.push({ path: p.path, oid: p.old.oid, regular: regular(p.old) }); deleted.push(false); srcAt.push(k); }
  });
  if (sources.length === 0 || dests.length === 0) return pairs;
  const toScore = (pct: number | undefined): number | undefined => (pct === undefined ? undefined : Math.round((pct * MAX_SCORE) / 100));
  const found = detectRenames(sources, deleted, dests, { read: (o) => reader.read(o), size: (o) => reader.size(o) }, {
    copies: opts.copies, renameScore: toScore(opts.renameThreshold), copyScore: toScore(opts.copyThreshold ?? opts.renameThreshold),
  });
  if (found.length === 0) return pairs;
  const gone = new Set<number>();
  const replace = new Map<number, FilePair>();
  for (const r of found) {
    const src = pairs[srcAt[r.src]];
    const dst = pairs[dstAt[r.dst]];
    if (r.status === 'R') gone.add(srcAt[r.src]);
    replace.set(dstAt[r.dst], { path: dst.path, old: src.old, new: dst.new, typeChange: false, from: { path: src.path, status: r.status, score: r.score } });
  }
  return pairs.flatMap((p, k) => (gone.has(k) ? [] : [replace.get(k) ?? p]));
}

/** Top-most changes from `a` to `b`, only under `limits` (view paths; none: everything). */
export function limitedChanges(src: TreeSource, a: string | null, b: string | null, limits: readonly string[]): Change[] {
  if (limits.length === 0 || limits.includes('')) return diffTrees(src, a, b);
  // Walk order: compare component by component ('/' sorts below every byte of a name).
  const key = (p: string): string => p.replaceAll('/', '\0');
  const sorted = [...new Set(limits)].sort((x, y) => (key(x) < key(y) ? -1 : key(x) > key(y) ? 1 : 0));
  const kept = sorted.filter((p) => !sorted.some((q) => q !== p && p.startsWith(q + '/')));
  const out: Change[] = [];
  for (const p of kept) {
    const x = lookup(src, a, p);
    const y = lookup(src, b, p);
    if (isDir(x) && isDir(y)) out.push(...diffTrees(src, x!.oid, y!.oid, p));
    else if (!sameEntry(x, y)) out.push({ path: p, old: x, new: y });
  }
  return out;
}

export interface FilePair {
  path: string;
  old: TreeEntry | null;
  new: TreeEntry | null;
  typeChange: boolean;
  /** A rename or copy: where the old side comes from. */
  from?: { path: string; status: 'R' | 'C'; score: number };
}

/** Top-most changes as file-level pairs (see the module comment for the order). */
export function* filePairs(src: TreeSource, changes: Iterable<Change>): Generator<FilePair> {
  const files = function* (root: string, prefix: string, side: 'old' | 'new'): Generator<FilePair> {
    for (const { path, entry } of walkTree(src, root, prefix)) {
      if (entry.mode === '40000') continue;
      yield side === 'old' ? { path, old: entry, new: null, typeChange: false } : { path, old: null, new: entry, typeChange: false };
    }
  };
  for (const c of changes) {
    const oldDir = isDir(c.old);
    const newDir = isDir(c.new);
    if (!oldDir && !newDir) {
      if (c.old && c.new && kindOf(c.old.mode) !== kindOf(c.new.mode)) {
        yield { path: c.path, old: c.old, new: null, typeChange: true };
        yield { path: c.path, old: null, new: c.new, typeChange: true };
      } else {
        yield { path: c.path, old: c.old, new: c.new, typeChange: false };
      }
      continue;
    }
    // A file on one side and a directory on the other: the file first, then the directory's files.
    if (c.new && !newDir) yield { path: c.path, old: null, new: c.new, typeChange: false };
    if (c.old && !oldDir) yield { path: c.path, old: c.old, new: null, typeChange: false };
    if (oldDir) yield* files(c.old!.oid, c.path, 'old');
    if (newDir) yield* files(c.new!.oid, c.path, 'new');
  }
}

/** Blob contents and sizes: from the store, or (for a view not yet committed) from the workspace's files. */
export class BlobReader {
  private sizes: Map<string, number> | null = null;
  constructor(private readonly store: Store, private readonly synced: Synced | null) {}

  read(oid: string): Buffer {
    if (oid === EMPTY_BLOB) return Buffer.alloc(0);
    return this.synced ? this.synced.blobs.read(oid) : this.store.objects.readType(oid, 'blob');
  }

  size(oid: string): number {
    if (oid === EMPTY_BLOB) return 0;
    try {
      return this.store.objects.sizeOf(oid);
    } catch (e) {
      if (!(e instanceof ObjectError) || !this.synced) throw e;
    }
    if (!this.sizes) {
      this.sizes = new Map();
      for (const index of [this.synced.viewIndex, this.synced.upperIndex]) {
        for (const e of index?.values() ?? []) if (e.mode !== '40000') this.sizes.set(e.oid, e.stat.size);
      }
    }
    return this.sizes.get(oid) ?? this.read(oid).length;
  }
}

function side(e: TreeEntry | null, reader: BlobReader, content: boolean): FileSide | null {
  return e ? { kind: kindOf(e.mode), mode: e.mode, oid: e.oid, size: content ? reader.size(e.oid) : null } : null;
}

/** One file's diff. */
export function fileDiff(pair: FilePair, reader: BlobReader, opts: DiffContentOptions): FileDiff {
  const content = opts.content !== false;
  const f: FileDiff = {
    path: display(pair.path),
    pathBytes: pair.path,
    change: pair.from ? pair.from.status : pair.old && pair.new ? 'M' : pair.old ? 'D' : 'A',
    ...(pair.from ? { oldPath: display(pair.from.path), oldPathBytes: pair.from.path, similarity: similarityIndex(pair.from.score) } : {}),
    typeChange: pair.typeChange,
    old: side(pair.old, reader, content),
    new: side(pair.new, reader, content),
    binary: false,
    skipped: null,
    hunks: [],
    added: 0,
    deleted: 0,
  };
  if (content && pair.from && f.old!.oid === f.new!.oid) {
    // An exact rename or copy has no hunks; whether it is binary still shows (git's --stat prints `Bin`).
    if (f.old!.kind === 'file') f.binary = isBinary(reader.read(f.old!.oid));
    return f;
  }
  if (!content || (f.old && f.new && f.old.oid === f.new.oid)) return f;
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  if ((f.old?.size ?? 0) > maxBytes || (f.new?.size ?? 0) > maxBytes) { f.skipped = 'too-large'; return f; }
  const oldBuf = f.old ? reader.read(f.old.oid) : null;
  const newBuf = f.new ? reader.read(f.new.oid) : null;
  if (isBinary(oldBuf) || isBinary(newBuf)) { f.binary = true; return f; }
  const oldText = oldBuf ? oldBuf.toString('latin1') : '';
  const newText = newBuf ? newBuf.toString('latin1') : '';
  let hunks: Hunk[] | null;
  if (!oldBuf || !newBuf) hunks = wholeFile(oldBuf ? oldText : newText, oldBuf ? '-' : '+');
  else hunks = lineHunks(oldText, newText, opts.context ?? 3, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  if (hunks === null) { f.skipped = 'timeout'; return f; }
  f.hunks = hunks;
  for (const h of hunks) for (const l of h.lines) { if (l[0] === '+') f.added++; else if (l[0] === '-') f.deleted++; }
  return f;
}

export function isBinary(buf: Buffer | null): boolean {
  return buf !== null && buf.subarray(0, BINARY_PROBE).includes(0);
}

const NO_EOL = '\\ No newline at end of file';

function splitLines(text: string): { lines: string[]; noEol: boolean } {
  if (text === '') return { lines: [], noEol: false };
  const lines = text.split('\n');
  const noEol = lines[lines.length - 1] !== '';
  if (!noEol) lines.pop();
  return { lines, noEol };
}

/** The hunk of a file added (`+`) or deleted (`-`) whole; none for an empty file. */
function wholeFile(text: string, sign: '+' | '-'): Hunk[] {
  const { lines, noEol } = splitLines(text);
  if (lines.length === 0) return [];
  const out = lines.map((l) => sign + l);
  if (noEol) out.push(NO_EOL);
  const n = lines.length;
  return [sign === '+'
    ? { oldStart: 0, oldLines: 0, newStart: 1, newLines: n, heading: '', lines: out }
    : { oldStart: 1, oldLines: n, newStart: 0, newLines: 0, heading: '', lines: out }];
}

/** Line hunks of a modified text file, or null when jsdiff ran out of time. */
function lineHunks(oldText: string, newText: string, context: number, timeoutMs: number): Hunk[] | null {
  const patch = structuredPatch('a', 'b', oldText, newText, undefined, undefined, { context, timeout: timeoutMs });
  if (!patch) return null;
  const oldLines = patch.hunks.length ? splitLines(oldText).lines : [];
  const out: Hunk[] = [];
  // git's hunk heading: the nearest line above the hunk that starts with a letter, '_' or '$' (searched back
  // to the previous hunk's start; when none is found, the previous hunk's heading stays).
  let heading = '';
  let limit = -1;
  for (const h of patch.hunks) {
    const s1 = h.oldStart - 1; // jsdiff numbers an empty side from the line after; s1 is 0-based
    for (let l = s1 - 1; l > limit && l >= 0; l--) {
      const found = funcName(oldLines[l]);
      if (found !== null) { heading = found; break; }
    }
    limit = s1 - 1;
    out.push({
      oldStart: h.oldLines === 0 ? h.oldStart - 1 : h.oldStart,
      oldLines: h.oldLines,
      newStart: h.newLines === 0 ? h.newStart - 1 : h.newStart,
      newLines: h.newLines,
      heading,
      lines: h.lines,
    });
  }
  return out;
}

/** git's default funcname rule (xdiff def_ff): a line starting with a letter, '_' or '$', first 80 bytes, trimmed. */
function funcName(line: string): string | null {
  if (!/^[A-Za-z_$]/.test(line)) return null;
  return (line + '\n').slice(0, 80).replace(/[ \t\n\v\f\r]+$/, '');
}

/** The manifests' records of two unions as the diff of the file `.wh..wh..meta` (null when they agree). */
export function manifestDiff(a: Manifest, b: Manifest, limits: readonly string[], opts: DiffContentOptions): FileDiff | null {
  if (a.size === 0 && b.size === 0) return null;
  const only = (m: Manifest): Manifest => {
    if (limits.length === 0 || limits.includes('')) return m;
    return new Map([...m].filter(([p]) => limits.some((l) => isAncestorOrSelf(l, p))));
  };
  const x = formatManifest(only(a));
  const y = formatManifest(only(b));
  if ((x?.toString('latin1') ?? null) === (y?.toString('latin1') ?? null)) return null;
  const sideOf = (d: Buffer | null): FileSide | null => (d ? { kind: 'file', mode: '100644', oid: hashObject('blob', d), size: d.length } : null);
  const f: FileDiff = {
    path: META_NAME, pathBytes: META_NAME, change: x && y ? 'M' : x ? 'D' : 'A', typeChange: false,
    old: sideOf(x), new: sideOf(y), binary: false, skipped: null, hunks: [], added: 0, deleted: 0,
  };
  if (opts.content === false) return f;
  const oldText = x ? x.toString('latin1') : '';
  const newText = y ? y.toString('latin1') : '';
  const hunks = !x || !y ? wholeFile(x ? oldText : newText, x ? '-' : '+') : lineHunks(oldText, newText, opts.context ?? 3, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  if (hunks === null) { f.skipped = 'timeout'; return f; }
  f.hunks = hunks;
  for (const h of hunks) for (const l of h.lines) { if (l[0] === '+') f.added++; else if (l[0] === '-') f.deleted++; }
  return f;
}
