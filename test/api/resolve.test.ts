// Layer names and view paths, as users type them, resolved against a store built with the CLI and native git.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { resolveLayer, resolveViewPaths, PathOutsideViewError } from '../../src/api/resolve.js';
import { GlayerError } from '../../src/errors.js';
import { Workspace } from '../../src/workspace/workspace.js';
import { glayerOk } from '../helpers/cli.js';
import { commitTree, fsck, git, mktree } from '../helpers/git.js';
import { collidingLayers } from '../helpers/layers.js';
import { tmpdir } from '../helpers/tmp.js';

interface Fixture { ws: string; gitdir: string; l1: string; l2: string; l3: string; other: string; pair: [string, string] }

let fx: Fixture;

async function layer(ws: string, file: string, content: string, message: string): Promise<string> {
  fs.mkdirSync(join(ws, 'view', file, '..'), { recursive: true });
  fs.writeFileSync(join(ws, 'view', file), content);
  return JSON.parse((await glayerOk(ws, 'commit', '-m', message, '--json')).stdout).id;
}

test.before(async () => {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  const gitdir = join(ws, '.glayer');
  await glayerOk(ws, 'mount-view');
  const l1 = await layer(ws, 'a', '1\n', 'one');
  const l2 = await layer(ws, 'b', '2\n', 'two');
  const l3 = await layer(ws, 'c', '3\n', 'three');
  // Another stack on top of l1, and tags.
  const other = commitTree(gitdir, mktree(gitdir, [{ mode: '100644', name: 'o', content: 'other\n' }]), l1, 'other stack');
  git(gitdir, ['update-ref', 'refs/heads/other', other]);
  git(gitdir, ['tag', 'light', l2]);
  git(gitdir, ['tag', '-a', '-m', 'annotated', 'annot', l1]);
  // A stack whose two top layers share a 4-digit id prefix.
  const pair = collidingLayers(gitdir, l3);
  git(gitdir, ['update-ref', 'refs/heads/collide', pair[1]]);
  fx = { ws, gitdir, l1, l2, l3, other, pair };
});

function resolveIn(name: string, stack = 'main'): string {
  const w = Workspace.find(fx.ws);
  try {
    if (stack !== 'main') fs.writeFileSync(join(fx.gitdir, 'HEAD'), `ref: refs/heads/${stack}\n`);
    return resolveLayer(w.store, name).commit.oid;
  } finally {
    fs.writeFileSync(join(fx.gitdir, 'HEAD'), 'ref: refs/heads/main\n');
    w.close();
  }
}

test('names that resolve', () => {
  const cases: Array<[string, () => string, string?]> = [
    ['HEAD', () => fx.l3],
    ['@', () => fx.l3],
    ['HEAD~0', () => fx.l3],
    ['HEAD~', () => fx.l2],
    ['HEAD~1', () => fx.l2],
    ['HEAD~2', () => fx.l1],
    ['HEAD^', () => fx.l2],
    ['HEAD^^', () => fx.l1],
    ['HEAD~1^', () => fx.l1],
    ['full id', () => fx.l2],
    ['7-digit prefix', () => fx.l2],
    ['upper-case prefix', () => fx.l1],
    ['prefix with offset', () => fx.l1],
    ['main', () => fx.l3],
    ['refs/heads/main', () => fx.l3],
    ['other (another stack by name)', () => fx.other],
    ['other~1', () => fx.l1],
    ['light (lightweight tag)', () => fx.l2],
    ['annot (annotated tag, peeled)', () => fx.l1],
    ['refs/tags/annot', () => fx.l1],
  ];
  const spell: Record<string, () => string> = {
    'full id': () => fx.l2,
    '7-digit prefix': () => fx.l2.slice(0, 7),
    'upper-case prefix': () => fx.l1.slice(0, 10).toUpperCase(),
    'prefix with offset': () => fx.l2.slice(0, 8) + '~1',
    'other (another stack by name)': () => 'other',
    'light (lightweight tag)': () => 'light',
    'annot (annotated tag, peeled)': () => 'annot',
  };
  for (const [label, want] of cases) {
    const name = spell[label]?.() ?? label;
    assert.is(resolveIn(name), want(), `${label} (${name})`);
  }
});

test('names that are refused, with one-line errors', () => {
  const cases: Array<[string, () => string, RegExp, string?]> = [
    ['unknown name', () => 'nosuch', /^unknown layer: nosuch$/],
    ['unknown hex', () => 'deadbeef', /^unknown layer: deadbeef$/],
    ['too short a prefix', () => fx.l1.slice(0, 3), /^unknown layer/],
    ['past the bottom', () => 'HEAD~3', /HEAD has only 2 layers below it: HEAD~3$/],
    ['offset alone', () => '~1', /not a layer name/],
    ['path traversal as a stack name', () => '../../../../etc/passwd', /^unknown layer/],
    ['ref outside refs/', () => 'refs/../HEAD', /^unknown layer/],
    ['a layer of another stack', () => fx.other.slice(0, 10), /not a layer of stack 'main' \(it is in stack 'other'; name that stack instead\)/],
    ['ambiguous prefix', () => fx.pair[0].slice(0, 4), /^ambiguous layer id \(2 layers start with [0-9a-f]{4}: /, 'collide'],
    ['empty stack', () => 'HEAD', /stack 'empty' has no layers/, 'empty'],
  ];
  for (const [label, name, message, stack] of cases) {
    let err: unknown = null;
    try { resolveIn(name(), stack); } catch (e) { err = e; }
    assert.ok(err instanceof GlayerError, `${label}: expected a GlayerError, got ${String(err)}`);
    assert.is((err as GlayerError).code, 'E_UNKNOWN_LAYER', label);
    assert.match((err as GlayerError).message, message, label);
    assert.not.match((err as GlayerError).message, /\n/, label);
  }
  // A longer prefix of the colliding pair is unique again.
  assert.is(resolveIn(fx.pair[0].slice(0, 12), 'collide'), fx.pair[0]);
  assert.is(resolveIn(fx.pair[1], 'collide'), fx.pair[1]);
});

test('view paths', () => {
  const w = Workspace.find(fx.ws);
  const view = join(fx.ws, 'view');
  fs.mkdirSync(join(view, 'sub'), { recursive: true });
  try {
    const ok: Array<[string, string, string[], string[]]> = [
      ['from the workspace root, view-relative', fx.ws, ['etc/passwd', './etc//x/', '.', 'a/../b'], ['etc/passwd', 'etc/x', '', 'b']],
      ['from inside the view, cwd-relative', join(view, 'sub'), ['f', '..', '../a'], ['sub/f', '', 'a']],
      ['from inside the writable layer', join(fx.ws, 'upper'), ['x'], ['x']],
      ['absolute, inside the view', '/', [join(view, 'sub', 'g')], ['sub/g']],
      ['UTF-8 names become byte strings', fx.ws, ['ü'], ['\xc3\xbc']],
    ];
    for (const [label, cwd, input, want] of ok) assert.equal(resolveViewPaths(w, cwd, input), want, label);
    const bad: Array<[string, string, string]> = [
      ['leaves the view upward', fx.ws, '../x'],
      ['leaves the view from inside it', view, '../x'],
      ['absolute, outside the view', fx.ws, '/etc/passwd'],
      ['the store', fx.ws, join(fx.ws, '.glayer', 'HEAD')],
      ['a .git component', fx.ws, 'a/.git/config'],
      ['empty', fx.ws, ''],
    ];
    for (const [label, cwd, input] of bad) {
      let err: unknown = null;
      try { resolveViewPaths(w, cwd, [input]); } catch (e) { err = e; }
      assert.ok(err instanceof PathOutsideViewError, `${label}: ${String(err)}`);
      assert.is((err as GlayerError).code, 'E_PATH_OUTSIDE_VIEW', label);
    }
  } finally {
    w.close();
  }
  fsck(fx.gitdir);
});

test.run();
