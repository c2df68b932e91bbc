// Bad input through the CLI: each gives a non-zero exit, exactly one line on stderr naming what is wrong, no
// stack trace, and changes nothing; with --json the error is {"error":{"code":...,"message":...}}.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { glayer, glayerOk, type CliResult } from '../helpers/cli.js';
import { fsck, git } from '../helpers/git.js';
import { tmpdir } from '../helpers/tmp.js';

/** Non-zero exit, nothing on stdout, one line on stderr matching every pattern, no stack. */
function oneLineError(r: CliResult, ...patterns: Array<RegExp | string>): string {
  assert.ok(r.code !== 0, `exit code 0; stdout: ${r.stdout}`);
  assert.is(r.stdout, '', 'nothing on stdout');
  assert.ok(r.stderr.endsWith('\n'), JSON.stringify(r.stderr));
  const lines = r.stderr.slice(0, -1).split('\n');
  assert.is(lines.length, 1, `want one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0], /^glayer: /);
  assert.not.match(r.stderr, /\bat .*:\d+:\d+/, 'a stack trace');
  assert.not.match(r.stderr, /internal error/);
  for (const p of patterns) {
    if (typeof p === 'string') assert.ok(lines[0].includes(p), `${JSON.stringify(p)} not in: ${lines[0]}`);
    else assert.match(lines[0], p);
  }
  return lines[0];
}

function jsonError(r: CliResult, code: string): { code: string; message: string } {
  assert.ok(r.code !== 0);
  assert.is(r.stdout, '');
  const lines = r.stderr.trim().split('\n');
  assert.is(lines.length, 1, r.stderr);
  const parsed = JSON.parse(lines[0]) as { error: { code: string; message: string } };
  assert.is(parsed.error.code, code);
  assert.type(parsed.error.message, 'string');
  assert.ok(parsed.error.message.length > 0);
  return parsed.error;
}

function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const d of fs.readdirSync(join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) { out.push(r + '/'); walk(r); } else out.push(`${r}=${fs.readFileSync(join(dir, r), 'latin1')}`);
    }
  };
  walk('');
  return out.sort();
}

async function workspace(): Promise<{ base: string; ws: string; gitdir: string; view: string }> {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws', '--template', 'aufs-demo');
  const ws = join(base, 'ws');
  await glayerOk(ws, 'mount-view');
  return { base, ws, gitdir: join(ws, '.glayer'), view: join(ws, 'view') };
}

test('not a workspace: every verb that needs one says so, naming the directory', async () => {
  const dir = tmpdir();
  for (const verb of [['status'], ['log'], ['commit', '-m', 'x'], ['mount-view'], ['info']]) {
    const r = await glayer(dir, ...verb);
    oneLineError(r, 'not a glayer workspace', dir);
    assert.is(r.code, 2);
  }
  const e = jsonError(await glayer(dir, 'status', '--json'), 'E_NOT_WORKSPACE');
  assert.ok(e.message.includes(dir));
  assert.equal(fs.readdirSync(dir), [], 'nothing written');
});

test('-C into a directory that does not exist', async () => {
  const dir = tmpdir();
  oneLineError(await glayer(dir, '-C', join(dir, 'nope'), 'status'), 'not a glayer workspace', join(dir, 'nope'));
});

test('unknown template: named, with the known ones, and nothing created', async () => {
  const base = tmpdir();
  oneLineError(await glayer(base, 'init', 'ws', '--template', 'no-such-template'), "unknown template 'no-such-template'", 'aufs-demo');
  assert.not.ok(fs.existsSync(join(base, 'ws')));
  jsonError(await glayer(base, 'init', 'ws', '--template', 'nope', '--json'), 'E_UNKNOWN_TEMPLATE');
  assert.equal(fs.readdirSync(base), []);
});

test('init into an existing workspace is refused and changes nothing', async () => {
  const { ws, gitdir, base } = await workspace();
  const head = git(gitdir, ['rev-parse', 'refs/heads/main']);
  const before = snapshot(ws);
  oneLineError(await glayer(base, 'init', 'ws'), 'already exists', ws);
  oneLineError(await glayer(ws, 'init', '--template', 'empty'), 'already exists', ws);
  jsonError(await glayer(ws, 'init', '--json'), 'E_WORKSPACE_EXISTS');
  assert.is(git(gitdir, ['rev-parse', 'refs/heads/main']), head);
  assert.equal(snapshot(ws), before);
});

test('unknown option and unknown command are named', async () => {
  const { ws } = await workspace();
  oneLineError(await glayer(ws, 'status', '--bogus'), '--bogus');
  oneLineError(await glayer(ws, 'commit', '-m', 'x', '--frobnicate'), '--frobnicate');
  oneLineError(await glayer(ws, 'frobnicate'), 'frobnicate');
  oneLineError(await glayer(ws, 'log', '-n', 'many'), "'many'");
  oneLineError(await glayer(ws, 'commit', '-m'), '-m');
});

test('commit without -m (or with an empty one) names the missing message and changes nothing', async () => {
  const { ws, gitdir, view } = await workspace();
  fs.writeFileSync(join(view, 'test'), 'edited\n');
  await glayerOk(ws, 'status');
  const head = git(gitdir, ['rev-parse', 'refs/heads/main']);
  const upper = snapshot(join(ws, 'upper'));
  oneLineError(await glayer(ws, 'commit'), /message/, '-m');
  oneLineError(await glayer(ws, 'commit', '-m', ''), /message/);
  oneLineError(await glayer(ws, 'commit', '-m', '   '), /message/);
  jsonError(await glayer(ws, 'commit', '--json'), 'E_USAGE');
  assert.is(git(gitdir, ['rev-parse', 'refs/heads/main']), head);
  assert.equal(snapshot(join(ws, 'upper')), upper);
});

test('mount-view into a non-empty directory it did not create is refused and the directory untouched; --force replaces it', async () => {
  const { ws, base } = await workspace();
  const target = join(base, 'occupied');
  fs.mkdirSync(join(target, 'sub'), { recursive: true });
  fs.writeFileSync(join(target, 'precious'), 'do not lose me\n');
  fs.writeFileSync(join(target, 'sub', 'also'), 'me neither\n');
  const before = snapshot(target);
  const r = await glayer(ws, 'mount-view', target);
  oneLineError(r, target, 'not empty', '--force');
  assert.equal(snapshot(target), before);
  const e = jsonError(await glayer(ws, 'mount-view', target, '--json'), 'E_TARGET_NOT_EMPTY');
  assert.ok(e.message.includes(target));
  assert.equal(snapshot(target), before);
  assert.equal(fs.readdirSync(base).sort(), ['occupied', 'ws'], 'no staging left behind');
  // The workspace's own view is still the tracked one.
  assert.is((await glayerOk(ws, 'status')).stdout, '');
  // A file, not a directory, is refused too.
  fs.writeFileSync(join(base, 'afile'), 'x');
  oneLineError(await glayer(ws, 'mount-view', join(base, 'afile')), join(base, 'afile'));
  assert.is(fs.readFileSync(join(base, 'afile'), 'utf8'), 'x');
  // --force: the contents are replaced by the view.
  await glayerOk(ws, 'mount-view', '--force', target);
  assert.equal(snapshot(target), ['test=test1\n']);
  assert.equal(fs.readdirSync(base).sort(), ['afile', 'occupied', 'ws']);
});

test('mount-view into the store or the writable layer is refused', async () => {
  const { ws } = await workspace();
  const before = snapshot(join(ws, 'upper'));
  oneLineError(await glayer(ws, 'mount-view', join(ws, '.glayer')), join(ws, '.glayer'));
  oneLineError(await glayer(ws, 'mount-view', join(ws, 'upper', 'x')), join(ws, 'upper'));
  oneLineError(await glayer(ws, 'mount-view', ws), ws);
  assert.equal(snapshot(join(ws, 'upper')), before);
});

test("a user file named '.wh.*' in the view: commit refuses naming it; the ref and the writable layer are unchanged", async () => {
  const { ws, gitdir, view } = await workspace();
  fs.writeFileSync(join(view, 'new'), 'new\n');
  fs.mkdirSync(join(view, 'd'));
  await glayerOk(ws, 'status');
  const head = git(gitdir, ['rev-parse', 'refs/heads/main']);
  const upper = snapshot(join(ws, 'upper'));
  assert.equal(upper, ['d/', 'new=new\n']);
  fs.writeFileSync(join(view, '.wh.foo'), 'a user file\n');
  fs.writeFileSync(join(view, 'd', '.wh..wh..opq'), '');
  const r = await glayer(ws, 'commit', '-m', 'should fail');
  const line = oneLineError(r, '.wh.foo', 'd/.wh..wh..opq', 'reserved');
  assert.is(r.code, 2, line);
  assert.is(git(gitdir, ['rev-parse', 'refs/heads/main']), head);
  assert.equal(snapshot(join(ws, 'upper')), upper);
  assert.not.ok(fs.existsSync(join(ws, 'upper', '.wh.foo')), 'the user file did not become a marker');
  assert.is(fs.readFileSync(join(view, 'test'), 'utf8'), 'test1\n', 'test is not whited out');
  const e = jsonError(await glayer(ws, 'commit', '-m', 'x', '--json'), 'E_RESERVED_NAME');
  assert.match(e.message, /\.wh\.foo/);
  // status warns about it but works.
  const st = await glayer(ws, 'status');
  assert.is(st.code, 0);
  assert.match(st.stderr, /\.wh\.foo: names starting with '\.wh\.' cannot be stored/);
  // Renamed, the commit goes through.
  fs.renameSync(join(view, '.wh.foo'), join(view, 'wh.foo'));
  fs.rmSync(join(view, 'd'), { recursive: true });
  const c = await glayerOk(ws, 'commit', '-m', 'ok now');
  assert.is(git(gitdir, ['rev-parse', 'refs/heads/main']), c.stdout.trim());
  assert.is(git(gitdir, ['ls-tree', '--name-only', c.stdout.trim()]), 'new\nwh.foo');
  assert.is(fs.readFileSync(join(view, 'wh.foo'), 'utf8'), 'a user file\n');
  fsck(gitdir);
});

test('a workspace busy with another process is refused with E_LOCKED', async () => {
  const { ws, gitdir } = await workspace();
  // A lock held by a live process (this one).
  fs.writeFileSync(join(gitdir, 'glayer', 'lock'), `${process.pid}\n`);
  const old = process.env.GLAYER_LOCK_TIMEOUT_MS;
  process.env.GLAYER_LOCK_TIMEOUT_MS = '100';
  try {
    oneLineError(await glayer(ws, 'commit', '-m', 'x'), 'another glayer process', String(process.pid));
  } finally {
    if (old === undefined) delete process.env.GLAYER_LOCK_TIMEOUT_MS; else process.env.GLAYER_LOCK_TIMEOUT_MS = old;
    fs.rmSync(join(gitdir, 'glayer', 'lock'));
  }
  // A stale lock (a dead pid) is taken over.
  fs.writeFileSync(join(gitdir, 'glayer', 'lock'), '999999999\n');
  await glayerOk(ws, 'status');
});

test('nothing to commit exits 1 with one line', async () => {
  const { ws } = await workspace();
  const r = await glayer(ws, 'commit', '-m', 'nothing');
  oneLineError(r, 'nothing to commit');
  assert.is(r.code, 1);
});

test('--version and -v print the version alone; a version flag after a command is that command\'s error', async () => {
  // The parser is built without any command for a bare version flag (cli.ts commandsFor): the builtin answers.
  const dir = tmpdir();
  for (const flag of ['--version', '-v']) {
    const r = await glayerOk(dir, flag);
    assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/, flag);
  }
  const bad = await glayer(dir, 'status', '--version');
  assert.is.not(bad.code, 0);
  assert.match(bad.stderr, /--version/);
});

test.run();
