// Confinement: hostile layers made with native git (mktree --missing, hash-object --literally, raw tree bytes)
// and put on the stack with update-ref. Each case ends in a clear refusal or a safe result, and canary files
// outside the workspace keep their content, mode and mtime.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { glayer, glayerOk } from '../helpers/cli.js';
import { commitTree, fsck, git, mktree } from '../helpers/git.js';
import { makeCanary, type Canary } from '../helpers/canary.js';
import { blob, rawTree, setStack } from '../helpers/raw-git.js';
import { tmpdir } from '../helpers/tmp.js';
import { assertRefusal, leftovers, ls, snapshotDir } from './util.js';

const EMPTY_BLOB = 'e69de29bb2d1d6434b8b29ae775ad8c2e48c5391';

interface Ws { base: string; ws: string; gitdir: string; view: string; canary: Canary }

async function workspace(): Promise<Ws> {
  const base = tmpdir();
  const canary = makeCanary(base);
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  return { base, ws, gitdir: join(ws, '.glayer'), view: join(ws, 'view'), canary };
}

/** Stack the given layer trees (bottom first) with native git. */
function stack(w: Ws, trees: string[], onTop = false): string {
  let top: string | null = null;
  if (onTop) top = git(w.gitdir, ['rev-parse', 'refs/heads/main']);
  for (const t of trees) top = commitTree(w.gitdir, t, top, 'hostile');
  setStack(w.gitdir, top!);
  return top!;
}

// ---- names git refuses ---------------------------------------------------------------------------------------

const badNames: Array<[string, string]> = [
  ['empty name', ''],
  ['.', '.'],
  ['..', '..'],
  ['contains /', 'a/b'],
  ['leading /', '/etc'],
  ['../ escape', '../../escape'],
  ['.git', '.git'],
  ['.GIT', '.GIT'],
  ['.Git', '.Git'],
  ['.git. (NTFS trailing dot)', '.git.'],
  ['.git  (NTFS trailing space)', '.git '],
  ['git~1 (NTFS short name)', 'git~1'],
  ['GIT~1', 'GIT~1'],
  ['.g<ZWNJ>it (HFS ignorable)', '.g\xe2\x80\x8cit'],
  ['<BOM>.git (HFS ignorable)', '\xef\xbb\xbf.git'],
];

for (const [label, name] of badNames) {
  for (const where of ['top', 'nested'] as const) {
    test(`refuses a layer entry named ${label} (${where})`, async () => {
      const w = await workspace();
      const b = blob(w.gitdir, 'evil\n');
      const inner = rawTree(w.gitdir, [{ mode: '100644', name, oid: b }]);
      const tree = where === 'top' ? inner : rawTree(w.gitdir, [{ mode: '40000', name: 'a', oid: inner }]);
      stack(w, [tree]);
      for (const args of [['mount-view'], ['status'], ['log'], ['commit', '-m', 'x']]) {
        const r = await glayer(w.ws, ...args);
        assertRefusal(r, /invalid layer|unsafe|corrupt/, `${label}: glayer ${args[0]}`);
      }
      const j = await glayer(w.ws, 'mount-view', '--json');
      const err = JSON.parse(j.stderr).error;
      assert.ok(err.code === 'E_INVALID_LAYER' || err.code === 'E_OBJECT', err.code);
      assert.equal(ls(w.view), [], 'nothing materialized');
      assert.equal(leftovers(w.ws), []);
      assert.equal(ls(join(w.ws, 'upper')), []);
      assert.not.ok(fs.existsSync(join(w.base, 'escape')));
      assert.not.ok(fs.existsSync(join(w.ws, 'escape')));
      w.canary.check();
    });
  }
}

test('refuses a tree with a duplicate entry', async () => {
  const w = await workspace();
  const b = blob(w.gitdir, 'x\n');
  stack(w, [rawTree(w.gitdir, [{ mode: '100644', name: 'f', oid: b }, { mode: '100644', name: 'f', oid: EMPTY_BLOB }])]);
  assertRefusal(await glayer(w.ws, 'mount-view'), /corrupt|duplicate|invalid/, 'duplicate');
  w.canary.check();
});

test('refuses a submodule entry', async () => {
  const w = await workspace();
  const head = git(w.gitdir, ['hash-object', '-t', 'commit', '--literally', '--stdin'], `tree ${'4b825dc642cb6eb9a060e54bf8d69288fbee4904'}\n\nx\n`);
  stack(w, [rawTree(w.gitdir, [{ mode: '160000', name: 'sub', oid: head }])]);
  for (const args of [['mount-view'], ['status']]) assertRefusal(await glayer(w.ws, ...args), /submodule/, `submodule: ${args[0]}`);
  assert.equal(ls(w.view), []);
  w.canary.check();
});

// ---- marker abuse ----------------------------------------------------------------------------------------------

function markerCases(w: Ws): Array<[string, string]> {
  blob(w.gitdir, '');
  const b = blob(w.gitdir, 'x\n');
  const child = rawTree(w.gitdir, [{ mode: '100644', name: 'child', oid: b }]);
  const link = blob(w.gitdir, w.canary.file);
  return [
    ["bare '.wh.'", rawTree(w.gitdir, [{ mode: '100644', name: '.wh.', oid: EMPTY_BLOB }])],
    ["'.wh..'", rawTree(w.gitdir, [{ mode: '100644', name: '.wh..', oid: EMPTY_BLOB }])],
    ["'.wh...'", rawTree(w.gitdir, [{ mode: '100644', name: '.wh...', oid: EMPTY_BLOB }])],
    ["'.wh..wh.x'", rawTree(w.gitdir, [{ mode: '100644', name: '.wh..wh.x', oid: EMPTY_BLOB }])],
    ['a whiteout of .git', rawTree(w.gitdir, [{ mode: '100644', name: '.wh..git', oid: EMPTY_BLOB }])],
    ['a marker with children', rawTree(w.gitdir, [{ mode: '40000', name: '.wh.x', oid: child }])],
    ['a non-empty marker', rawTree(w.gitdir, [{ mode: '100644', name: '.wh.x', oid: b }])],
    ['a symlink marker', rawTree(w.gitdir, [{ mode: '120000', name: '.wh.x', oid: link }])],
    ['an opaque marker that is a directory', rawTree(w.gitdir, [{ mode: '40000', name: '.wh..wh..opq', oid: child }])],
    ['an opaque marker that is a symlink', rawTree(w.gitdir, [{ mode: '120000', name: '.wh..wh..opq', oid: link }])],
    ['an opaque marker with content', rawTree(w.gitdir, [{ mode: '100644', name: '.wh..wh..opq', oid: b }])],
  ];
}

test('refuses marker abuse in a layer', async () => {
  const w = await workspace();
  for (const [label, tree] of markerCases(w)) {
    stack(w, [tree]);
    for (const args of [['mount-view'], ['status']]) {
      assertRefusal(await glayer(w.ws, ...args), /invalid layer/, `${label}: ${args[0]}`);
    }
    // The same abuse one directory down.
    stack(w, [rawTree(w.gitdir, [{ mode: '40000', name: 'd', oid: tree }])]);
    assertRefusal(await glayer(w.ws, 'mount-view'), /invalid layer [0-9a-f]+: d\//, `${label} in d/`);
    assert.equal(ls(w.view), []);
  }
  w.canary.check();
});

test('refuses marker abuse in the writable layer, and never deletes through it', async () => {
  const w = await workspace();
  const upper = join(w.ws, 'upper');
  const cases: Array<[string, () => void]> = [
    ["bare '.wh.'", () => fs.writeFileSync(join(upper, '.wh.'), '')],
    ["'.wh..'", () => fs.writeFileSync(join(upper, '.wh..'), '')],
    ['a marker with children', () => { fs.mkdirSync(join(upper, '.wh.x')); fs.writeFileSync(join(upper, '.wh.x', 'c'), 'c'); }],
    ['an opaque marker that is a directory', () => fs.mkdirSync(join(upper, '.wh..wh..opq'))],
    ['an opaque marker that is a symlink', () => fs.symlinkSync(w.canary.dir, join(upper, '.wh..wh..opq'))],
    ['a marker that is a symlink to a canary', () => fs.symlinkSync(w.canary.file, join(upper, '.wh.secret'))],
    ['a non-empty marker', () => fs.writeFileSync(join(upper, '.wh.y'), 'data')],
  ];
  for (const [label, make] of cases) {
    fs.rmSync(upper, { recursive: true, force: true });
    fs.mkdirSync(upper);
    make();
    const before = snapshotDir(upper);
    for (const args of [['status'], ['mount-view'], ['commit', '-m', 'x']]) {
      assertRefusal(await glayer(w.ws, ...args), /invalid layer writable layer/, `${label}: ${args[0]}`);
    }
    assert.equal(snapshotDir(upper), before, `${label}: the writable layer changed`);
  }
  w.canary.check();
});

// ---- symlinks in a lower layer, written through by a higher one -------------------------------------------------

interface LinkCase { label: string; links: Array<{ name: string; target: string }>; through: string }

function linkCases(w: Ws): LinkCase[] {
  return [
    { label: 'absolute link to a directory', links: [{ name: 'link', target: w.canary.dir }], through: 'link' },
    { label: 'relative link out of the view', links: [{ name: 'link', target: '../../canary' }], through: 'link' },
    { label: 'deep relative link', links: [{ name: 'link', target: '../../../../../../../../../../..' + w.canary.dir }], through: 'link' },
    { label: 'chained links', links: [{ name: 'a', target: 'b' }, { name: 'b', target: w.canary.dir }], through: 'a' },
    { label: 'looping link', links: [{ name: 'loop', target: 'loop' }], through: 'loop' },
    { label: 'link to a file', links: [{ name: 'link', target: w.canary.file }], through: 'link' },
    { label: 'link to the store', links: [{ name: 'link', target: '../.glayer' }], through: 'link' },
  ];
}

/** What a higher layer puts "through" the link: a dir entry of the same name holding this. */
function throughTree(w: Ws, kind: string): string {
  blob(w.gitdir, '');
  const evil = blob(w.gitdir, 'evil\n');
  switch (kind) {
    case 'file': return mktree(w.gitdir, [{ mode: '100644', name: 'secret', content: 'evil\n' }, { mode: '100644', name: 'new', content: 'evil\n' }]);
    case 'dir': return mktree(w.gitdir, [{ mode: '040000', name: 'sub', entries: [{ mode: '100644', name: 'inner', content: 'evil\n' }] }]);
    case 'whiteout': return rawTree(w.gitdir, [{ mode: '100644', name: '.wh.secret', oid: EMPTY_BLOB }, { mode: '100644', name: '.wh.sub', oid: EMPTY_BLOB }]);
    case 'opaque': return rawTree(w.gitdir, [{ mode: '100644', name: '.wh..wh..opq', oid: EMPTY_BLOB }, { mode: '100644', name: 'secret', oid: evil }]);
    case 'symlink': return mktree(w.gitdir, [{ mode: '120000', name: 'secret', content: '/etc/passwd' }]);
    default: throw new Error(kind);
  }
}

function expectedThrough(kind: string): Record<string, string> {
  switch (kind) {
    case 'file': return { new: 'evil\n', secret: 'evil\n' };
    case 'dir': return { 'sub/inner': 'evil\n' };
    case 'whiteout': return {};
    case 'opaque': return { secret: 'evil\n' };
    case 'symlink': return { secret: '-> /etc/passwd' };
    default: throw new Error(kind);
  }
}

function readBack(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string): void => {
    for (const n of fs.readdirSync(d).sort()) {
      const p = join(d, n);
      const r = rel ? `${rel}/${n}` : n;
      const st = fs.lstatSync(p);
      if (st.isSymbolicLink()) out[r] = '-> ' + fs.readlinkSync(p);
      else if (st.isDirectory()) walk(p, r);
      else out[r] = fs.readFileSync(p, 'utf8');
    }
  };
  walk(dir, '');
  return out;
}

for (const kind of ['file', 'dir', 'whiteout', 'opaque', 'symlink']) {
  test(`a ${kind} through a lower symlink: the upper directory replaces the link, nothing is written through it`, async () => {
    const w = await workspace();
    for (const c of linkCases(w)) {
      const lower = mktree(w.gitdir, c.links.map((l) => ({ mode: '120000', name: l.name, content: l.target })));
      const through = throughTree(w, kind);
      const upperLayer = rawTree(w.gitdir, [{ mode: '40000', name: c.through, oid: through }]);
      // 1. A fresh view of the whole stack.
      fs.rmSync(w.view, { recursive: true, force: true });
      const base = stack(w, [lower]);
      await glayerOk(w.ws, 'mount-view', w.view);
      // The view holds the links as links.
      for (const l of c.links) assert.is(fs.readlinkSync(join(w.view, l.name)), l.target, c.label);
      // 2. The higher layer arrives (native git moves the stack): refresh in place.
      setStack(w.gitdir, commitTree(w.gitdir, upperLayer, base, 'through'));
      await glayerOk(w.ws, 'mount-view');
      const st = fs.lstatSync(join(w.view, c.through));
      assert.ok(st.isDirectory() && !st.isSymbolicLink(), `${c.label}: ${c.through} must become a real directory`);
      assert.equal(readBack(join(w.view, c.through)), expectedThrough(kind), c.label);
      assert.is((await glayerOk(w.ws, 'status')).stdout, '', `${c.label}: no changes`);
      // 3. A second, fresh view elsewhere.
      const other = join(w.base, 'other');
      fs.rmSync(other, { recursive: true, force: true });
      await glayerOk(w.ws, 'mount-view', other);
      assert.equal(readBack(join(other, c.through)), expectedThrough(kind), `${c.label} (fresh view)`);
      await glayerOk(w.ws, 'mount-view', w.view, '--force');
      w.canary.check();
      fsck(w.gitdir);
    }
  });
}

test('a symlink over a directory, then a directory over the symlink', async () => {
  const w = await workspace();
  const l1 = mktree(w.gitdir, [{ mode: '040000', name: 'd', entries: [{ mode: '100644', name: 'f', content: 'f\n' }] }]);
  const l2 = mktree(w.gitdir, [{ mode: '120000', name: 'd', content: w.canary.dir }]);
  const l3 = mktree(w.gitdir, [{ mode: '040000', name: 'd', entries: [{ mode: '100644', name: 'secret', content: 'evil\n' }] }]);
  const c1 = stack(w, [l1]);
  await glayerOk(w.ws, 'mount-view');
  const c2 = commitTree(w.gitdir, l2, c1, 'link');
  setStack(w.gitdir, c2);
  await glayerOk(w.ws, 'status');
  assert.is(fs.readlinkSync(join(w.view, 'd')), w.canary.dir);
  setStack(w.gitdir, commitTree(w.gitdir, l3, c2, 'dir'));
  await glayerOk(w.ws, 'status');
  assert.equal(readBack(join(w.view, 'd')), { secret: 'evil\n' });
  w.canary.check();
  fsck(w.gitdir);
});

test('a symlink the user puts in the view where the stack then adds files', async () => {
  const w = await workspace();
  const l1 = mktree(w.gitdir, [{ mode: '040000', name: 'd', entries: [{ mode: '100644', name: 'f', content: 'f\n' }] }]);
  const c1 = stack(w, [l1]);
  await glayerOk(w.ws, 'mount-view');
  // The user swaps the directory for a symlink out of the workspace (between calls).
  fs.rmSync(join(w.view, 'd'), { recursive: true });
  fs.symlinkSync(w.canary.dir, join(w.view, 'd'));
  // Meanwhile the stack gains d/secret and d/new.
  const l2 = mktree(w.gitdir, [{ mode: '040000', name: 'd', entries: [{ mode: '100644', name: 'new', content: 'evil\n' }, { mode: '100644', name: 'secret', content: 'evil\n' }] }]);
  setStack(w.gitdir, commitTree(w.gitdir, l2, c1, 'adds'));
  for (const args of [['mount-view'], ['status']]) {
    const r = await glayer(w.ws, ...args);
    assert.ok(r.code === 0 || (r.code !== 70 && r.stderr.trim().split('\n').length === 1), r.stderr);
  }
  // The view's edit stands: d is the user's symlink, recorded in the writable layer as one.
  assert.is(fs.readlinkSync(join(w.view, 'd')), w.canary.dir);
  assert.is(fs.readlinkSync(join(w.ws, 'upper', 'd')), w.canary.dir);
  w.canary.check();
  // Committing it stores a symlink, never the canary's content.
  await glayerOk(w.ws, 'commit', '-m', 'link');
  assert.is(git(w.gitdir, ['cat-file', '-p', 'HEAD:d']), w.canary.dir);
  assert.match(git(w.gitdir, ['ls-tree', 'HEAD']), /^120000 blob [0-9a-f]+\td$/);
  w.canary.check();
  fsck(w.gitdir);
});

test('the view target is a symlink: refused, with and without --force', async () => {
  const w = await workspace();
  stack(w, [mktree(w.gitdir, [{ mode: '100644', name: 'f', content: 'f\n' }])]);
  const emptyDir = join(w.base, 'empty');
  fs.mkdirSync(emptyDir);
  const targets: Array<[string, string]> = [['canary dir', w.canary.dir], ['empty dir', emptyDir], ['dangling', join(w.base, 'nowhere')]];
  for (const [label, dest] of targets) {
    const t = join(w.base, 'target-' + label.replace(/ /g, '-'));
    fs.symlinkSync(dest, t);
    for (const extra of [[], ['--force']]) {
      assertRefusal(await glayer(w.ws, 'mount-view', t, ...extra), /symlink/, `${label} ${extra.join(' ')}`);
      assert.is(fs.readlinkSync(t), dest);
    }
  }
  assert.equal(ls(emptyDir), []);
  assert.equal(leftovers(w.base), []);
  w.canary.check();
});

test('the registered view replaced by a symlink between calls', async () => {
  const w = await workspace();
  stack(w, [mktree(w.gitdir, [{ mode: '100644', name: 'secret', content: 'layer\n' }, { mode: '100644', name: 'f', content: 'f\n' }])]);
  await glayerOk(w.ws, 'mount-view');
  fs.renameSync(w.view, join(w.base, 'moved-view'));
  fs.symlinkSync(w.canary.dir, w.view);
  for (const args of [['status'], ['mount-view'], ['commit', '-m', 'x'], ['status']]) {
    const r = await glayer(w.ws, ...args);
    assert.ok(r.code !== 70, `${args[0]}: ${r.stderr}`);
  }
  assert.is(fs.readlinkSync(w.view), w.canary.dir);
  w.canary.check();
});

test('race: a view directory swapped for a symlink while mount-view and status run', async () => {
  const w = await workspace();
  const files = Array.from({ length: 40 }, (_, i) => ({ mode: '100644', name: `f${i}`, content: `${i}\n` }));
  const c1 = stack(w, [mktree(w.gitdir, [{ mode: '040000', name: 'd', entries: files }])]);
  await glayerOk(w.ws, 'mount-view');
  // A child process swaps view/d <-> a symlink to the canary as fast as it can.
  const script = `
    const fs = require('fs');
    const d = ${JSON.stringify(join(w.view, 'd'))}, aside = ${JSON.stringify(join(w.base, 'aside'))};
    const end = Date.now() + 60000;
    while (Date.now() < end) {
      try { fs.renameSync(d, aside); fs.symlinkSync(${JSON.stringify(join(w.canary.dir, 'sub'))}, d); } catch {}
      try { fs.unlinkSync(d); fs.renameSync(aside, d); } catch {}
    }`;
  const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  try {
    let top = c1;
    for (let k = 0; k < 15; k++) {
      const more = Array.from({ length: 20 }, (_, i) => ({ mode: '100644', name: `n${k}_${i}`, content: 'evil\n' }));
      top = commitTree(w.gitdir, mktree(w.gitdir, [{ mode: '040000', name: 'd', entries: more }]), top, `k${k}`);
      setStack(w.gitdir, top);
      for (const args of [['mount-view'], ['status']]) {
        const r = await glayer(w.ws, ...args);
        assert.ok(r.code !== 70, `${args[0]}: internal error: ${r.stderr}`);
        if (r.code !== 0) assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
      }
      w.canary.check();
    }
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));
  }
  w.canary.check();
});

test.run();
