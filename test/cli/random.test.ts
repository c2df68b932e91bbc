// Random edits, checked round by round through the CLI (in-process). Each round makes a few dozen random edits
// in the view (files, directories, symlinks, modes, renames, kind changes, empty and re-created directories), then
// `glayer commit`. After it: the view is what was edited, a fresh `glayer mount-view` elsewhere shows the same
// tree, `glayer status` is clean, the writable layer is empty, `git fsck --strict` passes, and (as root) the
// kernel's overlayfs over the committed layers shows the same tree too. A second test also edits the writable
// layer directly (a new file, a deleted marker, a new marker) and checks the view follows. Seeded: a failure
// prints GLAYER_TEST_SEED=<seed> to replay it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { glayer, glayerOk } from '../helpers/cli.js';
import { fsck, git } from '../helpers/git.js';
import { layerToLowerdir, overlayUnavailable, stackOf, upperToLowerdir, withOverlay } from '../helpers/overlay.js';
import { Rng, testSeed } from '../helpers/prng.js';
import { describe, snapshot, snapshotDiff, type Snapshot } from '../helpers/snapshot.js';
import { tmpdir } from '../helpers/tmp.js';

const kernelUnavailable = overlayUnavailable(tmpdir('glayer-rnd-probe-'));
if (kernelUnavailable) console.log(`SKIPPED the overlayfs part of the random tests: ${kernelUnavailable}`);

// ---- the file system, by byte-string paths, never through a symlink ----

function abs(root: string, rel: string): Buffer {
  return Buffer.concat([Buffer.from(root, 'utf8'), Buffer.from(rel === '' ? '' : '/' + rel, 'latin1')]);
}
const joinRel = (dir: string, name: string): string => (dir === '' ? name : `${dir}/${name}`);
const parentOf = (p: string): string => (p.lastIndexOf('/') < 0 ? '' : p.slice(0, p.lastIndexOf('/')));
const baseOf = (p: string): string => p.slice(p.lastIndexOf('/') + 1);
const under = (a: string, b: string): boolean => a === b || b.startsWith(a + '/'); // b is a or below it

interface Listing { dirs: string[]; files: string[]; links: string[]; all: Set<string> }

function list(root: string): Listing {
  const out: Listing = { dirs: [''], files: [], links: [], all: new Set() };
  const walk = (rel: string): void => {
    for (const n of fs.readdirSync(abs(root, rel), { encoding: 'buffer' })) {
      const r = joinRel(rel, n.toString('latin1'));
      const st = fs.lstatSync(abs(root, r));
      out.all.add(r);
      if (st.isDirectory()) { out.dirs.push(r); walk(r); }
      else if (st.isSymbolicLink()) out.links.push(r);
      else out.files.push(r);
    }
  };
  walk('');
  return out;
}

function exists(root: string, rel: string): boolean {
  try { fs.lstatSync(abs(root, rel)); return true; } catch { return false; }
}

// ---- random edits in a directory ----

const NAMES = ['a', 'b', 'c', 'd', 'e', 'x y', 'a.b', 'a-', 'a0', '.hidden', 'A', 'é', '日本', 'e\u0301']
  .map((n) => Buffer.from(n, 'utf8').toString('latin1'))
  .concat(['\xff\xfe not utf-8', 'tab\there']); // byte strings: not UTF-8; a tab
const TARGETS = ['a', '../b', '/etc/passwd', 'nowhere/at/all', '.', '..', 'a.b', 'x y'];

// Weights of the edits below (case numbers): growth outweighs deletion so the tree stays interesting.
const WEIGHTS = [2, 2, 2, 1.5, 0.6, 1, 0.5, 1, 1.5, 1.5, 1, 2, 0.7, 0.5, 1];

function weighted(rng: Rng, weights: readonly number[]): number {
  let r = rng.next() * weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < weights.length; i++) { r -= weights[i]; if (r < 0) return i; }
  return weights.length - 1;
}

class Editor {
  private fresh = 0;
  /** Contents written so far: reusing one makes "changed back to what a lower layer holds" cases. */
  private readonly seen: Buffer[] = [Buffer.from('test1\n')];
  readonly log: string[] = [];

  constructor(private readonly rng: Rng, private readonly root: string) {}

  private name(): string {
    return this.rng.chance(0.8) ? this.rng.pick(NAMES) : `n${this.fresh++}`;
  }

  private content(): Buffer {
    const r = this.rng.next();
    if (r < 0.3 && this.seen.length) return this.rng.pick(this.seen);
    let b: Buffer;
    if (r < 0.4) b = Buffer.alloc(0);
    else if (r < 0.8) b = Buffer.from(`line ${this.rng.int(0, 1e6)}\n`.repeat(this.rng.int(1, 5)));
    else b = this.rng.bytes(this.rng.int(1, 5000));
    this.seen.push(b);
    return b;
  }

  private writeFile(rel: string, exec = this.rng.chance(0.2)): void {
    fs.writeFileSync(abs(this.root, rel), this.content());
    fs.chmodSync(abs(this.root, rel), exec ? 0o755 : 0o644);
  }

  private populate(dir: string, depth: number): void {
    const n = this.rng.int(0, 4);
    for (let i = 0; i < n; i++) {
      const rel = joinRel(dir, this.name());
      if (exists(this.root, rel)) continue;
      const k = this.rng.next();
      if (k < 0.6) this.writeFile(rel);
      else if (k < 0.75) fs.symlinkSync(Buffer.from(this.rng.pick(TARGETS)), abs(this.root, rel));
      else { fs.mkdirSync(abs(this.root, rel)); if (depth < 3) this.populate(rel, depth + 1); }
    }
  }

  /** One random edit; returns a description (for the failure log). */
  edit(): string {
    const L = list(this.root);
    const rng = this.rng;
    const dirs = L.dirs;
    const subdirs = dirs.filter((d) => d !== '');
    const leaves = [...L.files, ...L.links];
    const op = weighted(rng, WEIGHTS);
    const newPath = (): string | null => {
      const p = joinRel(rng.pick(dirs), this.name());
      return L.all.has(p) ? null : p;
    };
    switch (op) {
      case 0: case 1: { // create a file
        const p = newPath();
        if (!p) return 'skip';
        this.writeFile(p);
        return `create ${p}`;
      }
      case 2: { // modify a file (sometimes to content seen before)
        if (!L.files.length) return 'skip';
        const p = rng.pick(L.files);
        if (rng.chance(0.3)) fs.appendFileSync(abs(this.root, p), 'more\n');
        else fs.writeFileSync(abs(this.root, p), this.content());
        return `modify ${p}`;
      }
      case 3: { // delete a file or symlink
        if (!leaves.length) return 'skip';
        const p = rng.pick(leaves);
        fs.rmSync(abs(this.root, p));
        return `delete ${p}`;
      }
      case 4: { // delete a directory
        if (!subdirs.length) return 'skip';
        const p = rng.pick(subdirs);
        fs.rmSync(abs(this.root, p), { recursive: true });
        return `rmdir -r ${p}`;
      }
      case 5: { // a file becomes a directory
        if (!leaves.length) return 'skip';
        const p = rng.pick(leaves);
        fs.rmSync(abs(this.root, p));
        fs.mkdirSync(abs(this.root, p));
        this.populate(p, 1);
        return `file->dir ${p}`;
      }
      case 6: { // a directory becomes a file or a symlink
        if (!subdirs.length) return 'skip';
        const p = rng.pick(subdirs);
        fs.rmSync(abs(this.root, p), { recursive: true });
        if (rng.chance(0.7)) this.writeFile(p);
        else fs.symlinkSync(Buffer.from(rng.pick(TARGETS)), abs(this.root, p));
        return `dir->file ${p}`;
      }
      case 7: { // a symlink (relative, absolute, dangling, to a directory)
        const p = newPath();
        if (!p) return 'skip';
        const target = rng.chance(0.3) && subdirs.length ? rng.pick(subdirs) : rng.pick(TARGETS);
        fs.symlinkSync(Buffer.from(target, 'latin1'), abs(this.root, p));
        return `symlink ${p} -> ${target}`;
      }
      case 8: { // chmod +x / -x
        if (!L.files.length) return 'skip';
        const p = rng.pick(L.files);
        const m = fs.lstatSync(abs(this.root, p)).mode;
        fs.chmodSync(abs(this.root, p), m & 0o100 ? 0o644 : 0o755);
        return `chmod ${m & 0o100 ? '-x' : '+x'} ${p}`;
      }
      case 9: { // rename a file or symlink (over a file too)
        if (!leaves.length) return 'skip';
        const from = rng.pick(leaves);
        const to = joinRel(rng.pick(dirs), this.name());
        if (to === from || (L.all.has(to) && !leaves.includes(to))) return 'skip';
        fs.renameSync(abs(this.root, from), abs(this.root, to));
        return `mv ${from} ${to}`;
      }
      case 10: { // rename a directory (not into itself)
        if (!subdirs.length) return 'skip';
        const from = rng.pick(subdirs);
        const to = joinRel(rng.pick(dirs.filter((d) => !under(from, d))), this.name());
        if (L.all.has(to)) return 'skip';
        fs.renameSync(abs(this.root, from), abs(this.root, to));
        return `mv ${from}/ ${to}/`;
      }
      case 11: { // an empty directory, or a small new subtree
        const p = newPath();
        if (!p) return 'skip';
        fs.mkdirSync(abs(this.root, p));
        if (rng.chance(0.7)) this.populate(p, 1);
        return `mkdir ${p}`;
      }
      case 12: { // delete a directory and make it again (an opaque directory in the writable layer)
        if (!subdirs.length) return 'skip';
        const p = rng.pick(subdirs);
        fs.rmSync(abs(this.root, p), { recursive: true });
        fs.mkdirSync(abs(this.root, p));
        if (rng.chance(0.6)) this.populate(p, 1);
        return `rmdir+mkdir ${p}`;
      }
      case 13: { // new content of the same size, the old mtime put back to the nanosecond (as tar or rsync would)
        if (!L.files.length) return 'skip';
        const p = rng.pick(L.files);
        const a = abs(this.root, p);
        const old = fs.readFileSync(a);
        if (old.length === 0) return 'skip';
        const data = Buffer.from(old);
        data[rng.int(0, data.length - 1)] ^= 1 + rng.int(0, 254);
        // touch -r copies times exactly (node's utimes rounds them); work on ASCII names (argv is UTF-8).
        const tmp = join(this.root, '.same-size-tmp');
        const ref = `${this.root}.mtime-ref`;
        fs.renameSync(a, tmp);
        fs.writeFileSync(ref, '');
        execFileSync('touch', ['-r', tmp, ref]);
        fs.writeFileSync(tmp, data);
        execFileSync('touch', ['-r', ref, tmp]);
        fs.renameSync(tmp, a);
        fs.rmSync(ref);
        return `same-size rewrite ${p}`;
      }
      default: { // rewrite a file with its own content (a no-op that touches the stat)
        if (!L.files.length) return 'skip';
        const p = rng.pick(L.files);
        fs.writeFileSync(abs(this.root, p), fs.readFileSync(abs(this.root, p)));
        return `touch ${p}`;
      }
    }
  }

  edits(n: number): void {
    for (let i = 0; i < n; i++) {
      const what = this.edit();
      if (what !== 'skip') this.log.push(what);
    }
  }
}

// ---- checks ----

function assertSame(actual: Snapshot, expected: Snapshot, what: string): void {
  const diff = snapshotDiff(actual, expected, ['actual', 'expected']);
  if (diff) assert.unreachable(`${what} differs:\n${diff}`);
}

class Workspace {
  readonly ws: string;
  readonly gitdir: string;
  view: string;
  private views = 0;
  private readonly lowerdirs = new Map<string, string>();

  constructor(readonly base: string) {
    this.ws = join(base, 'ws');
    this.gitdir = join(this.ws, '.glayer');
    this.view = join(this.ws, 'view');
  }

  get upper(): string { return join(this.ws, 'upper'); }

  async status(): Promise<string> {
    return (await glayerOk(this.ws, 'status')).stdout;
  }

  /** The union of the committed layers (plus, optionally, the writable layer) as the kernel shows it. */
  kernelView(withUpper: boolean): Snapshot | null {
    if (kernelUnavailable) return null;
    const head = git(this.gitdir, ['rev-parse', '--verify', '-q', 'refs/heads/main']);
    const lowers: string[] = [];
    for (const c of stackOf(this.gitdir, head)) {
      let dir = this.lowerdirs.get(c);
      if (!dir) {
        dir = join(this.base, `lower-${c.slice(0, 12)}`);
        layerToLowerdir(this.gitdir, c, dir);
        this.lowerdirs.set(c, dir);
      }
      lowers.unshift(dir);
    }
    if (withUpper) {
      const dir = join(this.base, `upper-copy-${this.views}`);
      fs.mkdirSync(dir);
      upperToLowerdir(this.upper, dir);
      lowers.unshift(dir);
    }
    if (lowers.length === 0) return {};
    return withOverlay(lowers, join(this.base, `merged-${this.views++}`), (m) => snapshot(m));
  }

  /** Commit, then check everything that must hold after it. Returns the view's snapshot. */
  async commitAndCheck(round: number, expected: Snapshot): Promise<void> {
    const before = git(this.gitdir, ['rev-parse', '--verify', '-q', 'refs/heads/main']);
    const c = await glayer(this.ws, 'commit', '-m', `round ${round}`);
    if (c.code !== 0) {
      // Edits that cancel out leave nothing to commit; then the view must already equal the stack.
      assert.match(c.stderr, /nothing to commit/, `commit failed: ${c.stderr}`);
      assert.is(git(this.gitdir, ['rev-parse', 'refs/heads/main']), before);
    } else {
      assert.is(git(this.gitdir, ['rev-parse', 'refs/heads/main^']), before, 'the new layer sits on the old top');
    }
    assertSame(snapshot(this.view), expected, `round ${round}: the view after commit`);
    assert.is(await this.status(), '', `round ${round}: status after commit`);
    assert.equal(fs.readdirSync(this.upper), [], `round ${round}: the writable layer after commit`);
    fsck(this.gitdir);
    // A fresh view elsewhere (it becomes the workspace's view: the next round edits it).
    const fresh = join(this.base, `view-${round}`);
    await glayerOk(this.ws, 'mount-view', fresh);
    assertSame(snapshot(fresh), expected, `round ${round}: a fresh mount-view`);
    this.view = fresh;
    assert.is(await this.status(), '', `round ${round}: status in the fresh view`);
    const kernel = this.kernelView(false);
    if (kernel) assertSame(kernel, expected, `round ${round}: overlayfs over the committed layers`);
  }
}

async function withSeed(name: string, fn: (rng: Rng, log: string[]) => Promise<void>): Promise<void> {
  const seed = testSeed();
  const log: string[] = [];
  try {
    await fn(new Rng(seed), log);
  } catch (e) {
    console.log(`${name} failed with GLAYER_TEST_SEED=${seed}; last edits:\n  ${log.slice(-40).join('\n  ')}`);
    throw e;
  }
}

test('random edits in the view, committed round by round', async () => {
  await withSeed('random view edits', async (rng, log) => {
    const base = tmpdir('glayer-rnd-');
    await glayerOk(base, 'init', 'ws', '--template', 'aufs-demo');
    const w = new Workspace(base);
    await glayerOk(w.ws, 'mount-view');
    let lower = snapshot(w.view);
    for (let round = 1; round <= 14; round++) {
      const ed = new Editor(rng, w.view);
      ed.log.push(`-- round ${round}`);
      ed.edits(rng.int(10, 30));
      // Sometimes reconcile in the middle of a round, then keep editing.
      if (rng.chance(0.5)) {
        // Sometimes reconcile in the middle of a round (a status, or an in-place mount-view), check, and keep editing.
        if (rng.chance(0.5)) await w.status(); else await glayerOk(w.ws, 'mount-view');
        ed.log.push('(reconciled)');
        log.push(...ed.log.splice(0));
        const mid = snapshot(w.view);
        checkUpperMinimal(w.upper, lower);
        const kernel = w.kernelView(true);
        if (kernel) assertSame(kernel, mid, `round ${round}: overlayfs over the layers and the writable layer`);
        ed.edits(rng.int(5, 15));
      }
      log.push(...ed.log);
      const expected = snapshot(w.view);
      await w.commitAndCheck(round, expected);
      lower = expected;
    }
  });
});

test('random edits in the view and in the writable layer', async () => {
  await withSeed('random view and upper edits', async (rng, log) => {
    const base = tmpdir('glayer-rnd-');
    await glayerOk(base, 'init', 'ws', '--template', 'aufs-demo');
    const w = new Workspace(base);
    await glayerOk(w.ws, 'mount-view');
    let lower = snapshot(w.view);
    for (let round = 1; round <= 10; round++) {
      const ed = new Editor(rng, w.view);
      ed.log.push(`-- round ${round}`);
      ed.edits(rng.int(10, 25));
      await w.status();
      // Now edit the writable layer; the model is the view as it stands, changed as the union rules say.
      const model = snapshot(w.view);
      checkUpperMinimal(w.upper, lower);
      for (let i = rng.int(3, 10); i > 0; i--) {
        const what = upperEdit(rng, w.upper, model, lower);
        if (what) ed.log.push(`upper: ${what}`);
      }
      log.push(...ed.log);
      if (rng.chance(0.7)) {
        await w.status(); // brings the writable layer's edits into the view
        assertSame(snapshot(w.view), model, `round ${round}: the view after editing the writable layer`);
        const kernel = w.kernelView(true);
        if (kernel) assertSame(kernel, model, `round ${round}: overlayfs over the layers and the writable layer`);
      } else {
        log.push('(commit right after editing the writable layer)');
      }
      await w.commitAndCheck(round, model);
      lower = model;
    }
  });
});

/**
 * One edit of the writable layer `upper`, applied to `model` (the view) as the union rules say; `lower` is the
 * union of the committed layers. Returns a description, or null when nothing suitable was found.
 */
function upperEdit(rng: Rng, upper: string, model: Snapshot, lower: Snapshot): string | null {
  const U = list(upper);
  const markers = U.files.filter((p) => baseOf(p).startsWith('.wh.') && baseOf(p) !== '.wh..wh..opq' && p !== '.wh..wh..meta');
  const opaqueDirs = new Set(U.files.filter((p) => baseOf(p) === '.wh..wh..opq').map(parentOf));
  const inOpaque = (p: string): boolean => [...opaqueDirs].some((o) => under(o, p));
  const viewDirs = ['', ...Object.keys(model).filter((p) => model[p] === 'dir')];
  const removeSubtree = (p: string): void => { for (const k of Object.keys(model)) if (under(p, k)) delete model[k]; };
  const mkdirs = (dir: string): void => { fs.mkdirSync(abs(upper, dir), { recursive: true }); };
  const k = rng.int(0, 2);
  if (k === 0) {
    // A new file, sometimes re-created over its own whiteout.
    const dir = rng.pick(viewDirs);
    const wh = markers.filter((m) => parentOf(m) === dir);
    const name = wh.length && rng.chance(0.5) ? baseOf(rng.pick(wh)).slice(4) : `u${rng.int(0, 1e6)}`;
    const p = joinRel(dir, name);
    if (p in model) return null;
    mkdirs(dir);
    const data = Buffer.from(`upper ${p}\n`, 'latin1');
    fs.writeFileSync(abs(upper, p), data);
    removeSubtree(p);
    for (let a = dir; a !== ''; a = parentOf(a)) model[a] = 'dir';
    model[p] = describe(abs(upper, p));
    return `add ${p}`;
  }
  if (k === 1) {
    // Delete a marker: what the layers below hold there comes back.
    const candidates = markers.filter((m) => !inOpaque(m));
    if (!candidates.length) return null;
    const m = rng.pick(candidates);
    const target = joinRel(parentOf(m), baseOf(m).slice(4));
    if (exists(upper, target)) return null; // the same layer re-created it: removing the marker changes the kind of merge
    fs.rmSync(abs(upper, m));
    for (const key of Object.keys(lower)) if (under(target, key)) model[key] = lower[key];
    return `rm ${m}`;
  }
  // A new marker for something the view shows from below (not copied up): it disappears.
  const fromBelow = Object.keys(model).filter((p) => p in lower && model[p] === lower[p] && !exists(upper, p) && !inOpaque(p)
    && !underReplaced(upper, p));
  if (!fromBelow.length) return null;
  const p = rng.pick(fromBelow);
  mkdirs(parentOf(p));
  fs.writeFileSync(abs(upper, joinRel(parentOf(p), `.wh.${baseOf(p)}`)), '');
  removeSubtree(p);
  return `whiteout ${p}`;
}

/**
 * The writable layer holds no no-op entries (spec: "a layer holds no no-op entries"): no copy equal to what the
 * layers below hold at that path, and no marker for something they do not have. (Inside an opaque directory every
 * entry is needed, so those are not checked.)
 */
function checkUpperMinimal(upper: string, lower: Snapshot): void {
  const U = list(upper);
  const opaque = U.files.filter((p) => baseOf(p) === '.wh..wh..opq').map(parentOf);
  const inOpaque = (p: string): boolean => opaque.some((o) => o !== p && under(o, p));
  const problems: string[] = [];
  for (const p of [...U.files, ...U.links]) {
    if (inOpaque(p) || baseOf(p) === '.wh..wh..opq') continue;
    // The metadata manifest (docs/metadata.md): a rewrite with the same content is a touch, recorded as an mtime.
    if (p === '.wh..wh..meta') continue;
    if (baseOf(p).startsWith('.wh.')) {
      const target = joinRel(parentOf(p), baseOf(p).slice(4));
      if (!(target in lower)) problems.push(`marker ${p} hides nothing`);
    } else if (lower[p] !== undefined && lower[p] === describe(abs(upper, p))) problems.push(`${p} is a copy of the lower entry`);
  }
  if (problems.length) assert.unreachable(`the writable layer holds no-op entries:\n  ${problems.join('\n  ')}`);
}

/** Is some ancestor of `p` in the writable layer something other than a plain directory (which would replace it)? */
function underReplaced(upper: string, p: string): boolean {
  for (let a = parentOf(p); a !== ''; a = parentOf(a)) {
    try { if (!fs.lstatSync(abs(upper, a)).isDirectory()) return true; } catch { /* absent: fine */ }
  }
  return false;
}


test.run();
