// Rename and copy detection in `glayer diff` / `show`, against native git as the oracle: the two views of a pair
// of layers are committed to a plain git repository, and `git diff -M` / `-C` / `--find-renames=N` of those two
// commits must print exactly what glayer prints, line by line (patch, --name-status, --stat); git apply of the
// patch must give the upper view. Randomized scenarios (seeded; GLAYER_TEST_SEED replays one) add moves with
// edits of every size, copies, files with equal content, binary files and CRLF text.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { glayer, glayerOk } from '../helpers/cli.js';
import { fsck, GIT_ENV } from '../helpers/git.js';
import { Rng, testSeed } from '../helpers/prng.js';
import { snapshot } from '../helpers/snapshot.js';
import { tmpdir } from '../helpers/tmp.js';
import { parseRenameScore, renameName } from '../../src/cli/diff-format.js';
import { copiedBytes, MAX_SCORE, similarityIndex, spanHash } from '../../src/core/renames.js';

interface Pair { ws: string; l1: string; l2: string; snap1: string; snap2: string; repo: string; c1: string; c2: string }

function gitIn(dir: string, args: string[]): string {
  return execFileSync('git', args, { cwd: dir, env: { ...GIT_ENV, GIT_CEILING_DIRECTORIES: dirname(dir) }, maxBuffer: 1 << 28 }).toString('latin1');
}

/** Two layers: `first` writes the lower view, `second` edits it; both views committed to a git repository too. */
async function pairOf(first: (v: string) => void, second: (v: string) => void): Promise<Pair> {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  await glayerOk(ws, 'mount-view');
  const view = join(ws, 'view');
  first(view);
  const l1 = JSON.parse((await glayerOk(ws, 'commit', '-m', 'one', '--json')).stdout).id;
  const snap1 = join(base, 'snap1');
  execFileSync('cp', ['-a', view, snap1]);
  second(view);
  const l2 = JSON.parse((await glayerOk(ws, 'commit', '-m', 'two', '--json')).stdout).id;
  const snap2 = join(base, 'snap2');
  execFileSync('cp', ['-a', view, snap2]);
  const repo = join(base, 'repo');
  fs.mkdirSync(repo);
  gitIn(repo, ['init', '-q']);
  const commitView = (src: string, msg: string): string => {
    for (const n of fs.readdirSync(repo)) if (n !== '.git') fs.rmSync(join(repo, n), { recursive: true });
    execFileSync('cp', ['-a', `${src}/.`, repo]);
    fs.rmSync(join(repo, '.git', 'index'), { force: true });
    gitIn(repo, ['add', '-A']);
    gitIn(repo, ['commit', '-q', '--allow-empty', '-m', msg]);
    return gitIn(repo, ['rev-parse', 'HEAD']).trim();
  };
  return { ws, l1, l2, snap1, snap2, repo, c1: commitView(snap1, 'one'), c2: commitView(snap2, 'two') };
}

function sameLines(ours: string, theirs: string, label: string): void {
  if (ours === theirs) return;
  const x = ours.split('\n'), y = theirs.split('\n');
  let i = 0;
  while (i < x.length && x[i] === y[i]) i++;
  assert.unreachable(`${label}: glayer and git differ at line ${i + 1}:\n  glayer: ${JSON.stringify(x[i])}\n  git:    ${JSON.stringify(y[i])}\n--- glayer:\n${ours.slice(0, 3000)}\n--- git:\n${theirs.slice(0, 3000)}`);
}

const FLAG_SETS: Array<[string[], string[]]> = [
  [[], ['-M']],
  [['--find-renames=70'], ['--find-renames=70']],
  [['-M', '--find-renames=30%'], ['-M30%']],
  [['--find-copies'], ['-C']],
  [['--find-copies=60'], ['--find-copies=60']],
  [['--no-renames'], ['--no-renames']],
];

/** A patch's file headers only: jsdiff and git's xdiff may cut a random edit into different (equally valid) hunks. */
const headers = (patch: string): string => patch.split('\n').filter((l) => !/^(@@|[ +-\\]|$)/.test(l) || /^(---|\+\+\+) /.test(l)).join('\n');

async function compareAll(p: Pair, label: string, apply = true, wholePatch = true): Promise<void> {
  for (const [ours, theirs] of FLAG_SETS) {
    for (const fmt of [[], ['--name-status'], ['--stat'], ['--name-only']]) {
      let mine = (await glayerOk(p.ws, 'diff', ...ours, ...fmt, p.l1, p.l2)).stdout;
      let git = gitIn(p.repo, ['diff', ...theirs, ...fmt, p.c1, p.c2]);
      if (fmt.length === 0 && !wholePatch) { mine = headers(mine); git = headers(git); }
      sameLines(mine, git, `${label} diff ${[...ours, ...fmt].join(' ')}`);
    }
  }
  // git apply of the rename-aware patch gives the upper view (binary files have no patch glayer can print).
  for (const flags of apply ? [[], ['--find-copies']] : []) {
    const patch = (await glayerOk(p.ws, 'diff', ...flags, p.l1, p.l2)).stdout;
    const work = tmpdir();
    execFileSync('cp', ['-a', `${p.snap1}/.`, work]);
    const r = spawnSync('git', ['apply', '--binary', '-'], { cwd: work, input: Buffer.from(patch, 'latin1'), env: { ...GIT_ENV, GIT_CEILING_DIRECTORIES: dirname(work) } });
    assert.is(r.status, 0, `${label}: git apply failed:\n${r.stderr}`);
    const files = (dir: string) => Object.fromEntries(Object.entries(snapshot(dir)).filter(([, d]) => d !== 'dir'));
    assert.equal(files(work), files(p.snap2), `${label}: git apply ${flags.join(' ')} gives the upper view`);
  }
  // show is the same diff.
  const shown = (await glayerOk(p.ws, 'show', '--name-status', p.l2)).stdout;
  assert.ok(shown.endsWith(gitIn(p.repo, ['diff', '-M', '--name-status', p.c1, p.c2])), `${label}: show --name-status`);
  fsck(join(p.ws, '.glayer'));
}

const put = (v: string, p: string, data: string | Buffer, mode = 0o644): void => {
  fs.mkdirSync(dirname(join(v, p)), { recursive: true });
  fs.writeFileSync(join(v, p), data);
  fs.chmodSync(join(v, p), mode);
};
const lines = (n: number, tag: string): string => Array.from({ length: n }, (_, i) => `${tag} line ${i} of the file, with some text to make it long enough\n`).join('');

test('named cases: pure moves, moves with edits, mode changes, same basename, copies, thresholds', async () => {
  const p = await pairOf((v) => {
    put(v, 'etc/nginx/nginx.conf', lines(40, 'nginx'));
    put(v, 'etc/ssh/sshd_config', lines(30, 'sshd'));
    put(v, 'bin/tool', lines(10, 'tool'), 0o755);
    put(v, 'a/same.txt', lines(20, 'same'));
    put(v, 'b/same.txt', lines(20, 'same'));
    put(v, 'docs/readme', lines(50, 'readme'));
    put(v, 'half', lines(20, 'half'));
    put(v, 'sp ace/file one', lines(8, 'space'));
    put(v, 'crlf.txt', lines(12, 'crlf').replace(/\n/g, '\r\n'));
    put(v, 'empty1', '');
    fs.symlinkSync('etc/nginx/nginx.conf', join(v, 'link1'));
  }, (v) => {
    fs.renameSync(join(v, 'etc/nginx'), join(v, 'etc/nginx2')); // pure move of a directory
    fs.rmSync(join(v, 'etc/ssh/sshd_config'));
    put(v, 'etc/sshd/sshd_config', lines(30, 'sshd').replace('line 3 ', 'LINE 3 ') + 'appended\n'); // move with an edit
    fs.renameSync(join(v, 'bin/tool'), join(v, 'bin/tool2'));
    fs.chmodSync(join(v, 'bin/tool2'), 0o644); // move with a mode change
    fs.mkdirSync(join(v, 'c'));
    fs.renameSync(join(v, 'a/same.txt'), join(v, 'c/same.txt')); // two sources with equal content
    put(v, 'docs/readme', lines(50, 'readme') + 'more\n'); // modified (a copy source with -C)
    put(v, 'docs/readme.copy', lines(50, 'readme')); // a copy of the old readme
    fs.rmSync(join(v, 'half'));
    put(v, 'half2', lines(10, 'half') + lines(10, 'other')); // about 50% similar
    fs.renameSync(join(v, 'sp ace/file one'), join(v, 'sp ace/file two'));
    fs.rmSync(join(v, 'crlf.txt'));
    put(v, 'crlf2.txt', lines(12, 'crlf')); // CRLF -> LF: git skips the CR in text
    fs.renameSync(join(v, 'empty1'), join(v, 'empty2'));
    fs.renameSync(join(v, 'link1'), join(v, 'link2'));
  });
  const ns = (await glayerOk(p.ws, 'diff', '--name-status', p.l1, p.l2)).stdout;
  assert.match(ns, /^R100\tetc\/nginx\/nginx\.conf\tetc\/nginx2\/nginx\.conf$/m);
  assert.match(ns, /^R0\d\d\tetc\/ssh\/sshd_config\tetc\/sshd\/sshd_config$/m);
  assert.match(ns, /^R100\t"sp ace\/file one"|^R100\tsp ace\/file one\tsp ace\/file two$/m);
  assert.match((await glayerOk(p.ws, 'diff', '--find-copies', '--name-status', p.l1, p.l2)).stdout, /^C\d\d\d\tdocs\/readme\tdocs\/readme\.copy$/m);
  assert.match((await glayerOk(p.ws, 'diff', '--stat', p.l1, p.l2)).stdout, /^ etc\/\{nginx => nginx2\}\/nginx\.conf +\| +0$/m);
  const json = JSON.parse((await glayerOk(p.ws, 'diff', '--json', p.l1, p.l2)).stdout) as Array<Record<string, unknown>>;
  const moved = json.find((f) => f.path === 'bin/tool2')!;
  assert.equal([moved.change, moved.oldPath, moved.similarity], ['R', 'bin/tool', 100]);
  await compareAll(p, 'named');
});

test('randomized scenarios match git -M and -C line by line', async () => {
  const seed = testSeed();
  const rng = new Rng(seed);
  for (let round = 0; round < 4; round++) {
    const names: string[] = [];
    const content = new Map<string, Buffer>();
    const text = (n: number): string => Array.from({ length: n }, () => `${rng.pick(['alpha', 'beta', 'gamma', 'delta', 'eps'])} ${rng.int(0, 50)} ${rng.pick(['x', 'yy', 'zzz'])}\n`).join('');
    const p = await pairOf((v) => {
      const n = rng.int(8, 25);
      for (let i = 0; i < n; i++) {
        const name = `${rng.pick(['d1', 'd2', 'd3/sub', ''])}${rng.chance(0.3) ? '/common' : '/f'}${i}${rng.pick(['.txt', '.conf', ''])}`.replace(/^\//, '');
        const data = round >= 2 && rng.chance(0.15) ? Buffer.concat([Buffer.from([0]), rng.bytes(rng.int(10, 400))]) : Buffer.from(text(rng.int(1, 60)));
        names.push(name);
        content.set(name, data);
        put(v, name, data);
      }
    }, (v) => {
      for (const name of names) {
        const r = rng.next();
        const data = content.get(name)!;
        const dest = `${rng.pick(['m1', 'm2', 'd1', 'd3/sub'])}/${rng.chance(0.5) ? name.split('/').pop() : `g${rng.int(0, 99)}`}`;
        if (fs.existsSync(join(v, dest)) || names.includes(dest)) continue;
        if (r < 0.25) { fs.rmSync(join(v, name)); put(v, dest, data); } // move
        else if (r < 0.5) { // move with an edit of random size
          fs.rmSync(join(v, name));
          const s = data.toString('latin1');
          const cut = rng.int(0, s.length);
          put(v, dest, Buffer.from(s.slice(0, cut) + text(rng.int(0, 20)) + s.slice(cut + rng.int(0, 40)), 'latin1'));
        } else if (r < 0.6) put(v, dest, data); // copy
        else if (r < 0.7) fs.rmSync(join(v, name)); // delete
        else if (r < 0.8) put(v, name, Buffer.concat([data, Buffer.from(text(rng.int(1, 5)))])); // modify in place
      }
    });
    try { await compareAll(p, `seed ${seed} round ${round}`, round < 2, false); } catch (e) {
      throw new Error(`GLAYER_TEST_SEED=${seed}: ${(e as Error).message}`);
    }
  }
});

test('binary files: exact and inexact renames as git finds them', async () => {
  const blob = (tail: string): Buffer => Buffer.concat([Buffer.from([0, 1, 2]), Buffer.from(lines(30, 'bin')), Buffer.from(tail)]);
  const p = await pairOf((v) => { put(v, 'lib/blob.bin', blob('')); put(v, 'lib/same.bin', blob('same')); }, (v) => {
    fs.rmSync(join(v, 'lib/blob.bin'));
    put(v, 'lib/blob2.bin', blob('x'));
    fs.renameSync(join(v, 'lib/same.bin'), join(v, 'lib/same2.bin'));
  });
  assert.match((await glayerOk(p.ws, 'diff', '--stat', p.l1, p.l2)).stdout, /^ lib\/\{same\.bin => same2\.bin\} \| Bin$/m);
  await compareAll(p, 'binary', false);
});

test('similarity: the chunk hash counts bytes as git does; thresholds parse as git parses them', () => {
  const a = spanHash(Buffer.from('one\ntwo\nthree\n'), true);
  assert.is([...a.values()].reduce((x, y) => x + y, 0), 14);
  assert.is(copiedBytes(a, spanHash(Buffer.from('one\r\ntwo\r\nthree\r\n'), true)), 14); // CR before LF skipped in text
  assert.is(copiedBytes(a, spanHash(Buffer.from('one\nTWO\nthree\n'), true)), 10);
  // A chunk ends after 64 bytes without a newline.
  assert.is(spanHash(Buffer.alloc(130, 0x61), false).size, 1);
  // An unterminated tail under 64 bytes is not hashed (git 2.39: this pair scores R037, not R083).
  const tail = 'line two\nline three\nlast line no newline here';
  const [x, y] = [spanHash(Buffer.from('line one\n' + tail), true), spanHash(Buffer.from('line onX\n' + tail), true)];
  assert.is(similarityIndex(Math.floor((copiedBytes(x, y) * MAX_SCORE) / 54)), 37);
  for (const [text, score] of [['50', 30000], ['5', 30000], ['50%', 30000], ['.75', 45000], ['100', 6000], ['100%', 60000], ['0', 0], ['070', 4200]] as const) {
    assert.is(parseRenameScore(text), score, text);
  }
  for (const [a, b, shown] of [
    ['a/b/c.txt', 'a/d/c.txt', 'a/{b => d}/c.txt'], ['x', 'y', 'x => y'], ['dir/x', 'dir/y', 'dir/{x => y}'],
    ['a/b', 'a/c/b', 'a/{ => c}/b'], ['a/c/b', 'a/b', 'a/{c => }/b'],
  ]) assert.is(renameName(a, b), shown);
});

test('bad input: a similarity that is not a number, --no-renames with -M', async () => {
  const p = await pairOf((v) => put(v, 'a', 'a\n'), (v) => fs.renameSync(join(v, 'a'), join(v, 'b')));
  for (const args of [['--find-renames=abc'], ['--no-renames', '-M'], ['--no-renames', '--find-copies']]) {
    const r = await glayer(p.ws, 'diff', ...args, p.l1, p.l2);
    assert.is(r.code, 2, args.join(' '));
    assert.is(r.stderr.trim().split('\n').length, 1);
    assert.is(r.stdout, '');
  }
});

test.run();
