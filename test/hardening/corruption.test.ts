// Corruption: a byte flipped in, a truncation of, or the deletion of any object the stack needs, loose or packed.
// Every command that needs the object fails with one line naming an object id and a non-zero exit, and leaves the
// view and the writable layer as they were.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { glayer, glayerOk } from '../helpers/cli.js';
import { GIT_ENV, fsck, git } from '../helpers/git.js';
import { tmpdir } from '../helpers/tmp.js';
import { leftovers, ls, snapshotDir } from './util.js';

type How = 'flip' | 'truncate' | 'delete';

/** A workspace of two layers (every blob visible, a symlink) and a file in the writable layer; no union cache. */
async function fixture(): Promise<string> {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  const up = join(ws, 'upper');
  fs.mkdirSync(join(up, 'a'));
  fs.writeFileSync(join(up, 'a', 'x'), 'x content\n');
  fs.writeFileSync(join(up, 'a', 'y'), 'y content '.repeat(200) + '\n');
  fs.writeFileSync(join(up, 'b'), 'b content\n');
  fs.symlinkSync('a/x', join(up, 'link'));
  await glayerOk(ws, 'commit', '-m', 'one');
  fs.writeFileSync(join(up, 'c'), 'c content\n');
  fs.mkdirSync(join(up, 'a'), { recursive: true });
  fs.writeFileSync(join(up, 'a', 'z'), 'z content\n');
  await glayerOk(ws, 'commit', '-m', 'two');
  fs.writeFileSync(join(up, 'mine'), 'the user\'s own\n');
  fsck(join(ws, '.glayer'));
  return ws;
}

function copyWs(ws: string): string {
  const dest = join(tmpdir(), 'ws');
  execFileSync('cp', ['-a', ws, dest]);
  fs.rmSync(join(dest, '.glayer', 'glayer', 'unions'), { force: true });
  return dest;
}

function stackObjects(gitdir: string): string[] {
  return git(gitdir, ['rev-list', '--objects', 'refs/heads/main']).split('\n').map((l) => l.slice(0, 40));
}

function corruptLoose(gitdir: string, oid: string, how: How): void {
  const p = join(gitdir, 'objects', oid.slice(0, 2), oid.slice(2));
  fs.chmodSync(p, 0o644);
  if (how === 'delete') { fs.rmSync(p); return; }
  const data = fs.readFileSync(p);
  if (how === 'truncate') { fs.writeFileSync(p, data.subarray(0, Math.floor(data.length / 2))); return; }
  data[Math.floor(data.length / 2)] ^= 0x5a;
  fs.writeFileSync(p, data);
}

function packOf(gitdir: string): { pack: string; idx: string } {
  const dir = join(gitdir, 'objects', 'pack');
  const name = fs.readdirSync(dir).find((n) => n.endsWith('.pack'))!;
  return { pack: join(dir, name), idx: join(dir, name.replace(/\.pack$/, '.idx')) };
}

function corruptPacked(gitdir: string, oid: string, how: How): void {
  const { pack, idx } = packOf(gitdir);
  if (how === 'delete') {
    // Repack everything but this object.
    const others = stackObjects(gitdir).filter((o) => o !== oid).join('\n') + '\n';
    const dir = join(gitdir, 'objects', 'pack');
    execFileSync('git', ['--git-dir', gitdir, 'pack-objects', '-q', join(dir, 'pack')], { env: GIT_ENV, input: others });
    fs.rmSync(pack); fs.rmSync(idx);
    return;
  }
  const offsets = execFileSync('git', ['show-index'], { input: fs.readFileSync(idx) }).toString().trim().split('\n')
    .map((l) => { const [off, o] = l.split(' '); return { off: Number(off), oid: o }; }).sort((a, b) => a.off - b.off);
  const k = offsets.findIndex((e) => e.oid === oid);
  const start = offsets[k].off;
  const end = k + 1 < offsets.length ? offsets[k + 1].off : fs.statSync(pack).size - 20;
  fs.chmodSync(pack, 0o644);
  const data = fs.readFileSync(pack);
  if (how === 'truncate') { fs.writeFileSync(pack, data.subarray(0, start + Math.floor((end - start) / 2))); return; }
  // Flip a byte in the compressed body (past the entry header).
  data[start + Math.max(2, Math.floor((end - start) * 0.6))] ^= 0x5a;
  fs.writeFileSync(pack, data);
}

const OID_IN = /[0-9a-f]{40}/;

for (const storage of ['loose', 'packed'] as const) {
  test(`${storage}: every object the stack needs, flipped, truncated or deleted`, async () => {
    const pristine = await fixture();
    if (storage === 'packed') {
      git(join(pristine, '.glayer'), ['repack', '-a', '-d', '-q']);
      git(join(pristine, '.glayer'), ['prune-packed']);
    }
    const oids = stackObjects(join(pristine, '.glayer'));
    assert.ok(oids.length >= 10, `fixture has ${oids.length} objects`);
    for (const oid of oids) {
      for (const how of ['flip', 'truncate', 'delete'] as How[]) {
        const ws = copyWs(pristine);
        const gitdir = join(ws, '.glayer');
        (storage === 'loose' ? corruptLoose : corruptPacked)(gitdir, oid, how);
        const upperBefore = snapshotDir(join(ws, 'upper'));
        const what = `${storage} ${how} ${oid}`;
        // mount-view of a fresh target needs every object: it must fail, naming the object.
        const target = join(ws, 'view');
        const r = await glayer(ws, 'mount-view');
        assert.ok(r.code !== 0 && r.code !== 70, `${what}: mount-view exit ${r.code}: ${r.stderr}`);
        const lines = r.stderr.trim().split('\n');
        assert.is(lines.length, 1, `${what}: ${r.stderr}`);
        if (storage === 'loose' || how === 'flip' || how === 'delete') assert.ok(lines[0].includes(oid), `${what}: the error must name the object: ${lines[0]}`);
        else assert.match(lines[0], OID_IN, what);
        assert.equal(ls(target), [], `${what}: no view was made`);
        assert.equal(leftovers(ws), [], `${what}: no staging left`);
        // Other commands: fine if they do not need it, else one line naming an object.
        // glayer fsck reports it.
        const f = await glayer(ws, 'fsck', '--json');
        assert.is(f.code, 1, `${what}: fsck must report a problem`);
        assert.ok(JSON.parse(f.stdout).problems.some((p: { message: string }) => OID_IN.test(p.message)));
        // (commit last: it may rightly succeed without a lower blob, and then empties the writable layer.)
        for (const args of [['status'], ['log'], ['info'], ['commit', '-m', 'x']]) {
          const o = await glayer(ws, ...args);
          if (o.code === 0) continue;
          assert.ok(o.code !== 70, `${what}: ${args[0]}: internal error: ${o.stderr}`);
          assert.is(o.stderr.trim().split('\n').length, 1, `${what}: ${args[0]}: ${o.stderr}`);
          assert.match(o.stderr, OID_IN, `${what}: ${args[0]}: ${o.stderr}`);
          assert.equal(snapshotDir(join(ws, 'upper')), upperBefore, `${what}: ${args[0]} failed and changed the writable layer`);
        }
        fs.rmSync(ws, { recursive: true, force: true });
      }
    }
  });
}

test('a corrupt layer tree leaves a mounted view and the writable layer as they were', async () => {
  const pristine = await fixture();
  await glayerOk(pristine, 'mount-view');
  fs.writeFileSync(join(pristine, 'view', 'edited'), 'edit\n');
  fs.rmSync(join(pristine, 'view', 'b'));
  await glayerOk(pristine, 'status');
  const top = git(join(pristine, '.glayer'), ['rev-parse', 'refs/heads/main^{tree}']);
  const bottom = git(join(pristine, '.glayer'), ['rev-parse', 'refs/heads/main~1^{tree}']);
  for (const oid of [top, bottom]) {
    for (const how of ['flip', 'truncate', 'delete'] as How[]) {
      const ws = join(tmpdir(), 'ws');
      execFileSync('cp', ['-a', pristine, ws]);
      fs.rmSync(join(ws, '.glayer', 'glayer', 'unions'), { force: true });
      // state.json names the view by absolute path: point it at the copy.
      const stateFile = join(ws, '.glayer', 'glayer', 'state.json');
      const state = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
      state.view = join(ws, 'view');
      fs.writeFileSync(stateFile, JSON.stringify(state));
      corruptLoose(join(ws, '.glayer'), oid, how);
      const view = snapshotDir(join(ws, 'view'));
      const upper = snapshotDir(join(ws, 'upper'));
      for (const args of [['status'], ['commit', '-m', 'x'], ['mount-view'], ['mount-view', join(ws, 'other')]]) {
        const r = await glayer(ws, ...args);
        assert.ok(r.code !== 0 && r.code !== 70, `${how} ${args.join(' ')}: ${r.code} ${r.stderr}`);
        assert.is(r.stderr.trim().split('\n').length, 1);
        assert.ok(r.stderr.includes(oid), `${how} ${args[0]}: must name ${oid}: ${r.stderr}`);
        const j = await glayer(ws, ...args, '--json');
        const err = JSON.parse(j.stderr).error;
        assert.is(err.code, 'E_OBJECT');
        assert.ok(err.message.includes(oid));
      }
      assert.equal(snapshotDir(join(ws, 'view')), view, `${how}: the view changed`);
      assert.equal(snapshotDir(join(ws, 'upper')), upper, `${how}: the writable layer changed`);
      assert.not.ok(fs.existsSync(join(ws, 'other')));
    }
  }
});

test.run();
