/**
 * The layer store: a standard git repository, read and written only through this module (objects.ts for
 * object I/O, refs.ts for refs). A layer is a commit whose tree is its delta; a stack is the first-parent chain
 * from a ref. The union tree of each stack top is cached (`<gitdir>/glayer/unions`, one "commit tree" line
 * each, the trees themselves kept as objects), so a view of a deep stack costs one lookup after the first time.
 */
import * as fs from '../sys/fs.js';
import { join } from 'node:path';
import { ObjectError, UnknownLayerError, isSystemRefusal } from '../errors.js';
import { applyLayer } from '../core/union.js';
import { EMPTY_TREE } from '../core/tree.js';
import { applyManifest, formatManifest, manifestEntry, parseLayerManifest, parseManifest, type Manifest } from '../core/meta.js';
import { ObjectStore, type ObjectWriter } from './objects.js';
import { formatCommit, parseCommit, signatureFromEnv, type Commit, type Signature } from './commits.js';
import { appendReflog, commonDir, readRef, readSymbolicHead, updateRef } from './refs.js';

export { type Commit, type Signature } from './commits.js';

/**
 * Set by a process that must write nothing (`glayer serve`): a union not cached yet is computed in memory and
 * kept for the Store's lifetime, never persisted to the union cache.
 */
export const storeMode = { readOnly: false };

export class Store {
  readonly objects: ObjectStore;
  private readonly commits = new Map<string, Commit>();
  private unions: Map<string, string> | null = null;
  private depths: Map<string, number> | null = null;
  /** The union's metadata manifest per stack top: the blob holding it, or '-' for none (file `glayer/union-meta`). */
  private unionMetas: Map<string, string> | null = null;
  private readonly manifests = new Map<string, Manifest>();
  /** Unions computed in read-only mode: their trees are in memory only. */
  private readonly memUnions = new Set<string>();
  /** Trees already validated and free of markers (see union.ts). */
  readonly clean = new Set<string>();

  /** The git dir of the shared part (objects, refs, config, caches): `gitdir` itself unless a linked workspace's. */
  readonly commonDir: string;

  constructor(readonly gitdir: string) {
    this.commonDir = commonDir(gitdir);
    this.objects = new ObjectStore(gitdir);
  }

  /** Make a bare repository at `gitdir` with HEAD on `refs/heads/<branch>` (isomorphic-git's init). */
  static async init(gitdir: string, branch: string): Promise<Store> {
    const git = await import('isomorphic-git');
    await git.init({ fs, dir: gitdir, gitdir, bare: true, defaultBranch: branch });
    fs.mkdirSync(join(gitdir, 'glayer'), { recursive: true });
    return new Store(gitdir);
  }

  get stackRef(): string {
    return readSymbolicHead(this.gitdir);
  }

  resolve(ref: string): string | null {
    return readRef(this.gitdir, ref);
  }

  head(): string | null {
    return this.resolve(this.stackRef);
  }

  readCommit(oid: string): Commit {
    let c = this.commits.get(oid);
    if (!c) {
      c = parseCommit(oid, this.objects.readType(oid, 'commit'));
      this.commits.set(oid, c);
    }
    return c;
  }

  /** The layers of the stack whose top is `top`, top first (first parents). */
  layers(top: string | null, limit = Infinity): Commit[] {
    const out: Commit[] = [];
    const seen = new Set<string>();
    for (let c = top; c && out.length < limit; ) {
      if (seen.has(c)) throw new ObjectError(c, 'corrupt (commit cycle)');
      seen.add(c);
      const commit = this.readCommit(c);
      out.push(commit);
      c = commit.parents[0] ?? null;
    }
    return out;
  }

  /**
   * How many layers the stack whose top is `top` has (0: none), without reading them all when a layer at or below
   * it was counted before: counts are cached per layer in `glayer/depths` (one "commit depth" line each, appended;
   * a damaged line is ignored and counted again).
   */
  depth(top: string | null): number {
    if (top === null) return 0;
    const known = this.loadDepths();
    const hit = known.get(top);
    if (hit !== undefined) return hit;
    let n = 0;
    let base = 0;
    const seen = new Set<string>();
    for (let c: string | null = top; c; ) {
      const d = known.get(c);
      if (d !== undefined) { base = d; break; }
      if (seen.has(c)) throw new ObjectError(c, 'corrupt (commit cycle)');
      seen.add(c);
      n++;
      c = this.readCommit(c).parents[0] ?? null;
    }
    const depth = base + n;
    known.set(top, depth);
    if (!storeMode.readOnly) {
      try { fs.appendFileSync(join(this.commonDir, 'glayer', 'depths'), `${top} ${depth}\n`); } catch (e) { if (!isSystemRefusal(e)) throw e; }
    }
    return depth;
  }

  private loadDepths(): Map<string, number> {
    if (!this.depths) this.depths = new Map([...this.readCommitLines('depths', /^[1-9][0-9]{0,8}$/)].map(([c, d]) => [c, Number(d)]));
    return this.depths;
  }

  /** A cache file of glayer/ with one "commit value" line each, as a map; lines that do not parse are skipped. */
  private readCommitLines(name: string, value: RegExp): Map<string, string> {
    const m = new Map<string, string>();
    let text = '';
    try { text = fs.readFileSync(join(this.commonDir, 'glayer', name), 'latin1'); } catch { /* none yet */ }
    for (const line of text.split('\n')) {
      const [c, v] = line.split(' ');
      if (c && v && /^[0-9a-f]{40}$/.test(c) && value.test(v)) m.set(c, v);
    }
    return m;
  }

  /** Resolve a layer name: a full id or unique prefix of a layer in the stack from `top`. */
  findLayer(top: string | null, name: string): Commit {
    const matches = this.layers(top).filter((c) => c.oid.startsWith(name.toLowerCase()));
    if (!/^[0-9a-fA-F]{4,40}$/.test(name) || matches.length === 0) throw new UnknownLayerError(name);
    if (matches.length > 1) throw new UnknownLayerError(name, 'ambiguous layer id');
    return matches[0];
  }

  private loadUnions(): Map<string, string> {
    if (!this.unions) this.unions = this.readCommitLines('unions', /^[0-9a-f]{40}$/);
    return this.unions;
  }

  private cachedUnion(commit: string): string | null {
    const t = this.loadUnions().get(commit);
    return t && (this.memUnions.has(commit) || this.objects.has(t)) ? t : null;
  }

  /**
   * The union tree of the stack whose top is `top` (null: no layers). Applies layers upward from the nearest
   * cached union; the result is persisted and cached for next time.
   */
  unionTree(top: string | null): string | null {
    if (top === null) return null;
    const cached = this.cachedUnion(top);
    if (cached) return cached;
    const chain: Commit[] = [];
    let base: string | null = null;
    for (let c: string | null = top; c; ) {
      const hit = this.cachedUnion(c);
      if (hit) { base = hit; break; }
      const commit = this.readCommit(c);
      chain.push(commit);
      if (chain.length > 1_000_000) throw new ObjectError(top, 'corrupt (stack too deep)');
      c = commit.parents[0] ?? null;
    }
    for (let k = chain.length - 1; k >= 0; k--) {
      base = applyLayer(this.objects, base, chain[k].tree, { layer: chain[k].oid.slice(0, 12), clean: this.clean });
    }
    const result = base ?? EMPTY_TREE;
    // Read-only mode (serve), or a store that cannot be written (read-only, another user's, a full disk): the
    // trees stay in memory.
    const inMemory = (): string => { this.loadUnions().set(top, result); this.memUnions.add(top); return result; };
    if (storeMode.readOnly) return inMemory();
    try {
      const w = this.objects.writer();
      this.objects.persistTrees(w, result);
      w.flush();
      this.rememberUnion(top, result);
    } catch (e) {
      if (!isSystemRefusal(e)) throw e;
      return inMemory();
    }
    return result;
  }

  /** Record that the union at `commit` is `tree` (whose objects must already be stored). */
  rememberUnion(commit: string, tree: string): void {
    this.loadUnions().set(commit, tree);
    const dir = join(this.commonDir, 'glayer');
    fs.mkdirSync(dir, { recursive: true });
    fs.appendFileSync(join(dir, 'unions'), `${commit} ${tree}\n`);
  }

  /** A layer's own manifest (`.wh..wh..meta` at its root), or null; a bad one is an InvalidLayerError. */
  layerManifest(commit: Commit): Manifest | null {
    const e = manifestEntry(this.objects, commit.tree);
    return e ? parseLayerManifest(this.objects.readType(e.oid, 'blob'), commit.oid.slice(0, 12)) : null;
  }

  private loadUnionMetas(): Map<string, string> {
    if (!this.unionMetas) this.unionMetas = this.readCommitLines('union-meta', /^(-|[0-9a-f]{40})$/);
    return this.unionMetas;
  }

  private cachedManifest(commit: string): Manifest | null {
    const hit = this.manifests.get(commit);
    if (hit) return hit;
    const t = this.loadUnionMetas().get(commit);
    if (t === undefined) return null;
    if (t === '-') { const empty: Manifest = new Map(); this.manifests.set(commit, empty); return empty; }
    if (!this.objects.has(t)) return null;
    try {
      const m = parseManifest(this.objects.readType(t, 'blob'));
      this.manifests.set(commit, m);
      return m;
    } catch { return null; /* a damaged cache entry: compute it again */ }
  }

  /**
   * The union's metadata manifest at stack top `top` (core/meta.ts applyManifest, layer by layer), cached per top
   * like the union tree. A stack whose layers have no manifest costs a read of each root tree, once.
   */
  unionManifest(top: string | null): Manifest {
    if (top === null) return new Map();
    const cached = this.cachedManifest(top);
    if (cached) return cached;
    const chain: Commit[] = [];
    let base: Manifest = new Map();
    for (let c: string | null = top; c; ) {
      const hit = this.cachedManifest(c);
      if (hit) { base = hit; break; }
      const commit = this.readCommit(c);
      chain.push(commit);
      if (chain.length > 1_000_000) throw new ObjectError(top, 'corrupt (stack too deep)');
      c = commit.parents[0] ?? null;
    }
    const own = chain.map((c) => this.layerManifest(c));
    if (base.size > 0 || own.some((m) => m !== null)) {
      const bottom = chain[chain.length - 1];
      let tree = bottom.parents[0] ? this.unionTree(bottom.parents[0]) : null;
      for (let k = chain.length - 1; k >= 0; k--) {
        const name = chain[k].oid.slice(0, 12);
        const above = k === 0 ? this.unionTree(top) : applyLayer(this.objects, tree, chain[k].tree, { layer: name, clean: this.clean });
        base = applyManifest(this.objects, tree, base, chain[k].tree, own[k], above!, name);
        tree = above;
      }
    }
    try {
      this.rememberUnionManifest(top, base);
    } catch (e) {
      // A cache: a store that cannot be written keeps it in memory.
      if (!isSystemRefusal(e)) throw e;
      this.manifests.set(top, base);
    }
    return base;
  }

  /** Record that the union's manifest at `commit` is `m`. */
  rememberUnionManifest(commit: string, m: Manifest): void {
    // Read-only mode (serve): kept in memory only.
    if (storeMode.readOnly) { this.manifests.set(commit, m); return; }
    const data = formatManifest(m);
    let t = '-';
    if (data) {
      const w = this.objects.writer();
      t = w.add('blob', data);
      w.flush();
    }
    this.loadUnionMetas().set(commit, t);
    this.manifests.set(commit, m);
    const dir = join(this.commonDir, 'glayer');
    fs.mkdirSync(dir, { recursive: true });
    fs.appendFileSync(join(dir, 'union-meta'), `${commit} ${t}\n`);
  }

  /** Unions below each layer, bottom first: [{commit, below, above}] for the stack from `top`. */
  unionsAlong(chain: readonly Commit[]): Array<{ commit: Commit; below: string | null; above: string }> {
    const bottomFirst = [...chain].reverse();
    const last = bottomFirst[0];
    let base: string | null = last && last.parents[0] ? this.unionTree(last.parents[0]) : null;
    const out: Array<{ commit: Commit; below: string | null; above: string }> = [];
    for (const c of bottomFirst) {
      const above = applyLayer(this.objects, base, c.tree, { layer: c.oid.slice(0, 12), clean: this.clean });
      out.push({ commit: c, below: base, above });
      base = above;
    }
    return out;
  }

  signature(kind: 'AUTHOR' | 'COMMITTER'): Signature {
    return signatureFromEnv(kind, this.userFromConfig());
  }

  private userFromConfig(): { name: string; email: string } {
    const fallback = { name: 'glayer', email: 'glayer@localhost' };
    for (const file of [join(this.commonDir, 'config'), join(process.env.HOME ?? '/nonexistent', '.gitconfig')]) {
      let text = '';
      try { text = fs.readFileSync(file, 'utf8'); } catch { continue; }
      const sec = /\[user\]([^[]*)/.exec(text);
      if (!sec) continue;
      const name = /^\s*name\s*=\s*(.+)$/m.exec(sec[1])?.[1]?.trim();
      const email = /^\s*email\s*=\s*(.+)$/m.exec(sec[1])?.[1]?.trim();
      if (name || email) return { name: name ?? fallback.name, email: email ?? fallback.email };
    }
    return fallback;
  }

  /** Add a commit object to `w` (not yet written). */
  makeCommit(w: ObjectWriter, tree: string, parents: string[], message: string): string {
    const author = this.signature('AUTHOR');
    const committer = this.signature('COMMITTER');
    return w.add('commit', formatCommit({ tree, parents, author, committer, message }));
  }

  /** Move the current stack's ref (see refs.ts) and record the move in its reflog. */
  moveStack(to: string, expected: string | null, why = 'glayer'): void {
    this.moveRef(this.stackRef, to, expected, why);
  }

  /** Move any ref under its lock, then append to its reflog (the reflog is a record, not the truth). */
  moveRef(ref: string, to: string, expected: string | null, why: string): void {
    updateRef(this.gitdir, ref, to, expected);
    try { appendReflog(this.gitdir, ref, expected, to, this.signature('COMMITTER'), why); } catch { /* a record only */ }
  }

  close(): void {
    this.objects.close();
  }
}
