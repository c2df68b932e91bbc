// glayer import/export against the real tools: umoci builds and unpacks images, skopeo inspects and copies them,
// podman loads, creates, exports and saves them (own --root/--runroot, vfs). Needs root and the tools (CI
// installs them); elsewhere each test says SKIPPED.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { glayer, glayerOk } from '../helpers/cli.js';
import { fsck, git } from '../helpers/git.js';
import { liveBackends } from '../helpers/live.js';
import { describeTree, have, makeTar, ociLayout, podman, run, writeStackAsRoot } from '../helpers/image.js';
import { tmpdir } from '../helpers/tmp.js';

const missing = ['umoci', 'skopeo', 'podman', 'setfattr', 'getfattr'].filter((c) => !have(c));
const unavailable = process.getuid?.() !== 0 ? 'needs root' : missing.length ? `needs ${missing.join(', ')}` : null;

function t(name: string, fn: () => Promise<void>): void {
  test(name, async () => {
    if (unavailable) { console.log(`SKIPPED: ${name}: ${unavailable}`); return; }
    await fn();
  });
}

/**
 * An image umoci builds, three layers: (1) files, a setuid file, a directory and a file owned 1000:1000, a
 * symlink, a hardlink, an empty directory, a binary xattr; (2) a deleted file and a deleted directory re-made;
 * (3) an opaque directory (added with `umoci raw add-layer`). Config: Env, Cmd, WorkingDir, User, a label, a port.
 */
let built: { layout: string; tag: string } | null = null;
async function umociImage(): Promise<{ layout: string; tag: string }> {
  if (built) return built;
  const d = tmpdir('glayer-umoci-');
  const layout = join(d, 'img');
  run('umoci', ['init', '--layout', layout]);
  run('umoci', ['new', '--image', `${layout}:base`]);
  const b = join(d, 'b');
  run('umoci', ['unpack', '--image', `${layout}:base`, b]);
  const R = join(b, 'rootfs');
  for (const p of ['etc', 'home/app', 'empty', 'opq/sub', 'gone-dir']) fs.mkdirSync(join(R, p), { recursive: true });
  fs.writeFileSync(join(R, 'etc/hello'), 'hello\n');
  fs.writeFileSync(join(R, 'etc/gone'), 'gone\n');
  fs.writeFileSync(join(R, 'opq/old'), 'old\n');
  fs.writeFileSync(join(R, 'opq/sub/deep'), 'deep\n');
  fs.writeFileSync(join(R, 'gone-dir/x'), 'x\n');
  fs.writeFileSync(join(R, 'home/app/data'), 'data\n');
  fs.chownSync(join(R, 'home/app'), 1000, 1000);
  fs.chownSync(join(R, 'home/app/data'), 1000, 1000);
  fs.chmodSync(join(R, 'home/app'), 0o750);
  fs.writeFileSync(join(R, 'suid'), '#!/bin/sh\n');
  fs.chmodSync(join(R, 'suid'), 0o4755);
  fs.writeFileSync(join(R, 'sticky-dir-file'), 's');
  fs.mkdirSync(join(R, 'tmp'));
  fs.chmodSync(join(R, 'tmp'), 0o1777);
  fs.symlinkSync('../etc/hello', join(R, 'home/link'));
  fs.linkSync(join(R, 'etc/hello'), join(R, 'etc/hard'));
  run('setfattr', ['-n', 'user.glayer', '-v', '0x0102ff80', join(R, 'etc/hello')]);
  run('umoci', ['repack', '--image', `${layout}:l1`, b]);
  // repack builds on the image the bundle was unpacked from: unpack l1 again for the second layer
  fs.rmSync(b, { recursive: true });
  run('umoci', ['unpack', '--image', `${layout}:l1`, b]);
  fs.rmSync(join(R, 'etc/gone'));
  fs.rmSync(join(R, 'gone-dir'), { recursive: true });
  fs.writeFileSync(join(R, 'etc/new'), 'new\n');
  run('umoci', ['repack', '--image', `${layout}:l2`, b]);
  const l3 = join(d, 'l3.tar');
  fs.writeFileSync(l3, await makeTar([{ name: 'opq/', type: 'directory', mode: 0o700 }, { name: 'opq/.wh..wh..opq' }, { name: 'opq/fresh', content: 'fresh\n', uid: 7, gid: 8 }]));
  run('umoci', ['raw', 'add-layer', '--image', `${layout}:l2`, '--tag', 'v1', l3]);
  run('umoci', ['config', '--image', `${layout}:v1`, '--config.env', 'MODE=test', '--config.cmd', '/suid', '--config.cmd', 'arg', '--config.workingdir', '/home/app', '--config.user', '1000:1000', '--config.label', 'org.example=yes', '--config.exposedports', '8080/tcp', '--history.created_by', 'umoci config']);
  built = { layout, tag: 'v1' };
  return built;
}

async function workspace(): Promise<string> {
  const base = tmpdir('glayer-tools-');
  await glayerOk(base, 'init', 'ws');
  return join(base, 'ws');
}

function umociUnpack(ref: string): string {
  const b = join(tmpdir('glayer-unpack-'), 'b');
  run('umoci', ['unpack', '--image', ref, b]);
  return join(b, 'rootfs');
}

function sameTrees(a: string[], b: string[], labels: [string, string]): void {
  const sa = new Set(a);
  const sb = new Set(b);
  const diff = [...a.filter((x) => !sb.has(x)).map((x) => `${labels[0]} only: ${x}`), ...b.filter((x) => !sa.has(x)).map((x) => `${labels[1]} only: ${x}`)];
  assert.equal(diff, [], diff.join('\n'));
}

t('an image umoci builds, imported, equals umoci unpack of it (contents, modes, owners, links, xattrs, mtimes)', async () => {
  const img = await umociImage();
  const ws = await workspace();
  const r = await glayerOk(ws, 'import', `oci:${img.layout}:${img.tag}`, '--json');
  const res = JSON.parse(r.stdout) as { stack: string; layers: unknown[] };
  assert.is(res.stack, 'v1');
  assert.is(res.layers.length, 3);
  const gitdir = join(ws, '.glayer');
  fsck(gitdir);
  const mine = join(tmpdir('glayer-mine-'), 'root');
  await writeStackAsRoot(gitdir, 'v1', mine);
  const theirs = umociUnpack(`${img.layout}:${img.tag}`);
  sameTrees(describeTree(mine, { xattrs: true }), describeTree(theirs, { xattrs: true }), ['glayer', 'umoci']);
  // mtimes of everything but directories (umoci's whiteouts touch the directories they delete in)
  const files = (l: string[]): string[] => l.filter((x) => !/ dir /.test(x));
  sameTrees(files(describeTree(mine, { mtime: true })), files(describeTree(theirs, { mtime: true })), ['glayer', 'umoci']);
  // the messages and dates come from the history
  const log = git(gitdir, ['log', '--format=%s|%ct', 'v1']).split('\n');
  assert.is(log.length, 3);
  // umoci config's history entry is an empty layer: kept in the top layer's message
  assert.match(git(gitdir, ['log', '-1', '--format=%B', 'v1']), /empty layer: umoci config/);
  // the config is kept
  const cfg = JSON.parse((await glayerOk(ws, 'image-config', '--stack', 'v1', '--json')).stdout).config;
  assert.equal(cfg.config.Env.includes('MODE=test'), true);
  assert.equal(cfg.config.Cmd, ['/suid', 'arg']);
  assert.is(cfg.config.WorkingDir, '/home/app');
  assert.is(cfg.config.User, '1000:1000');
});

t('export: skopeo inspects and copies it, umoci unpack of it equals the imported tree, podman loads, creates and exports the same tree; twice gives the same digests', async () => {
  const img = await umociImage();
  const ws = await workspace();
  await glayerOk(ws, 'import', `oci:${img.layout}:${img.tag}`, '--stack', 'app');
  const gitdir = join(ws, '.glayer');
  const out = tmpdir('glayer-exp-');
  const e1 = JSON.parse((await glayerOk(ws, 'export', `oci:${out}/a:t1`, 'app', '--json')).stdout);
  const e2 = JSON.parse((await glayerOk(ws, 'export', `oci:${out}/b:t1`, 'app', '--json')).stdout);
  assert.is(e1.manifest, e2.manifest, 'reproducible');
  assert.equal(e1.layers, e2.layers);
  const inspect = JSON.parse(run('skopeo', ['inspect', `oci:${out}/a:t1`]));
  assert.is(inspect.Digest, e1.manifest);
  assert.is(inspect.Layers.length, 3);
  assert.ok(inspect.Env.includes('MODE=test'));
  assert.is(inspect.Labels['org.example'], 'yes');
  const cfg = JSON.parse(run('skopeo', ['inspect', '--config', `oci:${out}/a:t1`]));
  assert.equal(cfg.config.Cmd, ['/suid', 'arg']);
  assert.equal(Object.keys(cfg.config.ExposedPorts), ['8080/tcp']);
  assert.is(cfg.rootfs.diff_ids.length, 3);
  assert.is(cfg.history.length, 3);
  run('skopeo', ['copy', `oci:${out}/a:t1`, `docker-archive:${out}/copy.tar:localhost/copy:1`]);
  const theirs = umociUnpack(`${img.layout}:${img.tag}`);
  const ours = umociUnpack(`${out}/a:t1`);
  sameTrees(describeTree(ours, { xattrs: true, mtime: true }).filter((x) => !/ dir /.test(x)), describeTree(theirs, { xattrs: true, mtime: true }).filter((x) => !/ dir /.test(x)), ['export', 'original']);
  sameTrees(describeTree(ours, { xattrs: true }), describeTree(theirs, { xattrs: true }), ['export', 'original']);
  const mine = join(tmpdir('glayer-mine-'), 'root');
  await writeStackAsRoot(gitdir, 'app', mine);
  sameTrees(describeTree(ours, { xattrs: true }), describeTree(mine, { xattrs: true }), ['umoci unpack of the export', 'glayer']);
  // podman: load the docker-archive export, create a container, export its filesystem
  await glayerOk(ws, 'export', `docker-archive:${out}/d.tar:localhost/glayer-test:1`, 'app');
  const pod = podman();
  pod(['load', '-i', `${out}/d.tar`]);
  const cid = pod(['create', 'localhost/glayer-test:1']).trim();
  pod(['export', '-o', `${out}/podman.tar`, cid]);
  const px = join(out, 'px');
  fs.mkdirSync(px);
  run('tar', ['--xattrs', '--xattrs-include=*', '-C', px, '-xpf', `${out}/podman.tar`]);
  sameTrees(describeTree(px, { xattrs: true }), describeTree(mine, { xattrs: true }), ['podman export', 'glayer']);
});

t('an image podman saves (docker-archive) imports to the tree podman exports; import then export keeps every layer', async () => {
  const img = await umociImage();
  const pod = podman();
  const d = tmpdir('glayer-psave-');
  run('skopeo', ['copy', `oci:${img.layout}:${img.tag}`, `oci-archive:${d}/in.tar:x`]);
  pod(['load', '-i', `${d}/in.tar`]);
  const id = pod(['images', '-q']).trim().split('\n')[0];
  pod(['tag', id, 'localhost/saved:2']);
  pod(['save', '--format', 'docker-archive', '-o', `${d}/saved.tar`, 'localhost/saved:2']);
  const cid = pod(['create', 'localhost/saved:2']).trim();
  pod(['export', '-o', `${d}/fs.tar`, cid]);
  const px = join(d, 'px');
  fs.mkdirSync(px);
  run('tar', ['--xattrs', '--xattrs-include=*', '-C', px, '-xpf', `${d}/fs.tar`]);
  const ws = await workspace();
  const r = await glayerOk(ws, 'import', `docker-archive:${d}/saved.tar`, '--json');
  assert.is(JSON.parse(r.stdout).stack, 'saved-2');
  const gitdir = join(ws, '.glayer');
  const mine = join(tmpdir('glayer-mine-'), 'root');
  await writeStackAsRoot(gitdir, 'saved-2', mine);
  sameTrees(describeTree(mine, { xattrs: true }), describeTree(px, { xattrs: true }), ['glayer', 'podman export']);
  // export with no change, import again: every layer has the same entries
  await glayerOk(ws, 'export', `oci-archive:${d}/again.tar:t`, 'saved-2');
  run('skopeo', ['inspect', `oci-archive:${d}/again.tar:t`]);
  await glayerOk(ws, 'import', `oci-archive:${d}/again.tar:t`, '--stack', 'again');
  const entries = (rev: string): string => git(gitdir, ['ls-tree', '-r', rev]).split('\n').filter((l) => !l.endsWith('.wh..wh..meta')).join('\n');
  for (let k = 0; k < 3; k++) assert.is(entries(`again~${k}`), entries(`saved-2~${k}`), `layer ~${k}`);
  fsck(gitdir);
});

t('zstd layers, an index with two platforms, tar: and init --from', async () => {
  const img = await umociImage();
  const d = tmpdir('glayer-zstd-');
  run('skopeo', ['copy', '--dest-compress-format', 'zstd', '--dest-compress', `oci:${img.layout}:${img.tag}`, `oci:${d}/z:zz`]);
  const m = JSON.parse(run('skopeo', ['inspect', '--raw', `oci:${d}/z:zz`]));
  assert.ok(m.layers.some((l: { mediaType: string }) => l.mediaType.endsWith('+zstd')), 'skopeo wrote zstd layers');
  const ws = await workspace();
  await glayerOk(ws, 'import', `oci:${d}/z:zz`);
  await glayerOk(ws, 'import', `oci:${img.layout}:${img.tag}`, '--stack', 'gz');
  const gitdir = join(ws, '.glayer');
  assert.is(git(gitdir, ['rev-parse', 'zz^{tree}']), git(gitdir, ['rev-parse', 'gz^{tree}']));
  // an index listing an arm64 and an amd64 image: the amd64 one by default, arm64 when asked
  const arm = ociLayout([{ tar: await makeTar([{ name: 'arch', content: 'arm64' }]) }], { tag: 'multi' });
  const amd = ociLayout([{ tar: await makeTar([{ name: 'arch', content: 'amd64' }]) }], { tag: 'multi', dir: arm });
  const idx = JSON.parse(fs.readFileSync(join(amd, 'index.json'), 'utf8'));
  void idx;
  // two manifests: rebuild index.json as a nested index with platforms
  const manifests = fs.readdirSync(join(amd, 'blobs/sha256')).map((h) => ({ h, j: (() => { try { return JSON.parse(fs.readFileSync(join(amd, 'blobs/sha256', h), 'utf8')); } catch { return null; } })() }))
    .filter((x) => x.j && x.j.layers);
  assert.is(manifests.length, 2);
  const archOf = (x: { j: { layers: Array<{ digest: string }> } }): string => {
    const blob = fs.readFileSync(join(amd, 'blobs/sha256', x.j.layers[0].digest.slice(7)));
    return require_gunzip(blob).includes('arm64') ? 'arm64' : 'amd64';
  };
  const entries = manifests.map((x) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${x.h}`, size: fs.statSync(join(amd, 'blobs/sha256', x.h)).size, platform: { os: 'linux', architecture: archOf(x) } }));
  const nested = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: entries }));
  const { createHash } = await import('node:crypto');
  const nd = createHash('sha256').update(nested).digest('hex');
  fs.writeFileSync(join(amd, 'blobs/sha256', nd), nested);
  fs.writeFileSync(join(amd, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: `sha256:${nd}`, size: nested.length, annotations: { 'org.opencontainers.image.ref.name': 'multi' } }] }));
  await glayerOk(ws, 'import', `oci:${amd}:multi`, '--stack', 'm-amd');
  await glayerOk(ws, 'import', `oci:${amd}:multi`, '--stack', 'm-arm', '--platform', 'linux/arm64');
  assert.is(git(gitdir, ['show', 'm-amd:arch']), 'amd64');
  assert.is(git(gitdir, ['show', 'm-arm:arch']), 'arm64');
  const bad = await glayer(ws, 'import', `oci:${amd}:multi`, '--stack', 'm-s390', '--platform', 'linux/s390x');
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /no image for platform linux\/s390x \(available: linux\/(amd64|arm64), linux\/(amd64|arm64)\)/);
  // tar: a root filesystem tarball (GNU tar, gzip) as one layer
  const rootfs = join(d, 'rootfs');
  fs.mkdirSync(join(rootfs, 'etc'), { recursive: true });
  fs.writeFileSync(join(rootfs, 'etc/os-release'), 'ID=test\n');
  fs.chmodSync(join(rootfs, 'etc/os-release'), 0o600);
  run('tar', ['-C', rootfs, '-czf', `${d}/rootfs.tar.gz`, '.']);
  await glayerOk(ws, 'import', `tar:${d}/rootfs.tar.gz`);
  assert.is(git(gitdir, ['show', 'rootfs:etc/os-release']), 'ID=test');
  assert.match(git(gitdir, ['show', 'rootfs:.wh..wh..meta']), /etc\/os-release mode=600 mtime=\d+/);
  // init --from an image: a workspace whose stack is the image
  const base = tmpdir('glayer-initfrom-');
  await glayerOk(base, 'init', 'w2', '--from', `oci:${img.layout}:${img.tag}`);
  assert.is(git(join(base, 'w2', '.glayer'), ['rev-parse', 'main^{tree}']), git(gitdir, ['rev-parse', 'gz^{tree}']));
  assert.ok(fs.existsSync(join(base, 'w2', 'upper')));
  fsck(join(base, 'w2', '.glayer'));
});

import { gunzipSync } from 'node:zlib';
function require_gunzip(b: Buffer): string { return gunzipSync(b).toString('latin1'); }

t('image-config: set, unset, and export writes it', async () => {
  const img = await umociImage();
  const ws = await workspace();
  await glayerOk(ws, 'import', `oci:${img.layout}:${img.tag}`, '--stack', 'c');
  await glayerOk(ws, 'image-config', '--stack', 'c', '--set', 'env.EXTRA=1', '--set', 'cmd=["/bin/echo","hi"]', '--unset', 'label.org.example', '--set', 'port.53/udp');
  const out = tmpdir('glayer-cfg-');
  await glayerOk(ws, 'export', `oci:${out}/l:c`, 'c');
  const cfg = JSON.parse(run('skopeo', ['inspect', '--config', `oci:${out}/l:c`]));
  assert.ok(cfg.config.Env.includes('EXTRA=1') && cfg.config.Env.includes('MODE=test'));
  assert.equal(cfg.config.Cmd, ['/bin/echo', 'hi']);
  assert.is(cfg.config.Labels, undefined);
  assert.equal(Object.keys(cfg.config.ExposedPorts).sort(), ['53/udp', '8080/tcp']);
  const gitdir = join(ws, '.glayer');
  assert.is(git(gitdir, ['log', '--format=%s', 'refs/glayer/config/c']).split('\n').length, 2);
  const bad = await glayer(ws, 'image-config', '--stack', 'c', '--set', 'nonsense=1');
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /unknown image config key 'nonsense'/);
});

t('export --squash: one layer holding the union, the same tree; a second tag is added to an existing layout', async () => {
  const img = await umociImage();
  const ws = await workspace();
  await glayerOk(ws, 'import', `oci:${img.layout}:${img.tag}`, '--stack', 'app');
  const out = join(tmpdir('glayer-squash-'), 'l');
  await glayerOk(ws, 'export', `oci:${out}:layers`, 'app');
  await glayerOk(ws, 'export', '--squash', `oci:${out}:flat`, 'app');
  const idx = JSON.parse(fs.readFileSync(join(out, 'index.json'), 'utf8'));
  assert.equal(idx.manifests.map((m: { annotations: Record<string, string> }) => m.annotations['org.opencontainers.image.ref.name']), ['layers', 'flat']);
  assert.is(JSON.parse(run('skopeo', ['inspect', `oci:${out}:flat`])).Layers.length, 1);
  const flat = umociUnpack(`${out}:flat`);
  const layered = umociUnpack(`${out}:layers`);
  sameTrees(describeTree(flat, { xattrs: true }), describeTree(layered, { xattrs: true }), ['squashed', 'layered']);
  // exporting the same tag again replaces its entry
  await glayerOk(ws, 'export', '--squash', `oci:${out}:flat`, 'app');
  assert.is(JSON.parse(fs.readFileSync(join(out, 'index.json'), 'utf8')).manifests.length, 2);
  const bad = await glayer(ws, 'export', `tar:${out}.tar`);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /export writes oci:, oci-archive: or docker-archive:/);
});

t('mounted as root, the view of an imported image equals umoci unpack of it (when the view applies manifests)', async () => {
  const meta = await import('../../src/core/meta.js') as Record<string, unknown>;
  if (typeof meta.applyManifest !== 'function') { console.log('SKIPPED: the view does not apply metadata manifests in this version'); return; }
  const img = await umociImage();
  const base = tmpdir('glayer-view-');
  await glayerOk(base, 'init', 'ws', '--from', `oci:${img.layout}:${img.tag}`);
  const ws = join(base, 'ws');
  await glayerOk(ws, 'mount-view');
  const theirs = umociUnpack(`${img.layout}:${img.tag}`);
  sameTrees(describeTree(join(ws, 'view'), { xattrs: true }), describeTree(theirs, { xattrs: true }), ['glayer view', 'umoci unpack']);
  const files = (l: string[]): string[] => l.filter((x) => !/ dir /.test(x));
  sameTrees(files(describeTree(join(ws, 'view'), { mtime: true })), files(describeTree(theirs, { mtime: true })), ['glayer view', 'umoci unpack']);
  // status is clean right after the import
  assert.is((await glayerOk(ws, 'status')).stdout, '');
  // And as a live view (the layer cache carries the metadata): the same tree, owners, modes, links, xattrs, mtimes.
  for (const backend of liveBackends()) {
    try {
      await glayerOk(ws, 'mount-view', '--live', '--backend', backend);
      const live: [string, string] = [`glayer live view (${backend})`, 'umoci unpack'];
      sameTrees(describeTree(join(ws, 'view'), { xattrs: true }), describeTree(theirs, { xattrs: true }), live);
      sameTrees(files(describeTree(join(ws, 'view'), { mtime: true })), files(describeTree(theirs, { mtime: true })), live);
      assert.is((await glayerOk(ws, 'status')).stdout, '', `${backend}: status is clean`);
    } finally {
      await glayer(ws, 'umount');
    }
  }
});

test.run();
