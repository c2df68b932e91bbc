// Fault injection, as SQLite's and git's test suites do it: for each writing command, make its Nth file-system
// call fail with ENOSPC and then EIO (src/sys/fs.ts), for N = 1, 2, 3 ... until the command completes without
// meeting the fault. After every failure: one line on stderr, a non-zero exit that is not 70 (not a "bug"),
// `git fsck --strict` clean, the stack at its old layer or the new one, no temporary file left outside what
// `glayer fsck` removes, and the same command, run again with the fault off, succeeding with every user edit
// where it belongs (in the view and the writable layer, or in the new layer).
//
// Adding a command is one row of FAULT_TABLE. The table of what was tried is printed at the end.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { glayer, glayerOk, type CliResult } from '../helpers/cli.js';
import { fsck, git, hasGit } from '../helpers/git.js';
import { tmpdir } from '../helpers/tmp.js';
import { injectFault, type FaultState } from '../../src/sys/fs.js';
import { lockHolder } from '../../src/workspace/workspace.js';

const ERRNOS = ['ENOSPC', 'EIO'] as const;
/** A bound on N, far above what any command here makes on these small workspaces (a runaway loop fails). */
const MAX_CALLS = 2000;
/**
 * Every call up to STRIDE_FROM, then every STRIDE-th (the tail of a long command is mostly more of the same
 * kind of call), to keep the suite's time modest. GLAYER_FAULT_STRIDE=1 tries every call of every command.
 */
const FULL = process.env.GLAYER_FAULT_FULL === '1';
const STRIDE = FULL ? 1 : Number(process.env.GLAYER_FAULT_STRIDE ?? 5);
const STRIDE_FROM = 30;

/** The store's files and their sizes: unchanged means nothing was written there (no fsck needed). */
function fingerprint(gitdir: string): string {
  if (!fs.existsSync(gitdir)) return '';
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) { if (e.name !== 'glayer') walk(p); } else out.push(`${p} ${fs.statSync(p).size}`);
    }
  };
  walk(gitdir);
  return out.sort().join('\n');
}

/** The view a user made in the `edited` workspace: path -> content (null: deleted). */
const EDITS: Record<string, string | null> = {
  'test': 'test2\n',
  'new.txt': 'hello\n',
  'dir/a': 'a\n',
  'dir/sub/b': 'b\n',
};
const BASE_VIEW = { 'test': 'test1\n' };

interface Fixture {
  /** Everything the command may touch: copied aside once, put back before each run. */
  root: string;
  /** The directory the command runs in. */
  cwd: string;
  /** The store whose stack the command may move (checked with git fsck --strict). */
  gitdir: string;
  /** The stack top before the command (null: none yet). */
  before: string | null;
}

interface FaultRow {
  argv: string[];
  /** Build the workspace the command runs in, fresh for each N. */
  setup: () => Promise<Fixture>;
  /** Slow commands (pull and clone take about a second each here): every call up to `from`, then every `step`-th. */
  stride?: { from: number; step: number };
  /** After the command succeeded (first try or the retry): everything the user made is where it belongs. */
  verify: (f: Fixture) => Promise<void>;
  /** The command rewrites the stack (squash, reset): its new top need not be built on the old one. */
  rewrites?: boolean;
}

async function edited(opts: { view?: boolean } = {}): Promise<Fixture> {
  const dir = tmpdir('glayer-fault-');
  const ws = join(dir, 'ws');
  await glayerOk(dir, 'init', ws, '--template', 'aufs-demo');
  if (opts.view !== false) {
    await glayerOk(ws, 'mount-view');
    for (const [p, text] of Object.entries(EDITS)) {
      fs.mkdirSync(join(ws, 'view', p, '..'), { recursive: true });
      fs.writeFileSync(join(ws, 'view', p), text!);
    }
  } else {
    // No view yet: the edits are in the writable layer (a user who works there directly).
    for (const [p, text] of Object.entries(EDITS)) {
      fs.mkdirSync(join(ws, 'upper', p, '..'), { recursive: true });
      fs.writeFileSync(join(ws, 'upper', p), text!);
    }
  }
  const gitdir = join(ws, '.glayer');
  return { root: dir, cwd: ws, gitdir, before: head(gitdir) };
}

/** A source workspace with two layers, and an empty directory to clone into. */
async function remoteSource(): Promise<{ src: string; dir: string }> {
  const dir = tmpdir('glayer-fault-');
  const src = join(dir, 'src');
  await glayerOk(dir, 'init', src, '--template', 'aufs-demo');
  await glayerOk(src, 'mount-view');
  for (const [p, text] of Object.entries(EDITS)) {
    fs.mkdirSync(join(src, 'view', p, '..'), { recursive: true });
    fs.writeFileSync(join(src, 'view', p), text!);
  }
  await glayerOk(src, 'commit', '-m', 'edits');
  return { src, dir };
}

function head(gitdir: string): string | null {
  try { return git(gitdir, ['rev-parse', '--verify', '-q', 'HEAD']) || null; } catch { return null; }
}

function readView(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string): void => {
    for (const name of fs.readdirSync(d).sort()) {
      const abs = join(d, name);
      const r = rel ? `${rel}/${name}` : name;
      if (fs.lstatSync(abs).isDirectory()) walk(abs, r);
      else out[r] = fs.readFileSync(abs, 'utf8');
    }
  };
  walk(dir, '');
  return out;
}

const EDITED_VIEW = { ...BASE_VIEW, ...EDITS } as Record<string, string>;

/** The stack at `gitdir`, materialized afresh into a new directory: what its layers hold. */
async function stackView(ws: string): Promise<Record<string, string>> {
  const out = join(tmpdir('glayer-fault-check-'), 'v');
  await glayerOk(ws, 'mount-view', out);
  const v = readView(out);
  await glayerOk(ws, 'mount-view');
  return v;
}

async function statusPaths(ws: string): Promise<string[]> {
  return (JSON.parse((await glayerOk(ws, 'status', '--json')).stdout) as Array<{ path: string }>).map((c) => c.path).sort();
}

const EDITED_STATUS = ['dir', 'dir/a', 'dir/sub', 'dir/sub/b', 'new.txt', 'test'];

/** One line per command: what it runs, how to set it up, what must hold after. */
const FAULT_TABLE: Record<string, FaultRow> = {
  'commit': {
    argv: ['commit', '-m', 'edits'],
    setup: () => edited(),
    verify: async (f) => {
      assert.equal(readView(join(f.cwd, 'view')), EDITED_VIEW);
      assert.equal(await stackView(f.cwd), EDITED_VIEW);
      assert.equal(await statusPaths(f.cwd), []);
    },
  },
  'commit (edits in upper, no view)': {
    argv: ['commit', '-m', 'edits'],
    setup: () => edited({ view: false }),
    verify: async (f) => { assert.equal(await stackView(f.cwd), EDITED_VIEW); },
  },
  'status': {
    argv: ['status'],
    setup: () => edited(),
    verify: async (f) => {
      assert.equal(readView(join(f.cwd, 'view')), EDITED_VIEW);
      assert.equal(await statusPaths(f.cwd), EDITED_STATUS);
    },
  },
  'diff': {
    argv: ['diff'],
    setup: () => edited(),
    verify: async (f) => { assert.equal(await statusPaths(f.cwd), EDITED_STATUS); },
  },
  'mount-view': {
    argv: ['mount-view'],
    setup: () => edited({ view: false }),
    verify: async (f) => {
      assert.equal(readView(join(f.cwd, 'view')), EDITED_VIEW);
      assert.equal(await statusPaths(f.cwd), EDITED_STATUS);
    },
  },
  'init': {
    argv: ['init', 'ws', '--template', 'aufs-demo'],
    setup: async () => { const dir = tmpdir('glayer-fault-'); return { root: dir, cwd: dir, gitdir: join(dir, 'ws', '.glayer'), before: null }; },
    verify: async (f) => { assert.equal(await stackView(join(f.cwd, 'ws')), BASE_VIEW); },
  },
  'clone': {
    argv: ['clone', 'SRC', 'dst'],
    stride: { from: 16, step: 12 },
    setup: async () => {
      const { src, dir } = await remoteSource();
      FAULT_TABLE.clone.argv = ['clone', join(src, '.glayer'), 'dst'];
      return { root: dir, cwd: dir, gitdir: join(dir, 'dst', '.glayer'), before: null };
    },
    verify: async (f) => { assert.equal(await stackView(join(f.cwd, 'dst')), EDITED_VIEW); },
  },
  'pull': {
    argv: ['pull'],
    stride: { from: 16, step: 12 },
    setup: async () => {
      const dir = tmpdir('glayer-fault-');
      const src = join(dir, 'src');
      await glayerOk(dir, 'init', src, '--template', 'aufs-demo');
      await glayerOk(dir, 'clone', join(src, '.glayer'), 'dst');
      await glayerOk(src, 'mount-view');
      for (const [p, text] of Object.entries(EDITS)) {
        fs.mkdirSync(join(src, 'view', p, '..'), { recursive: true });
        fs.writeFileSync(join(src, 'view', p), text!);
      }
      await glayerOk(src, 'commit', '-m', 'edits');
      const dst = join(dir, 'dst');
      await glayerOk(dst, 'mount-view');
      fs.writeFileSync(join(dst, 'view', 'mine'), 'local edit\n');
      return { root: dir, cwd: dst, gitdir: join(dst, '.glayer'), before: head(join(dst, '.glayer')) };
    },
    verify: async (f) => {
      assert.equal(readView(join(f.cwd, 'view')), { ...EDITED_VIEW, mine: 'local edit\n' });
      assert.equal(await statusPaths(f.cwd), ['mine']);
    },
  },
};

/** A workspace whose stack has a base layer, the edits as a second layer and one more file as a third. */
async function threeLayers(): Promise<Fixture> {
  const f = await edited();
  await glayerOk(f.cwd, 'commit', '-m', 'edits');
  fs.writeFileSync(join(f.cwd, 'view', 'third'), 'three\n');
  await glayerOk(f.cwd, 'commit', '-m', 'third');
  return { ...f, before: head(f.gitdir) };
}

const THREE_VIEW = { ...EDITED_VIEW, third: 'three\n' };

FAULT_TABLE['import'] = {
  argv: ['import', 'SRC', '--stack', 'imported'],
  setup: async () => {
    // An OCI layout of the edited stack (made by glayer export, fault-free), imported into a fresh workspace.
    const { src, dir } = await remoteSource();
    await glayerOk(src, 'export', `oci:${join(dir, 'image')}:v1`);
    const ws = join(dir, 'ws');
    await glayerOk(dir, 'init', ws, '--template', 'aufs-demo');
    FAULT_TABLE.import.argv = ['import', `oci:${join(dir, 'image')}:v1`, '--stack', 'imported'];
    return { root: dir, cwd: ws, gitdir: join(ws, '.glayer'), before: head(join(ws, '.glayer')) };
  },
  verify: async (f) => {
    const files = git(f.gitdir, ['ls-tree', '-r', '--name-only', 'refs/heads/imported']).split('\n').filter((p) => p && !p.startsWith('.wh.'));
    assert.equal(files.sort(), Object.keys(EDITED_VIEW).sort());
  },
};
FAULT_TABLE['squash'] = {
  argv: ['squash', '-m', 'squashed'],
  rewrites: true,
  setup: threeLayers,
  verify: async (f) => {
    assert.equal(await stackView(f.cwd), THREE_VIEW);
    assert.equal(readView(join(f.cwd, 'view')), THREE_VIEW);
  },
};
FAULT_TABLE['reset'] = {
  argv: ['reset', 'TARGET'],
  rewrites: true,
  setup: async () => {
    // The target by id: a first run that moved the stack and then failed is retried with the same meaning
    // (`HEAD~1` again would go one layer further, as it would in git).
    const f = await threeLayers();
    FAULT_TABLE.reset.argv = ['reset', git(f.gitdir, ['rev-parse', 'HEAD~1'])];
    return f;
  },
  verify: async (f) => {
    assert.equal(await stackView(f.cwd), EDITED_VIEW);
    // The view is refreshed to the new top, and the writable layer has nothing in it.
    assert.equal(readView(join(f.cwd, 'view')), EDITED_VIEW);
    assert.equal(await statusPaths(f.cwd), []);
  },
};
FAULT_TABLE['refresh'] = {
  argv: ['mount-view'],
  setup: async () => {
    // The stack moved under a view that holds a user's edit (as a pull by another process does it): mount-view
    // records the edit, then rewrites only what the move changed (`third` goes, `mine` stays).
    const f = await threeLayers();
    fs.writeFileSync(join(f.cwd, 'view', 'mine'), 'mine\n');
    git(f.gitdir, ['update-ref', 'HEAD', 'HEAD~1']);
    return { ...f, before: head(f.gitdir) };
  },
  verify: async (f) => {
    assert.equal(readView(join(f.cwd, 'view')), { ...EDITED_VIEW, mine: 'mine\n' });
    assert.equal(await statusPaths(f.cwd), ['mine']);
  },
};
FAULT_TABLE['gc'] = {
  argv: ['gc', '--prune=now'],
  stride: { from: 16, step: 8 },
  setup: threeLayers,
  verify: async (f) => {
    assert.equal(await stackView(f.cwd), THREE_VIEW);
    fsck(f.gitdir);
  },
};

interface Tally { runs: number; failed: number; tolerated: number; completedAt: number; ms: number }
const tally = new Map<string, Tally>();

/** A lock left with our own pid: a process whose unlink of its lock failed ends, and the lock is then stale. */
function dropOwnLock(gitdir: string): void {
  const lock = join(gitdir, 'glayer', 'lock');
  if (lockHolder(lock) === process.pid) fs.rmSync(lock, { force: true });
}

/** The new layers a command may have made: the stack is at its old top, or at layers built on it. */
function assertOldOrNew(f: Fixture, what: string, rewrites = false): void {
  const now = head(f.gitdir);
  if (now === f.before || f.before === null) return;
  // A rewrite's new top is checked by the row's verify (the union it must hold), after the retry.
  if (rewrites) { assert.ok(now !== null, `${what}: the stack lost its layers`); return; }
  assert.ok(now !== null, `${what}: the stack lost its layers`);
  const below = git(f.gitdir, ['rev-list', '--first-parent', now!]).split('\n');
  assert.ok(below.includes(f.before), `${what}: the stack is at ${now}, not built on the old top ${f.before}`);
}

async function runFaulted(argv: string[], cwd: string, errno: string, nth: number): Promise<{ r: CliResult; state: FaultState }> {
  const state = injectFault({ errno, nth })!;
  try {
    const r = await glayer(cwd, ...argv);
    return { r, state: { ...state } };
  } finally {
    injectFault(null);
  }
}

const it = hasGit() ? test : test.skip;

const only = process.env.GLAYER_FAULT_ROWS ? new RegExp(process.env.GLAYER_FAULT_ROWS) : null;
for (const [name, row] of Object.entries(FAULT_TABLE).filter(([n]) => !only || only.test(n))) {
  it(`fault injection: ${name}, its file-system calls failing with ENOSPC or EIO`, async () => {
    process.env.GLAYER_LOCK_TIMEOUT_MS = '200';
    // By default one pass, the errno alternating with N (every call meets one of them); GLAYER_FAULT_FULL=1: a
    // pass per errno, every call (the full table).
    for (const cycle of FULL ? ERRNOS.map((e) => [e]) : [[...ERRNOS]]) {
      const errnoName = cycle.join('/');
      const t: Tally = { runs: 0, failed: 0, tolerated: 0, completedAt: 0, ms: 0 };
      const t0 = Date.now();
      tally.set(`${name} ${errnoName}`, t);
      const f = await row.setup();
      const pristine = join(tmpdir('glayer-fault-pristine-'), 'p');
      fs.cpSync(f.root, pristine, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
      const storeBefore = fingerprint(f.gitdir);
      const from = FULL || process.env.GLAYER_FAULT_STRIDE ? STRIDE_FROM : row.stride?.from ?? STRIDE_FROM;
      const step = FULL || process.env.GLAYER_FAULT_STRIDE ? STRIDE : row.stride?.step ?? STRIDE;
      for (let n = 1; n <= MAX_CALLS; n += n >= from ? step : 1) {
        fs.rmSync(f.root, { recursive: true, force: true });
        fs.cpSync(pristine, f.root, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
        const errno = cycle[n % cycle.length];
        const { r, state } = await runFaulted(row.argv, f.cwd, errno, n);
        t.runs++;
        const what = `${name}, ${errno} at call ${n} (${state.fired ?? 'not reached'})`;
        if (state.fired === null) {
          // The command made fewer than n calls: it completed. Done with this errno.
          assert.is(r.code, 0, `${what}: ${r.stderr}`);
          await row.verify(f);
          t.completedAt = state.calls;
          break;
        }
        assert.ok(r.code !== 70, `${what}: reported as a bug: ${r.stderr}`);
        assert.not.match(r.stderr, /\n\s+at /, `${what}: a stack trace: ${r.stderr}`);
        if (r.code === 0) t.tolerated++;
        else {
          t.failed++;
          const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('glayer: warning:'));
          assert.is(lines.length, 1, `${what}: expected one line on stderr: ${r.stderr}`);
        }
        dropOwnLock(f.gitdir);
        if (fs.existsSync(join(f.gitdir, 'HEAD')) && fingerprint(f.gitdir) !== storeBefore) {
          try { fsck(f.gitdir); } catch (e) { assert.unreachable(`${what}: git fsck --strict: ${(e as Error).message}`); }
          assertOldOrNew(f, what, row.rewrites);
        }
        // The same command, with the fault gone, succeeds (a first run that succeeded is not repeated: a second
        // commit would rightly find nothing to commit).
        if (r.code !== 0) {
          let again = await glayer(f.cwd, ...row.argv);
          // init and clone refuse a half-made target, as git clone does; the user removes it and runs it again.
          if (again.code === 2 && /already exists|not empty/.test(again.stderr) && (name === 'init' || name === 'clone')) {
            fs.rmSync(join(f.cwd, row.argv[row.argv.length - (name === 'init' ? 3 : 1)]), { recursive: true, force: true });
            again = await glayer(f.cwd, ...row.argv);
          }
          assert.is(again.code, 0, `${what}: the command again, without the fault: ${again.stderr}\n(first run: ${r.stderr})`);
        }
        try { await row.verify(f); } catch (e) { assert.unreachable(`${what}: after the retry: ${(e as Error).message} ${(e as { details?: string }).details ?? ''}\n(first run: ${r.code} ${r.stderr})`); }
      }
      t.ms = Date.now() - t0;
      assert.ok(t.completedAt > 0, `${name} ${errnoName}: did not complete within ${MAX_CALLS} calls`);
    }
  });
}

test.after(() => {
  if (tally.size === 0) return;
  const rows = [...tally].map(([k, t]) => `  ${k.padEnd(42)} calls ${String(t.completedAt).padStart(4)}  runs ${String(t.runs).padStart(4)}  failed ${String(t.failed).padStart(4)}  tolerated ${String(t.tolerated).padStart(3)}  ${(t.ms / 1000).toFixed(1)} s`);
  console.log(`\nfault injection (command, errno: file-system calls of a clean run; runs; runs that failed in one line; faults absorbed):\n${rows.join('\n')}`);
});

test.run();
