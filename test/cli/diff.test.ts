// `glayer diff`, `show` and `blame` against native git as the oracle: the views of two layers are kept side by
// side (copies of the view right after each commit), and `git diff --no-index` of those directories must show
// the same files and the same hunks as `glayer diff A B`; `git apply` of glayer's patch on a copy of the lower
// view must give the upper view; a git repository holding the two views gives the oracle for --stat and
// --name-status.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { spawnSync, execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { diff } from '../../src/api/diff.js';
import { glayer, glayerOk } from '../helpers/cli.js';
import { commitTree, fsck, git, GIT_ENV, mktree } from '../helpers/git.js';
import { collidingLayers } from '../helpers/layers.js';
import { snapshot, snapshotDiff } from '../helpers/snapshot.js';
import { tmpdir } from '../helpers/tmp.js';

const LOWER = 'lower.d';
const UPPER = 'upper.d';

interface Fixture { base: string; ws: string; gitdir: string; view: string; ids: string[]; snaps: string[] }

// ---- the scenario: three layers, with every kind of change -------------------------------------------------

const big = (edit: boolean): string => {
  const lines: string[] = [];
  for (let i = 1; i <= 200; i++) {
    if (edit && i === 100) lines.push('  inserted after 99');
    if (edit && (i === 55 || i === 150)) { lines.push(`  item ${i} changed`); continue; }
    lines.push(i % 20 === 1 ? `section ${i}` : `  item ${i}`);
  }
  if (edit) lines.push('  appended at the end');
  return lines.join('\n') + '\n';
};

const passwd1 = 'root:x:0:0\ndaemon:x:1:1\nbin:x:2:2\nsys:x:3:3\nsync:x:4:65534\ngames:x:5:60\nman:x:6:12\nlp:x:7:7\n';
const passwd2 = 'root:x:0:0\ndaemon:x:1:1\nbin:x:2:2:changed\nsys:x:3:3\nsync:x:4:65534\ngames:x:5:60\nman:x:6:12\nlp:x:7:7\napp:x:1000:1000\n';

type Op = (v: string) => void;
const write = (p: string, data: string | Buffer, mode = 0o644): Op => (v) => {
  fs.mkdirSync(dirname(join(v, p)), { recursive: true });
  fs.writeFileSync(join(v, p), data);
  fs.chmodSync(join(v, p), mode);
};
const link = (p: string, target: string): Op => (v) => { fs.mkdirSync(dirname(join(v, p)), { recursive: true }); fs.symlinkSync(target, join(v, p)); };
const rm = (p: string): Op => (v) => fs.rmSync(join(v, p), { recursive: true });
const chmod = (p: string, mode: number): Op => (v) => fs.chmodSync(join(v, p), mode);
const mv = (a: string, b: string): Op => (v) => fs.renameSync(join(v, a), join(v, b));

function layerOps(binary: boolean): Op[][] {
  const l1: Op[] = [
    write('etc/passwd', passwd1), write('etc/hosts', '127.0.0.1 localhost\n'),
    write('bin/tool', '#!/bin/sh\necho v1\n', 0o755),
    write('data/big.txt', big(false)),
    write('olddir/a', 'a\n'), write('olddir/b/c', 'c\n'), write('olddir/b/d', 'd\n'),
    write('rename/src.txt', 'moved content\nline 2\n'),
    link('link', 'etc/passwd'),
    write('mode/file', 'mode\n'),
    write('nonl', 'one\ntwo'),
    write('f2d', 'was a file\n'),
    write('d2f/x', 'x\n'), write('d2f/y/z', 'z\n'),
    write('filelink', 'plain\n'),
    write('empty', ''),
    write('sp ace.txt', 'space\n'),
    write('ünï.txt', 'unicode\n'),
    write('a/b', 'walk order\n'), write('a-b', 'dash\n'), write('a.txt', 'dot\n'),
  ];
  const l2: Op[] = [
    write('etc/passwd', passwd2),
    write('bin/tool', '#!/bin/sh\necho v2\n', 0o755),
    write('data/big.txt', big(true)),
    rm('olddir'),
    mv('rename/src.txt', 'rename/dst.txt'),
    rm('link'), link('link', 'etc/hosts'),
    chmod('mode/file', 0o755),
    write('nonl', 'one\ntwo\nthree'),
    rm('f2d'), write('f2d/inner', 'inner\n'),
    rm('d2f'), write('d2f', 'now a file\n'),
    rm('filelink'), link('filelink', 'etc/hosts'),
    write('new/dir/file', 'brand new\n'),
    rm('empty'), write('empty2', ''),
    write('ünï.txt', 'unicode 2\n'),
    rm('sp ace.txt'),
    write('a/b', 'walk order 2\n'), write('a-b', 'dash 2\n'), write('a.txt', 'dot 2\n'),
  ];
  if (binary) {
    l1.push(write('lib/liba.so', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 3])), write('lib/gone.bin', Buffer.from([0, 0, 0])));
    l2.push(write('lib/liba.so', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 9, 9, 9, 9])), rm('lib/gone.bin'), write('lib/new.bin', Buffer.from([1, 0, 2])));
  }
  const l3: Op[] = [write('etc/hosts', '127.0.0.1 localhost\n::1 localhost\n')];
  return [l1, l2, l3];
}

/** A workspace with the scenario's layers; a copy of the view is kept after each commit (snaps[i] for ids[i]). */
async function scenario(binary = true): Promise<Fixture> {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  await glayerOk(ws, 'mount-view');
  const view = join(ws, 'view');
  const ids: string[] = [];
  const snaps: string[] = [];
  for (const [i, ops] of layerOps(binary).entries()) {
    for (const op of ops) op(view);
    ids.push(JSON.parse((await glayerOk(ws, 'commit', '-m', `layer ${i + 1}\n\nbody of layer ${i + 1}`, '--json')).stdout).id);
    const snap = join(base, `snap${i + 1}`);
    execFileSync('cp', ['-a', view, snap]);
    snaps.push(snap);
  }
  return { base, ws, gitdir: join(ws, '.glayer'), view, ids, snaps };
}

// ---- the oracle -------------------------------------------------------------------------------------------

/** `git diff --no-index` of two directories, side by side under one parent as LOWER and UPPER. */
function gitNoIndex(lower: string, upper: string, args: string[] = []): string {
  const parent = tmpdir('glayer-diff-oracle-');
  execFileSync('cp', ['-a', lower, join(parent, LOWER)]);
  execFileSync('cp', ['-a', upper, join(parent, UPPER)]);
  const r = spawnSync('git', ['diff', '--no-index', '--no-renames', ...args, LOWER, UPPER], { cwd: parent, env: { ...GIT_ENV, GIT_CEILING_DIRECTORIES: dirname(parent) }, maxBuffer: 1 << 28 });
  if (r.status !== 0 && r.status !== 1) throw new Error(`git diff --no-index failed: ${r.stderr}`);
  return r.stdout.toString('latin1');
}

/** Compare patches without `index` lines, and with git's `a/LOWER/` `b/UPPER/` prefixes made `a/` `b/`. */
function normalize(patch: string): string {
  return patch.split('\n')
    .filter((l) => !/^(\x1b\[1m)?index [0-9a-f]+\.\.[0-9a-f]+/.test(l))
    .map((l) => (/^(\x1b\[1m)?(diff --git |--- |\+\+\+ |Binary files )/.test(l) ? l.replace(/(^|[ "]|\x1b\[1m(?:--- |\+\+\+ |diff --git )?)(a|b)\/(lower\.d|upper\.d)\//g, '$1$2/') : l))
    .join('\n');
}

function assertSamePatch(ours: string, theirs: string, label: string): void {
  const a = normalize(ours);
  const b = normalize(theirs);
  if (a !== b) {
    const x = a.split('\n'), y = b.split('\n');
    let i = 0;
    while (i < x.length && x[i] === y[i]) i++;
    assert.unreachable(`${label}: glayer and git differ at line ${i + 1}:\n  glayer: ${JSON.stringify(x[i])}\n  git:    ${JSON.stringify(y[i])}\ncontext:\n${x.slice(Math.max(0, i - 5), i + 3).join('\n')}`);
  }
}

/** A git repository with the two views as two commits (for --stat and --name-status, which --no-index names oddly). */
function gitRepoOf(lower: string, upper: string): { dir: string; c1: string; c2: string } {
  const dir = tmpdir('glayer-diff-repo-');
  const env = { ...GIT_ENV, GIT_CEILING_DIRECTORIES: dirname(dir) };
  const run = (args: string[]): string => execFileSync('git', args, { cwd: dir, env }).toString('latin1').trim();
  run(['init', '-q']);
  const commitView = (src: string, msg: string): string => {
    for (const n of fs.readdirSync(dir)) if (n !== '.git') fs.rmSync(join(dir, n), { recursive: true });
    execFileSync('cp', ['-a', `${src}/.`, dir]);
    // cp -a keeps mtimes: an equal size and mtime would make git trust its index. Hash everything again.
    fs.rmSync(join(dir, '.git', 'index'), { force: true });
    run(['add', '-A']);
    run(['commit', '-q', '--allow-empty', '-m', msg]);
    return run(['rev-parse', 'HEAD']);
  };
  const c1 = commitView(lower, 'lower');
  const c2 = commitView(upper, 'upper');
  return { dir, c1, c2 };
}

function gitIn(dir: string, args: string[]): string {
  return execFileSync('git', args, { cwd: dir, env: { ...GIT_ENV, GIT_CEILING_DIRECTORIES: dirname(dir) } }).toString('latin1');
}

const sortedLines = (s: string): string[] => s.split('\n').filter((l) => l !== '').sort();

let fx: Fixture;
test.before(async () => { fx = await scenario(); });

// ---- diff against git -------------------------------------------------------------------------------------

test('diff A B: the same files and hunks as git diff --no-index of the two views', async () => {
  const [l1, l2] = fx.ids;
  const ours = (await glayerOk(fx.ws, 'diff', '--no-renames', l1, l2)).stdout;
  const theirs = gitNoIndex(fx.snaps[0], fx.snaps[1]);
  // Every kind of change is really in there.
  for (const want of [
    /^old mode 100644\nnew mode 100755$/m, // mode change
    /^new file mode 120000$/m, // symlink
    /^Binary files a\/lib\/liba\.so and b\/lib\/liba\.so differ$/m,
    /^Binary files \/dev\/null and b\/lib\/new\.bin differ$/m,
    /^diff --git a\/olddir\/b\/d b\/olddir\/b\/d\ndeleted file mode 100644$/m, // deleted directory, per file
    /^diff --git a\/rename\/dst\.txt b\/rename\/dst\.txt\nnew file mode 100644$/m, // rename: addition ...
    /^diff --git a\/rename\/src\.txt b\/rename\/src\.txt\ndeleted file mode 100644$/m, // ... and deletion
    /^diff --git "a\/\\303\\274n\\303\\257\.txt" "b\/\\303\\274n\\303\\257\.txt"$/m, // quoted non-ASCII path
    /^@@ -52,7 \+52,7 @@ section 41$/m, // git's hunk heading
    /^\\ No newline at end of file$/m,
  ]) assert.match(ours, want);
  assertSamePatch(ours, theirs, 'diff l1 l2');
  // One layer: against the union beneath it, the same thing.
  assert.is((await glayerOk(fx.ws, 'diff', '--no-renames', l2)).stdout, ours);
  assert.is((await glayerOk(fx.ws, 'diff', '--no-renames', `${l1}..${l2}`)).stdout, ours);
  // The other way round, and across two layers.
  assertSamePatch((await glayerOk(fx.ws, 'diff', '--no-renames', 'HEAD', 'HEAD~2')).stdout, gitNoIndex(fx.snaps[2], fx.snaps[0]), 'diff HEAD HEAD~2');
  // The bottom layer: against nothing.
  const empty = tmpdir();
  assertSamePatch((await glayerOk(fx.ws, 'diff', '--no-renames', 'HEAD~2')).stdout, gitNoIndex(empty, fx.snaps[0]), 'diff HEAD~2');
  fsck(fx.gitdir);
});

test('diff -U N and path limits match git', async () => {
  const [l1, l2] = fx.ids;
  for (const n of ['0', '1', '10']) {
    assertSamePatch((await glayerOk(fx.ws, 'diff', '--no-renames', '-U', n, l1, l2)).stdout, gitNoIndex(fx.snaps[0], fx.snaps[1], [`-U${n}`]), `-U ${n}`);
  }
  const limited = (await glayerOk(fx.ws, 'diff', '--no-renames', '--name-only', l1, l2, '--', 'olddir/b', 'etc', 'nosuch', 'a')).stdout;
  assert.equal(limited.split('\n').filter(Boolean), ['a/b', 'etc/passwd', 'olddir/b/c', 'olddir/b/d']);
  // From inside the view, paths are relative to the current directory.
  const inside = (await glayerOk(join(fx.view, 'etc'), 'diff', '--name-only', l1, l2, '--', 'passwd', '../nonl')).stdout;
  assert.equal(inside.split('\n').filter(Boolean), ['etc/passwd', 'nonl']);
  // A path after `--` that looks like a layer name is a path.
  assert.is((await glayerOk(fx.ws, 'diff', '--no-renames', '--name-only', l1, l2, '--', 'HEAD')).stdout, '');
});

test('diff of the writable layer, and --view', async () => {
  const view = fx.view;
  fs.writeFileSync(join(view, 'etc/passwd'), passwd1);
  fs.rmSync(join(view, 'data'), { recursive: true });
  fs.symlinkSync('../nowhere', join(view, 'dangling'));
  fs.chmodSync(join(view, 'bin/tool'), 0o644);
  try {
    const current = tmpdir();
    execFileSync('cp', ['-a', `${view}/.`, current]);
    const ours = (await glayerOk(fx.ws, 'diff')).stdout;
    assert.match(ours, /^diff --git a\/data\/big\.txt b\/data\/big\.txt\ndeleted file mode 100644$/m);
    assertSamePatch(ours, gitNoIndex(fx.snaps[2], current), 'diff (writable layer)');
    assert.is((await glayerOk(fx.ws, 'diff', '--no-renames', '--view')).stdout, ours);
    assertSamePatch((await glayerOk(fx.ws, 'diff', '--no-renames', '--view', 'HEAD~2')).stdout, gitNoIndex(fx.snaps[0], current), 'diff --view HEAD~2');
    // --exit-code and --quiet.
    const q = await glayer(fx.ws, 'diff', '--no-renames', '--quiet');
    assert.is(q.code, 1);
    assert.is(q.stdout, '');
    assert.is((await glayer(fx.ws, 'diff', '--no-renames', '--exit-code', '--stat')).code, 1);
  } finally {
    fs.writeFileSync(join(view, 'etc/passwd'), passwd2);
    execFileSync('cp', ['-a', join(fx.snaps[2], 'data'), join(view, 'data')]);
    fs.rmSync(join(view, 'dangling'));
    fs.chmodSync(join(view, 'bin/tool'), 0o755);
  }
  const clean = await glayer(fx.ws, 'diff', '--no-renames', '--exit-code');
  assert.is(clean.stdout, '');
  assert.is(clean.code, 0);
  assert.is((await glayer(fx.ws, 'diff', '--no-renames', 'HEAD', 'HEAD', '--exit-code')).code, 0);
  fsck(fx.gitdir);
});

test('git apply of glayer diff on a copy of the lower view gives the upper view (text changes)', async () => {
  const t = await scenario(false);
  const patch = (await glayerOk(t.ws, 'diff', '--no-renames', t.ids[0], t.ids[1])).stdout;
  const work = tmpdir();
  execFileSync('cp', ['-a', `${t.snaps[0]}/.`, work]);
  const r = spawnSync('git', ['apply', '--verbose', '-'], { cwd: work, input: Buffer.from(patch, 'latin1'), env: { ...GIT_ENV, GIT_CEILING_DIRECTORIES: dirname(work) } });
  assert.is(r.status, 0, `git apply failed:\n${r.stderr}`);
  const files = (dir: string) => Object.fromEntries(Object.entries(snapshot(dir)).filter(([, d]) => d !== 'dir'));
  const got = files(work);
  const want = files(t.snaps[1]);
  assert.equal(got, want, snapshotDiff(got, want, ['applied', 'upper']));
  fsck(t.gitdir);
});

test('--stat, --name-status and --name-only match git', async () => {
  const [l1, l2] = fx.ids;
  const repo = gitRepoOf(fx.snaps[0], fx.snaps[1]);
  for (const [flag, gitFlag] of [['--name-status', '--name-status'], ['--name-only', '--name-only']]) {
    const ours = (await glayerOk(fx.ws, 'diff', '--no-renames', flag, l1, l2)).stdout;
    assert.equal(sortedLines(ours), sortedLines(gitIn(repo.dir, ['diff', '--no-renames', gitFlag, repo.c1, repo.c2])), flag);
  }
  const stat = (await glayerOk(fx.ws, 'diff', '--no-renames', '--stat', l1, l2)).stdout;
  const gitStat = gitIn(repo.dir, ['diff', '--no-renames', '--stat', repo.c1, repo.c2]);
  const summary = (s: string) => s.trimEnd().split('\n').pop();
  assert.is(summary(stat), summary(gitStat));
  assert.equal(sortedLines(stat), sortedLines(gitStat));
  assert.match(stat, /^ lib\/liba\.so +\| Bin 8 -> 9 bytes$/m);
  assert.match(stat, /^ filelink +\| +2 \+-$/m); // a change of kind is one entry
  // A narrow name column and a scaled bar, as git draws them for long names and big changes.
  const t = tmpdir();
  await glayerOk(t, 'init', 'ws');
  const ws = join(t, 'ws');
  await glayerOk(ws, 'mount-view');
  const long = 'a-rather-long-directory-name/with-a-long-subdirectory/and-a-file-name-that-goes-on.txt';
  fs.mkdirSync(join(ws, 'view', dirname(long)), { recursive: true });
  fs.writeFileSync(join(ws, 'view', long), Array.from({ length: 300 }, (_, i) => `line ${i}\n`).join(''));
  fs.writeFileSync(join(ws, 'view', 'small'), 'x\n');
  const c1 = JSON.parse((await glayerOk(ws, 'commit', '-m', 'one', '--json')).stdout).id;
  const r2 = gitRepoOf(tmpdir(), join(ws, 'view'));
  assert.is((await glayerOk(ws, 'diff', '--stat', c1)).stdout, gitIn(r2.dir, ['diff', '--stat', r2.c1, r2.c2]));
  fsck(join(ws, '.glayer'));
});

test('colours are git\'s when asked for, off with --no-color', async () => {
  const [l1, l2] = fx.ids;
  const ours = (await glayerOk(fx.ws, 'diff', '--no-renames', '--color', l1, l2)).stdout;
  assert.match(ours, /^\x1b\[1mdiff --git a\/etc\/passwd b\/etc\/passwd\x1b\[m$/m);
  assert.match(ours, /^\x1b\[31m-bin:x:2:2\x1b\[m$/m);
  assertSamePatch(ours, gitNoIndex(fx.snaps[0], fx.snaps[1], ['--color=always']), 'coloured patch');
  const stat = (await glayerOk(fx.ws, 'diff', '--no-renames', '--color', '--stat', l1, l2)).stdout;
  assert.match(stat, /\x1b\[32m\+\x1b\[m\x1b\[31m-\x1b\[m/);
  const plain = (await glayerOk(fx.ws, 'diff', '--no-renames', '--no-color', l1, l2)).stdout;
  assert.not.match(plain, /\x1b/);
  // The test helper sets NO_COLOR: without --color there is no colour either.
  assert.not.match((await glayerOk(fx.ws, 'diff', '--no-renames', l1, l2)).stdout, /\x1b/);
});

test('--json: per file path, change, kinds, modes, sizes and hunks', async () => {
  const files = JSON.parse((await glayerOk(fx.ws, 'diff', '--no-renames', '--json', fx.ids[0], fx.ids[1])).stdout) as Array<Record<string, any>>;
  const by = (p: string, change?: string) => files.find((f) => f.path === p && (!change || f.change === change));
  assert.equal(by('etc/passwd')!.old, { kind: 'file', mode: '100644', oid: git(fx.gitdir, ['rev-parse', `${fx.ids[0]}:etc/passwd`]), size: passwd1.length });
  assert.is(by('etc/passwd')!.new.size, passwd2.length);
  assert.equal(by('etc/passwd')!.hunks, [{ oldStart: 1, oldLines: 8, newStart: 1, newLines: 9, heading: '', lines: [
    ' root:x:0:0', ' daemon:x:1:1', '-bin:x:2:2', '+bin:x:2:2:changed', ' sys:x:3:3', ' sync:x:4:65534', ' games:x:5:60', ' man:x:6:12', ' lp:x:7:7', '+app:x:1000:1000',
  ] }]);
  assert.is(by('etc/passwd')!.added, 2);
  assert.is(by('etc/passwd')!.deleted, 1);
  assert.is(by('mode/file')!.change, 'M');
  assert.equal([by('mode/file')!.old.mode, by('mode/file')!.new.mode, by('mode/file')!.hunks], ['100644', '100755', []]);
  assert.equal([by('filelink', 'D')!.typeChange, by('filelink', 'A')!.new.kind], [true, 'symlink']);
  assert.is(by('lib/liba.so')!.binary, true);
  assert.is(by('ünï.txt')!.change, 'M');
  assert.is(by('olddir/b/c')!.change, 'D');
  assert.is(files.length, (await glayerOk(fx.ws, 'diff', '--no-renames', '--name-only', fx.ids[0], fx.ids[1])).stdout.split('\n').filter(Boolean).length + 1); // filelink twice
});

test('big inputs: a diff past the time bound prints a files-differ line; files come one at a time', async () => {
  const t = tmpdir();
  await glayerOk(t, 'init', 'ws');
  const ws = join(t, 'ws');
  await glayerOk(ws, 'mount-view');
  const text = (seed: string) => Array.from({ length: 4000 }, (_, i) => `${seed} ${(i * 7919) % 4000} ${seed}\n`).join('');
  fs.writeFileSync(join(ws, 'view', 'huge.txt'), text('a'));
  fs.writeFileSync(join(ws, 'view', 'small.txt'), 'one\n');
  const c1 = JSON.parse((await glayerOk(ws, 'commit', '-m', 'one', '--json')).stdout).id;
  fs.writeFileSync(join(ws, 'view', 'huge.txt'), text('b'));
  fs.writeFileSync(join(ws, 'view', 'small.txt'), 'two\n');
  const c2 = JSON.parse((await glayerOk(ws, 'commit', '-m', 'two', '--json')).stdout).id;
  process.env.GLAYER_DIFF_TIMEOUT_MS = '1';
  let out: string;
  try { out = (await glayerOk(ws, 'diff', c1, c2)).stdout; } finally { delete process.env.GLAYER_DIFF_TIMEOUT_MS; }
  assert.match(out, /^diff --git a\/huge\.txt b\/huge\.txt\nindex [0-9a-f]{7}\.\.[0-9a-f]{7} 100644\nFiles a\/huge\.txt and b\/huge\.txt differ$/m);
  assert.match(out, /^-one\n\+two$/m);
  // The API hands files over one by one and keeps none when onFile takes them.
  const seen: string[] = [];
  const r = await diff({ cwd: ws, from: c1, to: c2, maxBytes: 1000, onFile: (f) => { seen.push(`${f.path}:${f.skipped}`); } });
  assert.equal(seen, ['huge.txt:too-large', 'small.txt:null']);
  assert.equal([r.files, r.count], [[], 2]);
  fsck(join(ws, '.glayer'));
});

// ---- show and blame ---------------------------------------------------------------------------------------

test('show LAYER: id, author, date, message, then the layer\'s diff', async () => {
  const id = fx.ids[1];
  const out = (await glayerOk(fx.ws, 'show', '--no-renames', id.slice(0, 8))).stdout;
  // The header is git show's, with 'layer' for 'commit'.
  const gitHeader = (c: string) => git(fx.gitdir, ['show', '-s', '--no-decorate', c]).replace(/^commit /, 'layer ') + '\n\n';
  assert.match(gitHeader(id), /^layer [0-9a-f]{40}\nAuthor: .+ <.+>\nDate:   \w{3} \w{3} \d+ \d\d:\d\d:\d\d \d{4} [+-]\d{4}\n\n    layer 2\n    \n    body of layer 2\n\n$/);
  assert.is(out, gitHeader(id) + (await glayerOk(fx.ws, 'diff', '--no-renames', id)).stdout);
  // Default: the stack top; options as diff's.
  const top = (await glayerOk(fx.ws, 'show', '--name-status')).stdout;
  assert.is(top, gitHeader(fx.ids[2]) + 'M\tetc/hosts\n');
  // A date in a time zone west of UTC, as git prints it.
  const t = tmpdir();
  await glayerOk(t, 'init', 'ws');
  const ws = join(t, 'ws');
  await glayerOk(ws, 'mount-view');
  fs.writeFileSync(join(ws, 'view', 'f'), 'f\n');
  const saved = process.env.GIT_AUTHOR_DATE;
  process.env.GIT_AUTHOR_DATE = '1700000000 -0730';
  try { await glayerOk(ws, 'commit', '-m', 'dated'); } finally { if (saved === undefined) delete process.env.GIT_AUTHOR_DATE; else process.env.GIT_AUTHOR_DATE = saved; }
  const dated = (await glayerOk(ws, 'show', '--stat')).stdout;
  assert.match(dated, /^Date: {3}Tue Nov 14 14:43:20 2023 -0730$/m);
  assert.is(dated.split('\n\n')[0], git(join(ws, '.glayer'), ['show', '-s', '--no-decorate', 'HEAD']).replace(/^commit /, 'layer ').split('\n\n')[0]);
  fsck(join(ws, '.glayer'));
  const json = JSON.parse((await glayerOk(fx.ws, 'show', '--json', 'HEAD~1', '--', 'etc')).stdout);
  assert.is(json.id, id);
  assert.is(json.parent, fx.ids[0]);
  assert.is(json.message, 'layer 2\n\nbody of layer 2');
  assert.equal(json.files.map((f: { path: string }) => f.path), ['etc/passwd']);
});

test('blame PATH: every layer that added, changed or deleted it (or anything under it), top first', async () => {
  const blame = async (p: string, cwd = fx.ws) => JSON.parse((await glayerOk(cwd, 'blame', '--json', p)).stdout).entries.map((e: { id: string; change: string; kind: string; size: number | null; files: object }) => [fx.ids.indexOf(e.id) + 1, e.change, e.kind, e.size, e.files]);
  const cases: Array<[string, unknown[]]> = [
    ['etc/passwd', [[2, 'C', 'file', passwd2.length, { added: 0, changed: 1, deleted: 0 }], [1, 'A', 'file', passwd1.length, { added: 1, changed: 0, deleted: 0 }]]],
    ['etc', [[3, 'C', 'dir', passwd2.length + 34, { added: 0, changed: 1, deleted: 0 }], [2, 'C', 'dir', passwd2.length + 20, { added: 0, changed: 1, deleted: 0 }], [1, 'A', 'dir', passwd1.length + 20, { added: 2, changed: 0, deleted: 0 }]]],
    ['olddir', [[2, 'D', 'dir', null, { added: 0, changed: 0, deleted: 3 }], [1, 'A', 'dir', 6, { added: 3, changed: 0, deleted: 0 }]]],
    ['olddir/b/c', [[2, 'D', 'file', null, { added: 0, changed: 0, deleted: 1 }], [1, 'A', 'file', 2, { added: 1, changed: 0, deleted: 0 }]]],
    ['f2d', [[2, 'C', 'dir', 6, { added: 1, changed: 0, deleted: 1 }], [1, 'A', 'file', 11, { added: 1, changed: 0, deleted: 0 }]]],
    ['filelink', [[2, 'C', 'symlink', 9, { added: 0, changed: 1, deleted: 0 }], [1, 'A', 'file', 6, { added: 1, changed: 0, deleted: 0 }]]],
    ['new/dir', [[2, 'A', 'dir', 10, { added: 1, changed: 0, deleted: 0 }]]],
    ['bin/tool', [[2, 'C', 'file', 18, { added: 0, changed: 1, deleted: 0 }], [1, 'A', 'file', 18, { added: 1, changed: 0, deleted: 0 }]]],
    ['never/there', []],
  ];
  for (const [p, want] of cases) assert.equal(await blame(p), want, p);
  // Relative to the current directory inside the view.
  assert.equal(await blame('passwd', join(fx.view, 'etc')), cases[0][1]);
  const text = (await glayerOk(fx.ws, 'blame', 'etc/passwd')).stdout.split('\n');
  assert.match(text[0], /^LAYER +CREATED +CHANGE +KIND +SIZE +FILES +MESSAGE$/);
  assert.match(text[1], new RegExp(`^${fx.ids[1].slice(0, 12)} .* C +file +${passwd2.length} B +\\+0 ~1 -0 +layer 2$`));
  assert.match(text[2], new RegExp(`^${fx.ids[0].slice(0, 12)} .* A +file +`));
});

// ---- errors -----------------------------------------------------------------------------------------------

test('errors: unknown or ambiguous layers, other stacks, paths outside the view: one line, non-zero exit', async () => {
  const t = await (async () => {
    const base = tmpdir();
    await glayerOk(base, 'init', 'ws');
    const ws = join(base, 'ws');
    await glayerOk(ws, 'mount-view');
    fs.writeFileSync(join(ws, 'view', 'f'), 'f\n');
    const id = JSON.parse((await glayerOk(ws, 'commit', '-m', 'one', '--json')).stdout).id as string;
    const gitdir = join(ws, '.glayer');
    const pair = collidingLayers(gitdir, id);
    git(gitdir, ['update-ref', 'refs/heads/main', pair[1]]);
    const other = commitTree(gitdir, mktree(gitdir, [{ mode: '100644', name: 'o', content: 'o\n' }]), id, 'other');
    git(gitdir, ['update-ref', 'refs/heads/other', other]);
    return { ws, gitdir, pair, other };
  })();
  const cases: Array<[string, string[], RegExp]> = [
    ['unknown layer', ['diff', 'nosuch'], /^glayer: unknown layer: nosuch$/],
    ['unknown second layer', ['diff', 'HEAD', 'nosuch'], /^glayer: unknown layer: nosuch$/],
    ['ambiguous prefix', ['diff', t.pair[0].slice(0, 4)], /^glayer: ambiguous layer id \(2 layers start with/],
    ['a layer of another stack', ['diff', t.other.slice(0, 12)], /^glayer: not a layer of stack 'main' \(it is in stack 'other'/],
    ['past the bottom', ['diff', 'HEAD~9'], /^glayer: HEAD has only 2 layers below it: HEAD~9$/],
    ['show of an unknown layer', ['show', 'nosuch'], /^glayer: unknown layer: nosuch$/],
    ['show of another stack\'s layer', ['show', t.other], /not a layer of stack 'main'/],
    ['a path outside the view', ['diff', '--', '../outside'], /^glayer: \.\.\/outside: is outside the view/],
    ['an absolute path outside the view', ['diff', 'HEAD', '--', '/etc/passwd'], /^glayer: \/etc\/passwd: is outside the view/],
    ['blame outside the view', ['blame', '../x'], /^glayer: \.\.\/x: is outside the view/],
    ['show with a path outside the view', ['show', 'HEAD', '--', '/'], /^glayer: \/: is outside the view/],
    ['three layers', ['diff', 'HEAD', 'HEAD~1', 'HEAD~2'], /^glayer: at most two layers/],
    ['two layers and --view', ['diff', '--view', 'HEAD', 'HEAD~1'], /^glayer: --view compares one layer/],
    ['bad -U', ['diff', '-U', 'x'], /^glayer: -U takes a whole number/],
  ];
  for (const [label, argv, want] of cases) {
    const r = await glayer(t.ws, ...argv);
    assert.ok(r.code !== 0, `${label}: exit ${r.code}`);
    assert.is(r.stderr.split('\n').filter(Boolean).length, 1, `${label}: ${r.stderr}`);
    assert.match(r.stderr.trimEnd(), want, `${label}: ${r.stderr}`);
    assert.is(r.stdout, '', label);
  }
  // The other stack is fine by name.
  assert.match((await glayerOk(t.ws, 'diff', '--no-renames', '--name-status', 'HEAD', 'other')).stdout, /^A\to$/m);
  fsck(t.gitdir);
});

test.run();
