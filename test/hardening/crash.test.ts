// Crash safety: SIGKILL `glayer commit` and `glayer mount-view` at random moments, over and over. After each kill:
// `git fsck --strict` passes, the stack ref is the old layer or the new one, every file the test wrote is still in
// the view, the writable layer or the stack; then `glayer fsck` repairs the leftovers and `glayer status` works.
//
// The kill delay is drawn from the measured run time of the command (node's own start-up is a large part of it
// on a loaded machine, so a fixed 0-150 ms would only ever kill node while it loads).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { glayer, glayerOk } from '../helpers/cli.js';
import { fsck, git } from '../helpers/git.js';
import { tmpdir } from '../helpers/tmp.js';
import { leftovers } from './util.js';
import { run } from './spawn.js';

const KILLS = Number(process.env.GLAYER_CRASH_KILLS ?? 100);

function head(gitdir: string): string {
  return git(gitdir, ['rev-parse', 'refs/heads/main']);
}

const layerCache = new Map<string, Map<string, string>>();

/** Every path -> blob oid held by some layer of the stack (deltas; the test never deletes). Layers are cached. */
function stackFiles(gitdir: string): Map<string, string> {
  const out = new Map<string, string>();
  const ids = git(gitdir, ['rev-list', '--first-parent', 'refs/heads/main']).split('\n').reverse();
  for (const id of ids) {
    let layer = layerCache.get(id);
    if (!layer) {
      layer = new Map();
      for (const line of git(gitdir, ['ls-tree', '-r', id]).split('\n').filter(Boolean)) {
        const [meta, path] = line.split('\t');
        layer.set(path, meta.split(' ')[2]);
      }
      layerCache.set(id, layer);
    }
    for (const [p, o] of layer) out.set(p, o);
  }
  return out;
}

function blobId(content: string): string {
  const data = Buffer.from(content);
  return createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
}

function readOr(p: string): string | null {
  try { return fs.readFileSync(p, 'utf8'); } catch { return null; }
}

test(`${KILLS} SIGKILLs during commit and mount-view lose nothing`, async () => {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws', '--template', 'aufs-demo');
  const ws = join(base, 'ws');
  const gitdir = join(ws, '.glayer');
  await glayerOk(ws, 'mount-view');
  const written = new Map<string, string>();
  const viewOf = async (): Promise<string> => JSON.parse((await glayerOk(ws, 'info', '--json')).stdout).view as string;

  // Calibrate: how long an uninterrupted run takes here.
  const timed = async (args: string[]): Promise<number> => {
    const t0 = Date.now();
    const r = await run(ws, args).done;
    assert.is(r.code, 0, r.stderr);
    return Date.now() - t0;
  };
  fs.writeFileSync(join(ws, 'view', 'calibrate'), 'c\n');
  written.set('calibrate', 'c\n');
  const tCommit = await timed(['commit', '-m', 'calibrate']);
  const tMount = await timed(['mount-view']);

  let kills = 0;
  let completed = 0;
  for (let k = 0; k < KILLS; k++) {
    const view = await viewOf();
    // New files, one in a subdirectory, and a change to an earlier file.
    const name = `f${k}`;
    const content = `content ${k} ${Math.random()}\n`;
    fs.writeFileSync(join(view, name), content);
    written.set(name, content);
    fs.mkdirSync(join(view, 'd'), { recursive: true });
    fs.writeFileSync(join(view, 'd', name), content);
    written.set(`d/${name}`, content);
    if (k > 0) {
      const again = `f${k - 1}`;
      const c2 = `changed ${k}\n`;
      fs.writeFileSync(join(view, again), c2);
      written.set(again, c2);
    }
    const kind = k % 5;
    const args = kind <= 2 ? ['commit', '-m', `layer ${k}`]
      : kind === 3 ? ['mount-view']
      : ['mount-view', ...(k % 10 === 4 ? [join(base, `view-${k}`)] : [join(ws, 'view'), '--force'])];
    const before = head(gitdir);
    const budget = (args[0] === 'commit' ? tCommit : tMount) * 1.2;
    const { child, done } = run(ws, args);
    const delay = Math.random() * budget;
    const timer = setTimeout(() => child.kill('SIGKILL'), delay);
    const r = await done;
    clearTimeout(timer);
    if (r.signal === 'SIGKILL') kills++;
    else { completed++; assert.ok(r.code === 0 || r.code === 1, `${args.join(' ')} exit ${r.code}: ${r.stderr}`); }

    // Right after the kill, before glayer runs again.
    fsck(gitdir);
    const after = head(gitdir);
    if (after !== before) assert.is(git(gitdir, ['rev-parse', `${after}^`]), before, 'the stack moved by exactly one layer');
    const inStack = stackFiles(gitdir);
    const curView = await viewOf();
    for (const [p, c] of written) {
      const places = [readOr(join(curView, p)), readOr(join(view, p)), readOr(join(ws, 'upper', p)), inStack.get(p) === blobId(c) ? c : null];
      assert.ok(places.includes(c), `after killing ${args.join(' ')} at ${Math.round(delay)} ms: ${p} is lost`);
    }

    // glayer fsck repairs what the kill left; then status works and everything is in place.
    const f = await glayer(ws, 'fsck', '--json');
    const report = JSON.parse(f.stdout);
    assert.is(f.code, 0, `fsck after kill ${k}: ${f.stdout}${f.stderr}`);
    assert.ok(report.ok, JSON.stringify(report.problems));
    assert.equal(leftovers(ws), []);
    assert.equal(leftovers(base), []);
    assert.equal(fs.readdirSync(join(gitdir, 'objects')).filter((n) => n.startsWith('tmp_')), []);
    const st = await glayer(ws, 'status');
    assert.is(st.code, 0, st.stderr);
    const finalView = await viewOf();
    const stackNow = stackFiles(gitdir);
    for (const [p, c] of written) {
      assert.is(readOr(join(finalView, p)), c, `${p} in the view after status`);
      const recorded = readOr(join(ws, 'upper', p)) === c || stackNow.get(p) === blobId(c);
      assert.ok(recorded, `${p} is neither in the writable layer nor in the stack`);
    }
  }
  assert.ok(kills >= KILLS * 0.6, `only ${kills} of ${KILLS} runs were killed (${completed} completed)`);
  fsck(gitdir);
});

test.run();
