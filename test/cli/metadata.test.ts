// Metadata through the CLI (docs/metadata.md): a view mounted as root shows the layers' owners, modes, mtimes,
// xattrs, devices, fifos and hardlinks; chmod / chown / touch -m / ln / setfattr / mkfifo / mknod in the view are
// seen by status (M, --json fields), committed as `.wh..wh..meta`, and a fresh view elsewhere is equal (lstat
// compare); layers written by plain git with a manifest are read like glayer's, and bad manifests refused with
// one line naming the layer and the line. Root-only cases are skipped (with a note) when not run as root.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { glayer, glayerOk } from '../helpers/cli.js';
import { commitTree, fsck, git, mktree } from '../helpers/git.js';
import { metaSnapshot as snapshot } from '../helpers/meta-snapshot.js';
import { tmpdir } from '../helpers/tmp.js';

const ROOT = process.getuid?.() === 0;
const HAS_ATTR = spawnSync('getfattr', ['--version']).status === 0;
const META = '.wh..wh..meta';

async function workspace(): Promise<{ ws: string; view: string; gitdir: string }> {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws', '--template', 'etc');
  const ws = join(base, 'ws');
  await glayerOk(ws, 'mount-view');
  return { ws, view: join(ws, 'view'), gitdir: join(ws, '.glayer') };
}

const sh = (cwd: string, script: string): void => { execFileSync('sh', ['-ec', script], { cwd }); };

test('chmod, chown, touch -m, ln, mkfifo, mknod and setfattr in the view: status M, commit, a fresh view equal', async () => {
  if (!ROOT) { console.log('  (skipped: not root)'); return; }
  const { ws, view, gitdir } = await workspace();
  sh(view, `
    chmod 4755 etc/init.d/app
    chmod 600 etc/hosts
    chown 1000:42 etc/passwd
    touch -m -d @1700000000.25 etc/hostname
    ln etc/group etc/group-
    mkfifo run.fifo
    mknod null c 1 3
    chmod 1777 etc/cron.d
    ${HAS_ATTR ? 'setfattr -n user.note -v "hello world" etc/nginx/nginx.conf' : ':'}
  `);
  const st = await glayerOk(ws, 'status');
  const lines = st.stdout.trim().split('\n');
  for (const l of ['M etc/cron.d', 'M etc/hosts', 'M etc/hostname', 'M etc/passwd', 'M etc/init.d/app', 'A etc/group-', 'A run.fifo', 'A null']) {
    assert.ok(lines.includes(l), `${l} in:\n${st.stdout}`);
  }
  if (HAS_ATTR) assert.ok(lines.includes('M etc/nginx/nginx.conf'), st.stdout);
  const json = JSON.parse((await glayerOk(ws, 'status', '--json')).stdout) as Array<{ path: string; change: string; fields?: string[] }>;
  const byPath = new Map(json.map((j) => [j.path, j]));
  assert.equal(byPath.get('etc/passwd')!.fields, ['uid', 'gid']);
  assert.equal(byPath.get('etc/hostname')!.fields, ['mtime']);
  assert.equal(byPath.get('etc/hosts')!.fields, ['mode']);
  assert.equal(byPath.get('etc/init.d/app')!.fields, ['mode']);
  // The writable layer records it all in its manifest, metadata-only records with mode=.
  const upper = fs.readFileSync(join(ws, 'upper', META), 'utf8');
  assert.match(upper, /^# glayer metadata 1\n/);
  assert.match(upper, /\netc\/passwd mode=644 uid=1000 gid=42\n/);
  assert.match(upper, /\netc\/hostname mode=644 mtime=1700000000\.25\n/);
  assert.match(upper, /\netc\/group- link=etc\/group\n/);
  assert.match(upper, /\nnull type=char dev=1,3\n/);
  assert.match(upper, /\nrun\.fifo type=fifo\n/);
  assert.match(upper, /\netc\/init\.d\/app mode=4755\n/);
  const before = snapshot(view, { mtimes: ['etc/hostname'] });
  const id = (await glayerOk(ws, 'commit', '-m', 'metadata')).stdout.trim();
  assert.is((await glayerOk(ws, 'status')).stdout, '', 'clean after the commit');
  assert.equal(fs.readdirSync(join(ws, 'upper')), [], 'the writable layer is empty');
  // The layer's manifest, read by native git.
  const layerMeta = git(gitdir, ['show', `${id}:${META}`]);
  assert.match(layerMeta, /\netc\/cron\.d mode=1777\n/);
  fsck(gitdir);
  // A fresh view elsewhere is the same, lstat for lstat.
  const other = join(tmpdir(), 'v2');
  await glayerOk(ws, 'mount-view', other);
  assert.equal(snapshot(other, { mtimes: ['etc/hostname'] }), before);
  assert.is((await glayerOk(ws, 'status')).stdout, '');
  // glayer diff/show: the manifest's lines.
  const shown = (await glayerOk(ws, 'show', id)).stdout;
  assert.match(shown, /\n\+etc\/init\.d\/app mode=4755\n/);
  sh(other, 'chmod 755 etc/init.d/app');
  const d = (await glayerOk(ws, 'diff')).stdout;
  assert.match(d, /\n-etc\/init\.d\/app mode=4755\n/);
  assert.match(d, /diff --git a\/\.wh\.\.wh\.\.meta b\/\.wh\.\.wh\.\.meta/);
  assert.ok((await glayerOk(ws, 'status')).stdout.includes('M etc/init.d/app'));
  // Put back to the default: committed as a metadata-only record, and the union has no record for it.
  await glayerOk(ws, 'commit', '-m', 'back to 755');
  assert.not.match(git(gitdir, ['show', `HEAD:${META}`]), /etc\/group-/);
  assert.match(git(gitdir, ['show', `HEAD:${META}`]), /^# glayer metadata 1\netc\/init\.d\/app mode=755\n?$/);
  fsck(gitdir);
});

test('an edited file keeps its owner, mode and xattrs and drops its mtime; a deleted one drops its record', async () => {
  if (!ROOT) { console.log('  (skipped: not root)'); return; }
  const { ws, view, gitdir } = await workspace();
  sh(view, `chown 7:8 etc/passwd; chmod 640 etc/passwd; touch -m -d @1600000000 etc/passwd; chown 9 etc/hosts`);
  await glayerOk(ws, 'commit', '-m', 'owners');
  sh(view, `echo more >> etc/passwd; rm etc/hosts`);
  const st = (await glayerOk(ws, 'status')).stdout;
  assert.ok(st.includes('C etc/passwd') && st.includes('D etc/hosts'), st);
  await glayerOk(ws, 'commit', '-m', 'edit');
  const m = git(gitdir, ['show', `HEAD:${META}`]);
  assert.is(m, '# glayer metadata 1\netc/passwd mode=640 uid=7 gid=8');
  const s = fs.lstatSync(join(view, 'etc/passwd'));
  assert.is(s.uid, 7);
  assert.is(s.mode & 0o7777, 0o640);
  fsck(gitdir);
});

/** A workspace whose stack has one layer written with native git: `entries` plus the manifest `meta`. */
async function nativeLayer(entries: Parameters<typeof mktree>[1], meta: string | null, where: 'root' | 'sub' = 'root') {
  const base = tmpdir();
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  const gitdir = join(ws, '.glayer');
  const all = [...entries];
  if (meta !== null) {
    if (where === 'root') all.push({ mode: '100644', name: META, content: meta });
    else all.push({ mode: '040000', name: 'sub', entries: [{ mode: '100644', name: META, content: meta }] });
  }
  all.sort((a, b) => (a.name < b.name ? -1 : 1));
  const id = commitTree(gitdir, mktree(gitdir, all), null, 'native layer');
  git(gitdir, ['update-ref', 'refs/heads/main', id]);
  return { ws, gitdir, id };
}

test('a layer written with plain git and a hand-written manifest: the view has what it says', async () => {
  if (!ROOT) { console.log('  (skipped: not root)'); return; }
  const { ws } = await nativeLayer([
    { mode: '040000', name: 'dev', entries: [{ mode: '100644', name: 'null', content: '' }, { mode: '100644', name: 'fifo', content: '' }] },
    { mode: '040000', name: 'tmp', entries: [] },
    { mode: '040000', name: 'usr', entries: [{ mode: '100755', name: 'passwd', content: 'x\n' }, { mode: '100755', name: 'passwd2', content: 'x\n' }] },
    { mode: '100644', name: 'plain', content: 'p\n' },
  ], '# glayer metadata 1\ndev/fifo type=fifo mode=600\ndev/null type=char dev=1,3 mode=666\ntmp mode=1777\nusr uid=5 gid=6 mode=750\nusr/passwd mode=4755 mtime=1500000000.5\nusr/passwd2 link=usr/passwd\n');
  await glayerOk(ws, 'mount-view');
  const snap = snapshot(join(ws, 'view'));
  assert.is(snap['dev/null'], `char:${(1 << 8) | 3} 666 0:0`);
  assert.is(snap['dev/fifo'], 'fifo 600 0:0');
  assert.is(snap.tmp, 'dir 1777 0:0');
  assert.is(snap.usr, 'dir 750 5:6');
  assert.is(snap['usr/passwd'], 'file 4755 0:0');
  assert.is(snap['usr/passwd2'], 'file =usr/passwd 4755 0:0');
  assert.is(snap.plain, 'file 644 0:0', 'no record: the defaults');
  assert.is(fs.lstatSync(join(ws, 'view/usr/passwd2')).mtimeMs, 1500000000500, 'a link group shares its mtime');
  assert.is((await glayerOk(ws, 'status')).stdout, '', 'the applied metadata is not an edit');
});

const BAD: Array<{ name: string; meta: string; where?: 'root' | 'sub'; message: RegExp }> = [
  { name: 'an unparsable line', meta: '# glayer metadata 1\nplain mode=9\n', message: /^invalid layer [0-9a-f]{12}: \.wh\.\.wh\.\.meta: line 2: bad mode '9'/ },
  { name: 'no header', meta: 'plain mode=600\n', message: /line 1: the first line must be/ },
  { name: 'a record for a missing path', meta: '# glayer metadata 1\nnope mode=600\n', message: /nope: \.wh\.\.wh\.\.meta: a record for a path that is not in the union/ },
  { name: 'a manifest not at the root', meta: '# glayer metadata 1\n', where: 'sub', message: /sub\/\.wh\.\.wh\.\.meta: the metadata manifest must be at the layer's root/ },
];

for (const c of BAD) {
  test(`a layer with ${c.name} is refused with one line`, async () => {
    const { ws } = await nativeLayer([{ mode: '100644', name: 'plain', content: 'p\n' }], c.meta, c.where);
    const r = await glayer(ws, 'mount-view');
    assert.is(r.code, 2, r.stderr);
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr.replace(/^glayer: (error: )?/, ''), c.message);
    assert.not.ok(fs.existsSync(join(ws, 'view')), 'no view was made');
  });
}

test('a refresh after a new metadata-only layer changes the view in place', async () => {
  if (!ROOT) { console.log('  (skipped: not root)'); return; }
  const { ws, view, gitdir } = await workspace();
  const ino = fs.lstatSync(join(view, 'etc/passwd')).ino;
  const head = git(gitdir, ['rev-parse', 'HEAD']);
  const tree = mktree(gitdir, [{ mode: '100644', name: META, content: '# glayer metadata 1\netc/passwd mode=600 uid=3\n' }]);
  git(gitdir, ['update-ref', 'refs/heads/main', commitTree(gitdir, tree, head, 'chmod by hand')]);
  await glayerOk(ws, 'mount-view');
  const st = fs.lstatSync(join(view, 'etc/passwd'));
  assert.is(st.mode & 0o7777, 0o600);
  assert.is(st.uid, 3);
  assert.is(st.ino, ino, 'changed in place, not rewritten');
  assert.is((await glayerOk(ws, 'status')).stdout, '');
});

test.run();
