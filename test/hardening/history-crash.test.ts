// SIGKILL during squash, reset and stack switch: after each kill `git fsck --strict` passes, the stack is at its
// old top or its new one (HEAD names the old stack or the new one), and once a command completes the view is the
// union of whatever stack HEAD names plus the writable layer. The kill delay is drawn from the measured run time.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { glayerOk } from '../helpers/cli.js';
import { fsck, git } from '../helpers/git.js';
import { snapshot } from '../helpers/snapshot.js';
import { tmpdir } from '../helpers/tmp.js';
import { run } from './spawn.js';

const KILLS = Number(process.env.GLAYER_CRASH_KILLS ?? 100);

test(`SIGKILL during squash, reset and stack switch (${Math.max(6, Math.floor(KILLS / 10))} kills each)`, async () => {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws', '--template', 'etc');
  const ws = join(base, 'ws');
  const gitdir = join(ws, '.glayer');
  await glayerOk(ws, 'mount-view');
  const view = join(ws, 'view');
  for (let k = 0; k < 6; k++) {
    fs.writeFileSync(join(view, `f${k}`), `v${k}\n`.repeat(100 + k));
    if (k % 2) fs.rmSync(join(view, `f${k - 1}`));
    await glayerOk(ws, 'commit', '-m', `layer ${k}`);
  }
  await glayerOk(ws, 'stack', 'new', 'other', '--from', 'HEAD~3');
  const views = new Map<string, Record<string, string>>();
  const viewOf = async (): Promise<Record<string, string>> => {
    await glayerOk(ws, 'status');
    return snapshot(view);
  };
  views.set(git(gitdir, ['rev-parse', 'HEAD']), await viewOf());
  const kills = Math.max(6, Math.floor(KILLS / 10));
  const ops: Array<{ name: string; args: () => string[] }> = [
    { name: 'squash', args: () => ['squash', 'HEAD~3'] },
    { name: 'reset', args: () => ['reset', 'HEAD~1'] },
    { name: 'stack switch', args: () => ['stack', 'switch', git(gitdir, ['symbolic-ref', '--short', 'HEAD']) === 'main' ? 'other' : 'main'] },
  ];
  for (const op of ops) {
    // How long the command takes here, to spread the kills over it.
    const t0 = Date.now();
    const probe = run(ws, op.args());
    const r = await probe.done;
    assert.is(r.code, 0, `${op.name}: ${r.stderr}`);
    const span = Math.max(50, Date.now() - t0);
    for (let k = 0; k < kills; k++) {
      const before = { head: git(gitdir, ['symbolic-ref', 'HEAD']), top: git(gitdir, ['rev-parse', 'HEAD']), view: await viewOf() };
      const args = op.args();
      const c = run(ws, args);
      await new Promise((res) => setTimeout(res, Math.floor(Math.random() * span)));
      c.child.kill('SIGKILL');
      await c.done;
      fsck(gitdir);
      const head = git(gitdir, ['symbolic-ref', 'HEAD']);
      const top = git(gitdir, ['rev-parse', 'HEAD']);
      // Finish (or redo) the job: the next command reconciles; the view is then the union of HEAD's stack.
      const after = await viewOf();
      if (head === before.head && top === before.top) assert.equal(after, before.view, `${op.name} kill ${k}: old state, same view`);
      else {
        // The new state: a squash keeps the union; a reset or a switch shows the new stack's union.
        if (op.name === 'squash') assert.equal(after, before.view, `${op.name} kill ${k}: squash keeps the union`);
        const fresh = join(base, `check-${op.name.replace(' ', '-')}-${k}`);
        await glayerOk(base, 'clone', ws, fresh, '--branch', head.replace('refs/heads/', ''));
        const cloned = snapshot(join(fresh, 'view'));
        assert.equal(after, cloned, `${op.name} kill ${k}: the view is the new top's union`);
      }
      // Put the stacks back where they were, for the next kill.
      if (op.name !== 'stack switch') {
        await glayerOk(ws, 'reset', '--hard', before.top);
      }
      fsck(gitdir);
    }
  }
});

test.run();
