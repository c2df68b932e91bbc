// The classic aufs experiment, step by step through the CLI, with native git as the oracle: the read-only
// layer never changes, the writable layer records exactly what overlayfs would, and commit shares the result.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { glayer, glayerOk } from '../helpers/cli.js';
import { fsck, git } from '../helpers/git.js';
import { tmpdir } from '../helpers/tmp.js';

function upperListing(ws: string): string[] {
  return fs.readdirSync(join(ws, 'upper')).sort();
}

test('the aufs experiment, end to end', async () => {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws', '--template', 'aufs-demo');
  const ws = join(base, 'ws');
  const gitdir = join(ws, '.glayer');
  const roLayer = git(gitdir, ['rev-parse', 'refs/heads/main']);
  const roTree = git(gitdir, ['ls-tree', '-r', roLayer]);
  const readOnlyUnchanged = () => {
    assert.is(git(gitdir, ['ls-tree', '-r', roLayer]), roTree);
    assert.is(git(gitdir, ['show', `${roLayer}:test`]), 'test1');
  };
  assert.match(roTree, /\ttest$/);

  await glayerOk(ws, 'mount-view');
  const view = join(ws, 'view');
  assert.is(fs.readFileSync(join(view, 'test'), 'utf8'), 'test1\n');
  assert.equal(upperListing(ws), []);

  // Delete in the view: a whiteout in the writable layer, the read-only layer untouched.
  fs.rmSync(join(view, 'test'));
  let st = await glayerOk(ws, 'status', '--json');
  assert.equal(JSON.parse(st.stdout).map((c: { path: string; change: string }) => [c.change, c.path]), [['D', 'test']]);
  assert.equal(upperListing(ws), ['.wh.test']);
  assert.is(fs.statSync(join(ws, 'upper', '.wh.test')).size, 0);
  readOnlyUnchanged();

  // Delete the marker: the file comes back in the view.
  fs.rmSync(join(ws, 'upper', '.wh.test'));
  st = await glayerOk(ws, 'status');
  assert.is(st.stdout, '');
  assert.is(fs.readFileSync(join(view, 'test'), 'utf8'), 'test1\n');
  readOnlyUnchanged();

  // Edit in the view: copied up whole.
  fs.writeFileSync(join(view, 'test'), 'test2\n');
  st = await glayerOk(ws, 'status');
  assert.is(st.stdout, 'C test\n');
  assert.is(fs.readFileSync(join(ws, 'upper', 'test'), 'utf8'), 'test2\n');
  readOnlyUnchanged();

  // A new file lands in the writable layer.
  fs.writeFileSync(join(view, 'new'), 'fresh\n');
  st = await glayerOk(ws, 'status');
  assert.is(st.stdout, 'A new\nC test\n');
  assert.equal(upperListing(ws), ['new', 'test']);
  readOnlyUnchanged();

  // Commit: a new shared layer; the writable layer is empty and the view unchanged.
  const c = await glayerOk(ws, 'commit', '-m', 'second layer', '--json');
  const id = JSON.parse(c.stdout).id as string;
  assert.match(id, /^[0-9a-f]{40}$/);
  assert.is(git(gitdir, ['rev-parse', 'refs/heads/main']), id);
  assert.is(git(gitdir, ['rev-parse', `${id}^`]), roLayer);
  assert.is(git(gitdir, ['show', `${id}:test`]), 'test2');
  assert.is(git(gitdir, ['show', `${id}:new`]), 'fresh');
  assert.equal(upperListing(ws), []);
  readOnlyUnchanged();
  const log = JSON.parse((await glayerOk(ws, 'log', '--json')).stdout);
  assert.equal(log.map((l: { id: string; message: string }) => [l.id, l.message]), [[id, 'second layer'], [roLayer, 'base: template aufs-demo']]);
  assert.is((await glayerOk(ws, 'status')).stdout, '');
  assert.is(fs.readFileSync(join(view, 'test'), 'utf8'), 'test2\n');

  // A fresh view elsewhere shows the same tree.
  const other = join(base, 'other-view');
  await glayerOk(ws, 'mount-view', other);
  assert.equal(fs.readdirSync(other).sort(), ['new', 'test']);
  assert.is(fs.readFileSync(join(other, 'test'), 'utf8'), 'test2\n');
  assert.is(fs.readFileSync(join(other, 'new'), 'utf8'), 'fresh\n');
  fsck(gitdir);
});

test('commit with nothing to commit exits 1 with a clear message', async () => {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws', '--template', 'aufs-demo');
  const r = await glayer(join(base, 'ws'), 'commit', '-m', 'nothing');
  assert.is(r.code, 1);
  assert.match(r.stderr, /nothing to commit/);
  assert.is(r.stderr.trim().split('\n').length, 1);
});

test.run();
