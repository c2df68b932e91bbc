// The reconcile rules (src/api/sync.ts) through the library API on real directories: edits in the view are
// recorded in the writable layer as overlayfs would; edits in the writable layer show in the view; conflicts
// keep the view's version with a warning.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { commit, init, mountView, status } from '../../src/index.js';
import { fsck, git } from '../helpers/git.js';
import { tmpdir } from '../helpers/tmp.js';

interface Ws { root: string; view: string; upper: string; gitdir: string }

/** A workspace whose stack has one base layer (made through the API) and a mounted view. */
async function workspace(files: Record<string, string | null> = BASE): Promise<Ws> {
  const root = join(tmpdir(), 'ws');
  await init({ dir: root });
  await mountView({ cwd: root });
  const ws = { root, view: join(root, 'view'), upper: join(root, 'upper'), gitdir: join(root, '.glayer') };
  for (const [p, content] of Object.entries(files)) {
    const abs = join(ws.view, p);
    if (content === null) fs.mkdirSync(abs, { recursive: true });
    else { fs.mkdirSync(join(abs, '..'), { recursive: true }); fs.writeFileSync(abs, content); }
  }
  await commit({ cwd: root, message: 'base' });
  assert.equal(listing(ws.upper), [], 'upper empty after the base commit');
  return ws;
}

const BASE: Record<string, string | null> = {
  'a.txt': 'A\n',
  'b.txt': 'B\n',
  'etc/hosts': 'localhost\n',
  'etc/conf/x': 'x\n',
  'etc/conf/y': 'y\n',
  'etc/conf/deep/z': 'z\n',
  empty: null,
};

/** Every path under `dir` (dirs with a trailing '/'), sorted. */
function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const d of fs.readdirSync(join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) { out.push(r + '/'); walk(r); } else out.push(r);
    }
  };
  walk('');
  return out.sort();
}

const read = (p: string): string => fs.readFileSync(p, 'utf8');

async function changes(ws: Ws): Promise<string[]> {
  return (await status({ cwd: ws.root })).changes.map((c) => `${c.change} ${c.path}`);
}

test('a file edited in the view is copied up whole', async () => {
  const ws = await workspace();
  fs.writeFileSync(join(ws.view, 'etc/hosts'), 'localhost\nexample\n');
  assert.equal(await changes(ws), ['C etc/hosts']);
  assert.equal(listing(ws.upper), ['etc/', 'etc/hosts']);
  assert.is(read(join(ws.upper, 'etc/hosts')), 'localhost\nexample\n');
});

test('a file deleted in the view is a whiteout', async () => {
  const ws = await workspace();
  fs.rmSync(join(ws.view, 'etc/conf/x'));
  assert.equal(await changes(ws), ['D etc/conf/x']);
  assert.equal(listing(ws.upper), ['etc/', 'etc/conf/', 'etc/conf/.wh.x']);
  assert.is(fs.statSync(join(ws.upper, 'etc/conf/.wh.x')).size, 0);
});

test('a directory deleted in the view is one marker, never one per child', async () => {
  const ws = await workspace();
  fs.rmSync(join(ws.view, 'etc/conf'), { recursive: true });
  assert.equal(await changes(ws), ['D etc/conf']);
  assert.equal(listing(ws.upper), ['etc/', 'etc/.wh.conf']);
});

test('a directory deleted and re-created in the view is opaque', async () => {
  const ws = await workspace();
  // Build the new directory beside the old one (a different inode for sure), then swap it in.
  fs.mkdirSync(join(ws.view, 'etc/conf.new'));
  fs.writeFileSync(join(ws.view, 'etc/conf.new/fresh'), 'fresh\n');
  fs.writeFileSync(join(ws.view, 'etc/conf.new/x'), 'x\n'); // same content as the lower x: still recorded (opaque)
  fs.rmSync(join(ws.view, 'etc/conf'), { recursive: true });
  fs.renameSync(join(ws.view, 'etc/conf.new'), join(ws.view, 'etc/conf'));
  const st = await changes(ws);
  assert.equal(st, ['D etc/conf/deep', 'A etc/conf/fresh', 'D etc/conf/y']);
  assert.equal(listing(ws.upper), ['etc/', 'etc/conf/', 'etc/conf/.wh..wh..opq', 'etc/conf/fresh', 'etc/conf/x']);
  assert.equal(listing(ws.view), ['a.txt', 'b.txt', 'empty/', 'etc/', 'etc/conf/', 'etc/conf/fresh', 'etc/conf/x', 'etc/hosts']);
  // Committed, the layer hides the lower children.
  const c = await commit({ cwd: ws.root, message: 'opaque' });
  assert.is(git(ws.gitdir, ['ls-tree', '--name-only', `${c.id}:etc/conf`]), '.wh..wh..opq\nfresh\nx');
  fsck(ws.gitdir);
});

test('deleting a marker in the writable layer makes the lower file reappear in the view', async () => {
  const ws = await workspace();
  fs.rmSync(join(ws.view, 'b.txt'));
  fs.rmSync(join(ws.view, 'etc/conf'), { recursive: true });
  await status({ cwd: ws.root });
  assert.equal(listing(ws.upper), ['.wh.b.txt', 'etc/', 'etc/.wh.conf']);
  fs.rmSync(join(ws.upper, '.wh.b.txt'));
  fs.rmSync(join(ws.upper, 'etc/.wh.conf'));
  assert.equal(await changes(ws), []);
  assert.is(read(join(ws.view, 'b.txt')), 'B\n');
  assert.is(read(join(ws.view, 'etc/conf/deep/z')), 'z\n');
  assert.equal(listing(ws.upper), []);
});

test('a file dropped into the writable layer appears in the view', async () => {
  const ws = await workspace();
  fs.mkdirSync(join(ws.upper, 'etc/new'), { recursive: true });
  fs.writeFileSync(join(ws.upper, 'etc/new/file'), 'from upper\n');
  fs.writeFileSync(join(ws.upper, 'a.txt'), 'replaced in upper\n');
  assert.equal(await changes(ws), ['C a.txt', 'A etc/new', 'A etc/new/file']);
  assert.is(read(join(ws.view, 'etc/new/file')), 'from upper\n');
  assert.is(read(join(ws.view, 'a.txt')), 'replaced in upper\n');
});

test('a marker added by hand in the writable layer hides the file in the view', async () => {
  const ws = await workspace();
  fs.writeFileSync(join(ws.upper, '.wh.a.txt'), '');
  fs.mkdirSync(join(ws.upper, 'etc'));
  fs.writeFileSync(join(ws.upper, 'etc/.wh.conf'), '');
  assert.equal(await changes(ws), ['D a.txt', 'D etc/conf']);
  assert.not.ok(fs.existsSync(join(ws.view, 'a.txt')));
  assert.not.ok(fs.existsSync(join(ws.view, 'etc/conf')));
  assert.ok(fs.existsSync(join(ws.view, 'etc/hosts')));
});

test('an opaque marker added by hand in the writable layer empties the directory in the view', async () => {
  const ws = await workspace();
  fs.mkdirSync(join(ws.upper, 'etc/conf'), { recursive: true });
  fs.writeFileSync(join(ws.upper, 'etc/conf/.wh..wh..opq'), '');
  fs.writeFileSync(join(ws.upper, 'etc/conf/only'), 'only\n');
  await status({ cwd: ws.root });
  assert.equal(listing(join(ws.view, 'etc/conf')), ['only']);
  assert.equal(listing(ws.upper), ['etc/', 'etc/conf/', 'etc/conf/.wh..wh..opq', 'etc/conf/only']);
});

test('a file changed back to its lower content drops the copy', async () => {
  const ws = await workspace();
  fs.writeFileSync(join(ws.view, 'etc/hosts'), 'changed\n');
  await status({ cwd: ws.root });
  assert.equal(listing(ws.upper), ['etc/', 'etc/hosts']);
  fs.writeFileSync(join(ws.view, 'etc/hosts'), 'localhost\n');
  assert.equal(await changes(ws), []);
  assert.equal(listing(ws.upper), []);
});

test('a deleted file re-created with its lower content drops the marker', async () => {
  const ws = await workspace();
  fs.rmSync(join(ws.view, 'a.txt'));
  await status({ cwd: ws.root });
  assert.equal(listing(ws.upper), ['.wh.a.txt']);
  fs.writeFileSync(join(ws.view, 'a.txt'), 'A\n');
  assert.equal(await changes(ws), []);
  assert.equal(listing(ws.upper), []);
});

test('a rename is a whiteout of the old path plus the full new entry', async () => {
  const ws = await workspace();
  fs.renameSync(join(ws.view, 'a.txt'), join(ws.view, 'renamed.txt'));
  fs.renameSync(join(ws.view, 'etc/conf'), join(ws.view, 'conf2'));
  assert.equal(await changes(ws), ['D a.txt', 'A conf2', 'A conf2/deep', 'A conf2/deep/z', 'A conf2/x', 'A conf2/y', 'D etc/conf', 'A renamed.txt']);
  assert.equal(listing(ws.upper), ['.wh.a.txt', 'conf2/', 'conf2/deep/', 'conf2/deep/z', 'conf2/x', 'conf2/y', 'etc/', 'etc/.wh.conf', 'renamed.txt']);
  assert.is(read(join(ws.upper, 'renamed.txt')), 'A\n');
});

test('deleting something that exists only in the writable layer just removes it', async () => {
  const ws = await workspace();
  fs.writeFileSync(join(ws.view, 'new.txt'), 'new\n');
  fs.mkdirSync(join(ws.view, 'newdir/sub'), { recursive: true });
  fs.writeFileSync(join(ws.view, 'newdir/sub/f'), 'f\n');
  await status({ cwd: ws.root });
  assert.equal(listing(ws.upper), ['new.txt', 'newdir/', 'newdir/sub/', 'newdir/sub/f']);
  fs.rmSync(join(ws.view, 'new.txt'));
  fs.rmSync(join(ws.view, 'newdir'), { recursive: true });
  assert.equal(await changes(ws), []);
  assert.equal(listing(ws.upper), []);
});

test('a kind change in the view: directory to file and file to directory', async () => {
  const ws = await workspace();
  fs.rmSync(join(ws.view, 'etc/conf'), { recursive: true });
  fs.writeFileSync(join(ws.view, 'etc/conf'), 'now a file\n');
  fs.rmSync(join(ws.view, 'a.txt'));
  fs.mkdirSync(join(ws.view, 'a.txt'));
  fs.writeFileSync(join(ws.view, 'a.txt/inside'), 'i\n');
  fs.rmSync(join(ws.view, 'b.txt'));
  fs.symlinkSync('a.txt/inside', join(ws.view, 'b.txt'));
  assert.equal(await changes(ws), ['C a.txt', 'A a.txt/inside', 'C b.txt', 'C etc/conf']);
  assert.equal(listing(ws.upper), ['a.txt/', 'a.txt/inside', 'b.txt', 'etc/', 'etc/conf']);
  assert.is(fs.readlinkSync(join(ws.upper, 'b.txt')), 'a.txt/inside');
  const c = await commit({ cwd: ws.root, message: 'kinds' });
  assert.is(git(ws.gitdir, ['cat-file', '-p', `${c.id}:b.txt`]), 'a.txt/inside');
  assert.match(git(ws.gitdir, ['ls-tree', c.id, 'b.txt']), /^120000 blob /);
  fsck(ws.gitdir);
});

test('the same path changed in the view and in the writable layer: the view wins, with a warning', async () => {
  const ws = await workspace();
  fs.writeFileSync(join(ws.view, 'a.txt'), 'view version\n');
  fs.writeFileSync(join(ws.upper, 'a.txt'), 'upper version\n');
  // A change on only one side still comes through.
  fs.writeFileSync(join(ws.upper, 'b.txt'), 'upper only\n');
  const st = await status({ cwd: ws.root });
  assert.equal(st.changes.map((c) => `${c.change} ${c.path}`), ['C a.txt', 'C b.txt']);
  assert.is(st.warnings.length, 1, st.warnings.join('\n'));
  assert.match(st.warnings[0], /a\.txt changed both in the view and in the writable layer; kept the view's version/);
  assert.is(read(join(ws.view, 'a.txt')), 'view version\n');
  assert.is(read(join(ws.upper, 'a.txt')), 'view version\n');
  assert.is(read(join(ws.view, 'b.txt')), 'upper only\n');
  // Settled: no warning the next time.
  assert.equal((await status({ cwd: ws.root })).warnings, []);
});

test('conflict: a file deleted in the view and edited in the writable layer stays deleted, with a warning', async () => {
  const ws = await workspace();
  fs.rmSync(join(ws.view, 'etc/hosts'));
  fs.mkdirSync(join(ws.upper, 'etc'));
  fs.writeFileSync(join(ws.upper, 'etc/hosts'), 'upper\n');
  const st = await status({ cwd: ws.root });
  assert.equal(st.changes.map((c) => `${c.change} ${c.path}`), ['D etc/hosts']);
  assert.is(st.warnings.length, 1, st.warnings.join('\n'));
  assert.match(st.warnings[0], /etc\/hosts/);
  assert.equal(listing(ws.upper), ['etc/', 'etc/.wh.hosts']);
});

test('both sides making the same change is no conflict', async () => {
  const ws = await workspace();
  fs.writeFileSync(join(ws.view, 'a.txt'), 'same\n');
  fs.writeFileSync(join(ws.upper, 'a.txt'), 'same\n');
  const st = await status({ cwd: ws.root });
  assert.equal(st.warnings, []);
  assert.equal(st.changes.map((c) => `${c.change} ${c.path}`), ['C a.txt']);
});

test('commit freezes the writable layer, empties it, and leaves the view as it was', async () => {
  const ws = await workspace();
  fs.writeFileSync(join(ws.view, 'a.txt'), 'v2\n');
  fs.rmSync(join(ws.view, 'etc/conf'), { recursive: true });
  fs.writeFileSync(join(ws.upper, 'dropped'), 'd\n');
  const before = listing(ws.view);
  const c = await commit({ cwd: ws.root, message: 'second' });
  assert.equal(listing(ws.upper), []);
  const after = listing(ws.view);
  assert.equal(after, [...before, 'dropped'].sort());
  assert.is(git(ws.gitdir, ['ls-tree', '-r', '--name-only', c.id]), 'a.txt\ndropped\netc/.wh.conf');
  assert.equal(await changes(ws), []);
  fsck(ws.gitdir);
});

test('edits in the view survive and reconcile twice is stable (no spurious writes)', async () => {
  const ws = await workspace();
  fs.writeFileSync(join(ws.view, 'a.txt'), 'v2\n');
  await status({ cwd: ws.root });
  const m1 = fs.statSync(join(ws.upper, 'a.txt')).mtimeMs;
  const i1 = fs.statSync(join(ws.upper, 'a.txt')).ino;
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(await changes(ws), ['C a.txt']);
  assert.is(fs.statSync(join(ws.upper, 'a.txt')).mtimeMs, m1);
  assert.is(fs.statSync(join(ws.upper, 'a.txt')).ino, i1);
});

test.run();
