// Store.depth: the layer count of a stack, cached per layer in glayer/depths so that a live mount of a deep stack
// reads only the layers it mounts one by one (mount/cache.ts). The count matches a full walk and native git's
// rev-list; damaged lines are ignored; and a wrong cached count never changes what a live view shows (the cut
// only moves, the flattened bottom is still the union below it).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { glayer, glayerOk } from '../helpers/cli.js';
import { fsck, git, GIT_ENV } from '../helpers/git.js';
import { liveBackends } from '../helpers/live.js';
import { snapshot } from '../helpers/snapshot.js';
import { tmpdir } from '../helpers/tmp.js';

/** A workspace whose stack has `n` layers (one file each, every tenth deleting an older one), made by git fast-import. */
async function deepWorkspace(n: number): Promise<{ base: string; ws: string; gitdir: string }> {
  const base = tmpdir('glayer-depth-');
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  const gitdir = join(ws, '.glayer');
  let script = '';
  for (let k = 1; k <= n; k++) {
    const body = `layer ${k}\n`;
    script += `commit refs/heads/main\ncommitter t <t@t> ${1700000000 + k} +0000\ndata ${`l${k}`.length}\nl${k}\n`;
    script += 'deleteall\n';
    script += `M 100644 inline d${k % 7}/f${k}\ndata ${body.length}\n${body}\n`;
    if (k % 10 === 0) script += `M 100644 inline d${k % 7}/.wh.f${k - 7}\ndata 0\n\n`;
  }
  execFileSync('git', ['--git-dir', gitdir, 'fast-import', '--quiet'], { input: script, env: GIT_ENV });
  return { base, ws, gitdir };
}

test('depth equals the walk and git rev-list, is cached per layer, and skips damaged lines', async () => {
  const { gitdir } = await deepWorkspace(100);
  const head = git(gitdir, ['rev-parse', 'refs/heads/main']);
  const store = new Store(gitdir);
  assert.is(store.depth(head), 100);
  assert.is(store.layers(head).length, 100);
  assert.is(Number(git(gitdir, ['rev-list', '--count', '--first-parent', head])), 100);
  assert.is(store.depth(null), 0);
  const parent = git(gitdir, ['rev-parse', `${head}~1`]);
  assert.is(store.depth(parent), 99);
  store.close();
  const file = join(gitdir, 'glayer', 'depths');
  assert.equal(fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).sort(), [`${head} 100`, `${parent} 99`].sort());
  // Damaged lines are skipped; a layer above a counted one is one more than it.
  fs.appendFileSync(file, `nonsense\n${'a'.repeat(40)} -3\n${head.slice(0, 20)} 4\n`);
  const again = new Store(gitdir);
  assert.is(again.depth(git(gitdir, ['rev-parse', `${head}~50`])), 50);
  assert.is(again.depth(head), 100);
  again.close();
  fsck(gitdir);
});

const BACKENDS = liveBackends();
if (BACKENDS.length) {
  test(`${BACKENDS[0]}: a wrong cached depth (too small, too large) still mounts the right view`, async () => {
    const { base, ws, gitdir } = await deepWorkspace(90);
    const head = git(gitdir, ['rev-parse', 'refs/heads/main']);
    const copy = join(base, 'copy');
    await glayerOk(ws, 'mount-view', copy);
    const want = snapshot(copy);
    try {
      for (const wrong of [0, 7, 64, 65, 2000]) {
        fs.rmSync(join(gitdir, 'glayer', 'cache'), { recursive: true, force: true });
        fs.writeFileSync(join(gitdir, 'glayer', 'depths'), wrong ? `${head} ${wrong}\n` : '');
        await glayerOk(ws, 'mount-view', '--live', '--backend', BACKENDS[0], join(base, 'live'));
        assert.equal(snapshot(join(base, 'live')), want, `cached depth ${wrong}`);
        await glayerOk(ws, 'umount');
      }
    } finally {
      await glayer(ws, 'umount');
    }
    fsck(gitdir);
  });
}

test.run();
