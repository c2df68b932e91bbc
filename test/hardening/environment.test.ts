// Faults of a real machine, met by the built CLI as a user meets them: a reader that goes away (`| head -1`), a
// small tmpfs that fills up, a read-only bind mount, a workspace owned by root used by `nobody`, and signals
// during a commit. Mounts and the foreign user need root (CI runs as root); those cases are skipped, with the
// reason printed, elsewhere. Every mount is undone in a finally.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fsck, git, hasGit } from '../helpers/git.js';
import { tmpdir } from '../helpers/tmp.js';
import { BIN, run, type Child } from './spawn.js';

// node warns on stderr when NO_COLOR (which the children get) meets FORCE_COLOR (which the test runner sets).
delete process.env.FORCE_COLOR;

const ROOT = process.getuid?.() === 0;
const canMount = ROOT && spawnSync('mount', ['--version']).status === 0;
if (!canMount) console.log('skipping the mount and foreign-user cases: they need root and mount(8)');
const rootIt = canMount && hasGit() ? test : test.skip;
const it = hasGit() ? test : test.skip;

function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): void {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

async function glayer(cwd: string, ...args: string[]): Promise<Child> {
  return run(cwd, args).done;
}

async function ok(cwd: string, ...args: string[]): Promise<Child> {
  const r = await glayer(cwd, ...args);
  if (r.code !== 0) throw new Error(`glayer ${args.join(' ')}: exit ${r.code ?? r.signal}: ${r.stderr}`);
  return r;
}

function oneLine(r: Child, code: number, what: string, pattern?: RegExp): void {
  assert.is(r.code, code, `${what}: exit ${r.code ?? r.signal}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.is(lines.length, 1, `${what}: one line expected: ${r.stderr}`);
  if (pattern) assert.match(lines[0], pattern, what);
}

function head(gitdir: string): string {
  return git(gitdir, ['rev-parse', 'HEAD']);
}

/** A workspace with `layers` layers (made with git fast-import: quick) and `changes` new files in its view. */
async function bigWorkspace(dir: string, opts: { layers: number; changes: number }): Promise<string> {
  const ws = join(dir, 'ws');
  await ok(dir, 'init', ws, '--template', 'etc');
  const gitdir = join(ws, '.glayer');
  const base = head(gitdir);
  let stream = '';
  for (let k = 0; k < opts.layers; k++) {
    const body = `layer ${k}\n`;
    const msg = `layer ${k} with a message long enough to make the log wide`;
    stream += `commit refs/heads/main\ncommitter T <t@example.com> ${1700000000 + k} +0000\ndata ${msg.length}\n${msg}\n`;
    if (k === 0) stream += `from ${base}\n`;
    stream += `M 100644 inline files/f${k}\ndata ${body.length}\n${body}\n`;
  }
  if (opts.layers) {
    const r = spawnSync('git', ['--git-dir', gitdir, 'fast-import', '--quiet'], { input: stream });
    if (r.status !== 0) throw new Error(`fast-import: ${r.stderr}`);
  }
  await ok(ws, 'mount-view');
  fs.mkdirSync(join(ws, 'view', 'many'));
  for (let k = 0; k < opts.changes; k++) fs.writeFileSync(join(ws, 'view', 'many', `file-${String(k).padStart(5, '0')}`), `line one of ${k}\nline two\n`);
  return ws;
}

it('a reader that goes away: `glayer CMD | head -1` stops quietly, exit 141 (SIGPIPE) or 0, for every long output', async () => {
  const ws = await bigWorkspace(tmpdir(), { layers: 1500, changes: 3000 });
  const cases = [
    ['status'], ['status', '--json'], ['diff'], ['diff', '--stat'], ['diff', '--json'], ['diff', '--name-only'],
    ['log'], ['log', '--json'], ['show', 'HEAD~1499'], ['show', '--json', 'HEAD~1499'], ['stacks'], ['info'],
  ];
  for (const args of cases) {
    // The output is over a pipe buffer (64 KiB) for all but the last two, which must simply not fail.
    const full = await ok(ws, ...args);
    const r = spawnSync('bash', ['-c', `"$0" "$@" | head -c 1 >/dev/null; echo "\${PIPESTATUS[0]}" >&2`, BIN, ...args], { cwd: ws, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
    const lines = r.stderr.trim().split('\n');
    const status = Number(lines.pop());
    assert.ok(status === 141 || status === 0, `${args.join(' ')}: exit ${status}: ${r.stderr}`);
    assert.is(lines.filter((l) => !/^glayer: warning:/.test(l)).join('\n'), '', `${args.join(' ')}: stderr: ${r.stderr}`);
    if (full.stdout.length > 65536) assert.is(status, 141, `${args.join(' ')} printed ${full.stdout.length} bytes`);
  }
  // Nothing was lost or half-written by the runs that were cut short.
  fsck(join(ws, '.glayer'));
  assert.is((await ok(ws, 'status')).stdout.split('\n').filter(Boolean).length, 3001);
});

rootIt('a full disk: commit fails in one line (74), status still answers, nothing is lost; with room, commit succeeds', async () => {
  const mnt = tmpdir();
  sh('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'glayer-test', mnt]);
  try {
    const ws = join(mnt, 'ws');
    await ok(mnt, 'init', ws, '--template', 'aufs-demo');
    await ok(ws, 'mount-view');
    const before = head(join(ws, '.glayer'));
    const big = randomBytes(3_500_000);
    fs.writeFileSync(join(ws, 'view', 'big.bin'), big);
    fs.writeFileSync(join(ws, 'view', 'test'), 'test2\n');

    const c = await glayer(ws, 'commit', '-m', 'big');
    oneLine(c, 74, 'commit on a full disk', /^glayer: no space left on device while .*\.glayer/);
    assert.is(head(join(ws, '.glayer')), before, 'the stack is where it was');
    fsck(join(ws, '.glayer'));
    assert.equal(fs.readdirSync(join(ws, '.glayer', 'objects', 'pack')).filter((n) => n.startsWith('tmp_')), [], 'no temporary pack left');

    // status needs no free space: it reports the view's changes (one warning: it could not record them).
    const s = await glayer(ws, 'status');
    assert.is(s.code, 0, s.stderr);
    assert.is(s.stdout, 'A big.bin\nC test\n');
    assert.ok(s.stderr.split('\n').filter(Boolean).length <= 1, s.stderr);
    assert.ok(fs.readFileSync(join(ws, 'view', 'big.bin')).equals(big), 'the edit is still in the view');

    sh('mount', ['-o', 'remount,size=32m', mnt]);
    const again = await ok(ws, 'commit', '-m', 'big');
    assert.is(again.stdout.trim(), head(join(ws, '.glayer')));
    fsck(join(ws, '.glayer'));
    assert.is((await ok(ws, 'status')).stdout, '');
    const out = join(mnt, 'check');
    await ok(ws, 'mount-view', out);
    assert.ok(fs.readFileSync(join(out, 'big.bin')).equals(big));
  } finally {
    spawnSync('umount', ['-l', mnt]);
  }
});

/** A workspace with one layer above its base and edits in the view; returns it and the expected status. */
async function editedWorkspace(): Promise<{ ws: string; status: string }> {
  const dir = tmpdir();
  fs.chmodSync(dir, 0o755);
  const ws = join(dir, 'ws');
  await ok(dir, 'init', ws, '--template', 'etc');
  await ok(ws, 'mount-view');
  fs.writeFileSync(join(ws, 'view', 'etc', 'hostname'), 'renamed\n');
  await ok(ws, 'commit', '-m', 'hostname');
  fs.writeFileSync(join(ws, 'view', 'etc', 'motd'), 'hello\n');
  fs.rmSync(join(ws, 'view', 'etc', 'hostname'));
  return { ws, status: 'D etc/hostname\nA etc/motd\n' };
}

const READERS: Array<[string[], RegExp]> = [
  [['status'], /^D etc\/hostname\nA etc\/motd\n$/],
  [['diff', '--name-status'], /^D\tetc\/hostname\nA\tetc\/motd\n$/],
  [['log'], /hostname/],
  [['show'], /renamed/],
  [['info'], /layers\s+2/],
  [['blame', 'etc/hostname'], /hostname/],
  [['fsck', '--dry-run'], /ok/],
  [['efficiency'], /efficiency\s+\d/],
];

async function readersAnswer(ws: string, as: (args: string[]) => Promise<Child>): Promise<void> {
  for (const [args, want] of READERS) {
    const r = await as(args);
    assert.is(r.code, 0, `${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    assert.match(r.stdout, want, `${args.join(' ')}: ${r.stdout}`);
    assert.ok(r.stderr.split('\n').filter(Boolean).length <= 1, `${args.join(' ')}: at most one warning: ${r.stderr}`);
    assert.not.match(r.stderr, /internal error|\n\s+at /, r.stderr);
  }
}

rootIt('a read-only bind mount: the reading commands answer without writing; the writing ones refuse in one line (77)', async () => {
  const { ws } = await editedWorkspace();
  const before = head(join(ws, '.glayer'));
  // The workspace mounted read-only on itself: every path (the view's recorded one too) is read-only.
  sh('mount', ['--bind', ws, ws]);
  try {
    sh('mount', ['-o', 'remount,bind,ro', ws]);
    await readersAnswer(ws, (args) => glayer(ws, ...args));
    for (const args of [['commit', '-m', 'x'], ['mount-view']]) {
      oneLine(await glayer(ws, ...args), 77, args[0], /^glayer: read-only file system while .*\/ws\/\.glayer/);
    }
  } finally {
    spawnSync('umount', ['-l', ws]);
  }
  // Nothing was written: the edits are recorded by the first status with write access, and efficiency kept no
  // cache entry.
  assert.is(head(join(ws, '.glayer')), before);
  assert.not.ok(fs.existsSync(join(ws, '.glayer', 'glayer', 'cache', 's')), 'no efficiency cache entry');
  assert.is((await ok(ws, 'status')).stdout, 'D etc/hostname\nA etc/motd\n');
  fsck(join(ws, '.glayer'));
});

rootIt("another user's workspace: `nobody` can read root's workspace with every reading command, and writes are refused (77)", async () => {
  const { ws } = await editedWorkspace();
  const before = head(join(ws, '.glayer'));
  const asNobody = (args: string[]): Promise<Child> => new Promise((resolve) => {
    const r = spawnSync('runuser', ['-u', 'nobody', '--', BIN, ...args], { cwd: ws, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', HOME: '/nonexistent' } });
    resolve({ code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr });
  });
  await readersAnswer(ws, asNobody);
  oneLine(await asNobody(['commit', '-m', 'x']), 77, 'commit as nobody', /^glayer: permission denied while .*\.glayer/);
  assert.is(head(join(ws, '.glayer')), before);
  assert.not.ok(fs.existsSync(join(ws, '.glayer', 'glayer', 'cache', 's')), 'no efficiency cache entry');
  assert.is((await ok(ws, 'status')).stdout, 'D etc/hostname\nA etc/motd\n');
  fsck(join(ws, '.glayer'));
});

it('signals during a commit: SIGINT, SIGTERM, SIGHUP exit 130, 143, 129, leaving the old layer or the new one and no lock', async () => {
  const dir = tmpdir();
  const ws = join(dir, 'ws');
  await ok(dir, 'init', ws, '--template', 'aufs-demo');
  await ok(ws, 'mount-view');
  for (let k = 0; k < 2000; k++) fs.writeFileSync(join(ws, 'view', `f${k}`), `${k}\n`.repeat(50));
  fs.writeFileSync(join(ws, 'view', 'big'), randomBytes(8 << 20));
  // How long a whole commit takes here, to send signals inside it.
  const t0 = Date.now();
  const probe = join(dir, 'probe');
  fs.cpSync(ws, probe, { recursive: true });
  await ok(probe, 'commit', '-m', 'probe');
  const took = Date.now() - t0;
  const seen = new Map<string, number>();
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129], ['SIGINT', 130], ['SIGTERM', 143], ['SIGINT', 130]] as const) {
    const before = head(join(ws, '.glayer'));
    const { child, done } = run(ws, ['commit', '-m', `try ${signal}`]);
    await new Promise((r) => setTimeout(r, took * (0.3 + 0.5 * Math.random())));
    child.kill(signal);
    const r = await done;
    const now = head(join(ws, '.glayer'));
    // Killed before node had run our handlers (start-up) counts as the shell's status for the signal too.
    const status = r.code ?? (r.signal === signal ? code : -1);
    assert.ok(status === code || status === 0, `${signal}: exit ${r.code} ${r.signal}: ${r.stderr}`);
    seen.set(`${signal} ${status}`, (seen.get(`${signal} ${status}`) ?? 0) + 1);
    assert.ok(now === before || git(join(ws, '.glayer'), ['rev-parse', `${now}~1`]) === before, `${signal}: the stack is at ${now}`);
    assert.not.ok(fs.existsSync(join(ws, '.glayer', 'glayer', 'lock')), `${signal}: the workspace lock is left`);
    assert.equal(fs.readdirSync(join(ws, '.glayer', 'objects', 'pack')).filter((n) => n.startsWith('tmp_')), [], `${signal}: a temporary pack is left`);
    fsck(join(ws, '.glayer'));
    if (now !== before) break; // committed: nothing left to interrupt
  }
  console.log(`signals during commit (signal, exit: count): ${[...seen].map(([k, n]) => `${k}: ${n}`).join(', ')}`);
  // Whatever happened, the edits are in the new layer or still in the view; the next commit (or status) works.
  const s = await glayer(ws, 'commit', '-m', 'after the signals');
  assert.ok(s.code === 0 || s.code === 1, s.stderr);
  assert.is((await ok(ws, 'status')).stdout, '');
  const out = join(dir, 'check');
  await ok(ws, 'mount-view', out);
  assert.is(fs.readFileSync(join(out, 'f1999'), 'utf8'), '1999\n'.repeat(50));
});

test.run();
