// glayer's union against the kernel's: layers authored with native git (hash-object, mktree, commit-tree) are put
// on a workspace's stack, `glayer mount-view` materializes them, and the same layers, converted to overlayfs lower
// directories (whiteouts as 0/0 character devices, opaque directories as trusted.overlay.opaque=y), are mounted
// with `mount -t overlay`. The two trees must be equal: kinds, contents, symlink targets, executable bits, empty
// directories. Needs root (CI runs as root); elsewhere every test prints SKIPPED with the reason.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { glayerOk } from '../helpers/cli.js';
import { commitTree, fsck, git, mktree, type NativeEntry } from '../helpers/git.js';
import { layerToLowerdir, overlayUnavailable, withOverlay } from '../helpers/overlay.js';
import { Rng, testSeed } from '../helpers/prng.js';
import { snapshot, snapshotDiff, type Snapshot } from '../helpers/snapshot.js';
import { tmpdir } from '../helpers/tmp.js';
import { liveBackends } from '../helpers/live.js';

const unavailable = overlayUnavailable(tmpdir('glayer-ovl-probe-'));
/** glayer's live views (mount-view --live) of every stack are compared too, with each backend this machine has. */
const LIVE_BACKENDS = liveBackends();

// ---- layer descriptions ----
const f = (name: string, content: string | Buffer = name): NativeEntry => ({ mode: '100644', name, content });
const x = (name: string, content: string | Buffer = name): NativeEntry => ({ mode: '100755', name, content });
const l = (name: string, target: string): NativeEntry => ({ mode: '120000', name, content: target });
const d = (name: string, ...entries: NativeEntry[]): NativeEntry => ({ mode: '040000', name, entries });
const wh = (name: string): NativeEntry => ({ mode: '100644', name: `.wh.${name}`, content: '' });
const opq = (): NativeEntry => ({ mode: '100644', name: '.wh..wh..opq', content: '' });

/** Layers (bottom first) as commits on a fresh workspace's stack; glayer's view and the kernel's, snapshotted. */
async function bothViews(build: (gitdir: string) => string[], withLive = true): Promise<{ glayer: Snapshot; kernel: Snapshot; gitdir: string; live: Record<string, Snapshot> }> {
  const base = tmpdir('glayer-ovl-');
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  const gitdir = join(ws, '.glayer');
  const trees = build(gitdir);
  const commits: string[] = [];
  let parent: string | null = null;
  for (const [i, t] of trees.entries()) {
    parent = commitTree(gitdir, t, parent, `layer ${i}`);
    commits.push(parent);
  }
  if (parent) git(gitdir, ['update-ref', 'refs/heads/main', parent]);
  await glayerOk(ws, 'mount-view');
  const view = snapshot(join(ws, 'view'));
  const status = await glayerOk(ws, 'status');
  assert.is(status.stdout, '', 'a fresh view of a native stack has no changes');
  assert.equal(fs.readdirSync(join(ws, 'upper')), [], 'mounting a view writes nothing to the writable layer');
  const live: Record<string, Snapshot> = {};
  for (const b of withLive ? LIVE_BACKENDS : []) {
    const target = join(base, `live-${b}`);
    await glayerOk(ws, 'mount-view', '--live', '--backend', b, target);
    try {
      live[b] = snapshot(target);
      assert.is((await glayerOk(ws, 'status')).stdout, '', `a fresh ${b} live view has no changes`);
    } finally {
      await glayerOk(ws, 'umount');
    }
  }
  const lowers = commits.map((c, i) => {
    const dir = join(base, `lower${i}`);
    layerToLowerdir(gitdir, c, dir);
    return dir;
  }).reverse();
  const kernel = lowers.length === 0 ? {} : withOverlay(lowers, join(base, 'merged'), (m) => snapshot(m));
  fsck(gitdir);
  return { glayer: view, kernel, gitdir, live };
}

async function compareLayers(name: string, layers: NativeEntry[][]): Promise<Snapshot> {
  const r = await bothViews((gitdir) => layers.map((entries) => mktree(gitdir, entries)));
  if (!deepEqual(r.glayer, r.kernel)) {
    assert.unreachable(`${name}: glayer's view differs from overlayfs:\n${snapshotDiff(r.glayer, r.kernel, ['glayer', 'overlayfs'])}`);
  }
  for (const [b, s] of Object.entries(r.live)) {
    if (!deepEqual(s, r.kernel)) assert.unreachable(`${name}: glayer's live view (${b}) differs from overlayfs:\n${snapshotDiff(s, r.kernel, [`live ${b}`, 'overlayfs'])}`);
  }
  return r.kernel;
}

function deepEqual(a: Snapshot, b: Snapshot): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

/** The paths a snapshot lists, for checks that the kernel itself behaved as the case intends. */
const paths = (s: Snapshot): string[] => Object.keys(s).sort();

interface Case { name: string; layers: NativeEntry[][]; expect?: (s: Snapshot) => void }

const CASES: Case[] = [
  {
    name: 'files and executables, changed content and mode in an upper layer',
    layers: [
      [f('a', 'one\n'), x('run', '#!/bin/sh\n'), x('tool', 'tool\n'), d('bin', x('sh', 'ELF'), f('readme'))],
      [f('a', 'two\n'), f('run', '#!/bin/sh\n'), x('newx', 'n'), d('bin', f('sh', 'ELF'))],
    ],
    expect: (s) => {
      assert.match(s.run, /^file 644 /);
      assert.match(s.tool, /^file 755 /);
      assert.match(s['bin/sh'], /^file 644 /);
    },
  },
  {
    name: 'symlinks: relative, absolute, dangling, to a directory, replaced by and replacing files',
    layers: [
      [f('a'), d('dir', f('in')), l('rel', 'a'), l('abs', '/etc/passwd'), l('dangling', 'no/such/thing'), l('todir', 'dir'), l('up', '../../..'), f('becomes-link')],
      [l('a', 'dir/in'), f('rel', 'now a file'), l('becomes-link', '/'), d('d2', l('self', 'self'), l('dot', '.'))],
    ],
    expect: (s) => {
      assert.is(s.abs, 'symlink -> /etc/passwd');
      assert.is(s.a, 'symlink -> dir/in');
      assert.is(s['d2/self'], 'symlink -> self');
    },
  },
  {
    name: 'empty directories: kept, filled, merged, replacing a file',
    layers: [
      [d('empty'), d('tofill'), d('full', f('keep')), f('wasfile'), d('deep', d('er', d('est')))],
      [d('tofill', f('new')), d('full'), d('wasfile'), d('more'), d('deep', d('er', d('est', d('leaf'))))],
    ],
    expect: (s) => {
      assert.is(s.empty, 'dir');
      assert.is(s.wasfile, 'dir');
      assert.ok('full/keep' in s);
      assert.is(s['deep/er/est/leaf'], 'dir');
    },
  },
  {
    name: 'whiteouts of a file, a directory, a symlink, an empty directory, a dot-name and of nothing',
    layers: [
      [f('gone'), f('stays'), d('dir', f('a'), d('sub', f('b'))), l('link', 'stays'), d('emptydir'), f('.hidden'), d('p', f('q'), f('r'))],
      [wh('gone'), wh('dir'), wh('link'), wh('emptydir'), wh('.hidden'), wh('never-existed'), d('p', wh('q')), d('nodir', wh('x'))],
    ],
    expect: (s) => assert.equal(paths(s), ['nodir', 'p', 'p/r', 'stays']),
  },
  {
    name: 'opaque directories: lower children hidden, own children kept, nested and empty',
    layers: [
      [d('o', f('x'), f('y'), d('sub', f('z'))), d('e', f('lost')), d('n', d('m', f('k'), f('j')), f('l'))],
      [d('o', opq(), f('y', 'new y'), f('w')), d('e', opq()), d('n', d('m', opq(), wh('k'), f('i')))],
    ],
    expect: (s) => assert.equal(paths(s), ['e', 'n', 'n/l', 'n/m', 'n/m/i', 'o', 'o/w', 'o/y']),
  },
  {
    name: 're-creation in the same layer as the whiteout (file, directory, symlink, kind change)',
    layers: [
      [f('file', 'old'), d('dir', f('old-child'), d('old-sub')), l('sym', 'old'), d('d2f', f('c')), f('f2d')],
      [wh('file'), f('file', 'new'), wh('dir'), d('dir', f('new-child')), wh('sym'), l('sym', 'new'), wh('d2f'), f('d2f'), wh('f2d'), d('f2d', f('k'))],
    ],
    expect: (s) => assert.equal(paths(s), ['d2f', 'dir', 'dir/new-child', 'f2d', 'f2d/k', 'file', 'sym']),
  },
  {
    name: 'directory over file, file over directory, symlink over directory, directory over symlink',
    layers: [
      [f('a'), d('b', f('c')), d('s', f('t')), l('u', 'b'), d('v', d('w', f('x')))],
      [d('a', f('in-a')), f('b', 'file b'), l('s', '/tmp'), d('u', f('in-u')), d('v', f('w'))],
    ],
    expect: (s) => assert.equal(paths(s), ['a', 'a/in-a', 'b', 's', 'u', 'u/in-u', 'v', 'v/w']),
  },
  {
    name: 'directory over file over directory: the bottom directory stays hidden',
    layers: [
      [d('p', f('bottom'), d('q', f('r')))],
      [f('p', 'a file in between')],
      [d('p', f('top'))],
    ],
    expect: (s) => assert.equal(paths(s), ['p', 'p/top']),
  },
  {
    name: 'five layers: whiteout in layer 3 and re-creation in layer 4 bring back nothing from below',
    layers: [
      [d('etc', f('passwd', 'root\n'), f('group'), d('ssh', f('config'))), d('usr', d('bin', x('ls')))],
      [d('etc', f('hosts'), d('ssh', f('known'))), d('usr', d('bin', x('cat')))],
      [d('etc', wh('ssh'), f('passwd', 'root\nuser\n')), wh('usr')],
      [d('etc', d('ssh', f('fresh'))), d('usr', d('lib'))],
      [d('etc', wh('group'), l('mtab', '/proc/mounts')), d('usr', d('bin', x('ls', 'new ls')))],
    ],
    expect: (s) => assert.equal(paths(s), ['etc', 'etc/hosts', 'etc/mtab', 'etc/passwd', 'etc/ssh', 'etc/ssh/fresh', 'usr', 'usr/bin', 'usr/bin/ls', 'usr/lib']),
  },
  {
    name: 'names in byte order: a directory "a" beside "a.b", "a-", "a0", UTF-8 and spaces',
    layers: [
      [d('a', f('x')), f('a.b'), f('a-'), f('a0'), f('é'), f('日本'), f('with space'), d('A', f('upper'))],
      [d('a', f('y')), wh('a.b'), d('a-', f('now a dir')), f('e\u0301', 'decomposed'), d('日本x', f('z'))],
    ],
  },
  {
    name: 'one layer: markers never show, even with nothing below',
    layers: [[f('only'), wh('ghost'), d('o', opq(), f('k')), d('e', wh('x'))]],
    expect: (s) => assert.equal(paths(s), ['e', 'o', 'o/k', 'only']),
  },
  {
    name: 'whiteout of a directory then a deeper re-creation two layers up',
    layers: [
      [d('a', d('b', d('c', f('deep'))), f('top'))],
      [wh('a')],
      [d('a', d('b', f('new')))],
      [d('a', d('b', d('c', f('again'))))],
    ],
    expect: (s) => assert.equal(paths(s), ['a', 'a/b', 'a/b/c', 'a/b/c/again', 'a/b/new']),
  },
  {
    // fuse-overlayfs fails this listing with ENOMEM when the layers are mounted one by one (found by seed 201 of
    // the random stacks); glayer mounts the directory's layer and those below it flattened for that backend.
    name: 'a directory with a subdirectory over a symlink that loops, and over one that does not',
    layers: [
      [l('a.b', 'a.b'), l('lib', 'usr/lib'), d('usr', d('lib', f('libc')))],
      [f('between')],
      [d('a.b', d('sub', f('x'))), d('lib', d('old', f('y')))],
    ],
    expect: (s) => assert.equal(paths(s), ['a.b', 'a.b/sub', 'a.b/sub/x', 'between', 'lib', 'lib/old', 'lib/old/y', 'usr', 'usr/lib', 'usr/lib/libc']),
  },
  {
    name: 'an empty stack layer (empty tree) in the middle and on top',
    layers: [[f('a'), d('d', f('b'))], [], [d('d', wh('b'))], []],
    expect: (s) => assert.equal(paths(s), ['a', 'd']),
  },
];

if (unavailable) {
  test('overlayfs reference', () => {
    console.log(`SKIPPED overlayfs comparison: ${unavailable}`);
  });
} else {
  for (const c of CASES) {
    test(`overlayfs: ${c.name}`, async () => {
      const s = await compareLayers(c.name, c.layers);
      c.expect?.(s);
    });
  }

  test('overlayfs: 30 random stacks of 1-6 layers', async () => {
    const seed = testSeed();
    try {
      const rng = new Rng(seed);
      for (let k = 0; k < 30; k++) {
        const nLayers = rng.int(1, 6);
        // Live views of every third stack (each costs two mounts per backend).
        const r = await bothViews((gitdir) => randomLayers(gitdir, rng, nLayers), k % 3 === 0);
        if (!deepEqual(r.glayer, r.kernel)) {
          const detail = git(r.gitdir, ['log', '--first-parent', '--format=%H', 'refs/heads/main']).split('\n')
            .map((c) => `layer ${c.slice(0, 12)}:\n${git(r.gitdir, ['ls-tree', '-r', '-t', c])}`).join('\n');
          assert.unreachable(`stack ${k} (${nLayers} layers) differs from overlayfs:\n${snapshotDiff(r.glayer, r.kernel, ['glayer', 'overlayfs'])}\n${detail}`);
        }
        for (const [b, s] of Object.entries(r.live)) {
          if (!deepEqual(s, r.kernel)) assert.unreachable(`stack ${k} (${nLayers} layers): the live view (${b}) differs from overlayfs:\n${snapshotDiff(s, r.kernel, [`live ${b}`, 'overlayfs'])}`);
        }
      }
    } catch (e) {
      console.log(`overlayfs random stacks failed with GLAYER_TEST_SEED=${seed}`);
      throw e;
    }
  });
}

// ---- random layers, written with native git ----

// Byte strings (latin1): UTF-8 names, and one that is not UTF-8.
const NAMES = ['a', 'b', 'c', 'd', 'a.b', 'é'].map((n) => Buffer.from(n, 'utf8').toString('latin1')).concat(['\xff not utf-8']);
const CONTENTS = ['', 'x', 'y\n', 'hello world\n', '\0binary\xff', 'x'.repeat(3000)];
const TARGETS = ['a', '../b', '/etc/passwd', 'nowhere', 'c/d', '.', 'a.b'];

function randomLayers(gitdir: string, rng: Rng, n: number): string[] {
  // Each blob once, by native git.
  const blobs = new Map<string, string>();
  const blob = (content: string): string => {
    let oid = blobs.get(content);
    if (!oid) blobs.set(content, (oid = git(gitdir, ['hash-object', '-w', '--stdin'], Buffer.from(content, 'latin1'))));
    return oid;
  };
  const tree = (depth: number, root: boolean): string => {
    const lines: string[] = [];
    for (const nameBytes of NAMES) {
      const r = rng.next();
      const entry = (): void => {
        const k = rng.next();
        if (k < 0.3) lines.push(`100644 blob ${blob(rng.pick(CONTENTS))}\t${nameBytes}`);
        else if (k < 0.4) lines.push(`100755 blob ${blob(rng.pick(CONTENTS))}\t${nameBytes}`);
        else if (k < 0.5) lines.push(`120000 blob ${blob(rng.pick(TARGETS))}\t${nameBytes}`);
        else if (depth < 3) lines.push(`040000 tree ${tree(depth + 1, false)}\t${nameBytes}`);
        else lines.push(`040000 tree ${EMPTY}\t${nameBytes}`);
      };
      if (r < 0.35) continue;
      if (r < 0.75) entry();
      else if (r < 0.9) lines.push(`100644 blob ${blob('')}\t.wh.${nameBytes}`);
      else { lines.push(`100644 blob ${blob('')}\t.wh.${nameBytes}`); entry(); }
    }
    // The kernel ignores trusted.overlay.opaque on a layer's root directory, so only below it (see the report).
    if (!root && rng.chance(0.12)) lines.push(`100644 blob ${blob('')}\t.wh..wh..opq`);
    return git(gitdir, ['mktree'], Buffer.from(lines.join('\n') + (lines.length ? '\n' : ''), 'latin1'));
  };
  // Git knows the empty tree without having it; fsck --strict wants it written before an entry points at it.
  assert.is(git(gitdir, ['mktree'], ''), EMPTY);
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(tree(0, true));
  return out;
}

const EMPTY = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';

test.run();
