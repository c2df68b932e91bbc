// Hostile and broken images: each is refused with one line naming the layer (digest) and the entry, exit 2,
// and the store is left exactly as it was (same refs, same object files), nothing written outside.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { glayer, glayerOk } from '../helpers/cli.js';
import { fsck, git } from '../helpers/git.js';
import { makeTar, ociLayout, sha256, type LayerSpec } from '../helpers/image.js';
import { tmpdir } from '../helpers/tmp.js';

function storeState(gitdir: string): string {
  const files: string[] = [];
  const walk = (rel: string): void => {
    for (const n of fs.readdirSync(join(gitdir, rel)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      if (r === 'glayer') continue;
      if (fs.statSync(join(gitdir, r)).isDirectory()) walk(r); else files.push(`${r} ${fs.statSync(join(gitdir, r)).size}`);
    }
  };
  walk('');
  return files.join('\n');
}

async function refused(layers: LayerSpec[], expect: RegExp[], opts: { tag?: string } = {}): Promise<void> {
  const base = tmpdir('glayer-bad-');
  await glayerOk(base, 'init', 'ws', '--template', 'aufs-demo');
  const ws = join(base, 'ws');
  const gitdir = join(ws, '.glayer');
  const before = storeState(gitdir);
  const dir = ociLayout(layers, { tag: opts.tag });
  const r = await glayer(ws, 'import', `oci:${dir}:${opts.tag ?? 'latest'}`, '--stack', 'x');
  assert.is(r.code, 2, `exit code (stderr: ${r.stderr})`);
  assert.is(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  assert.is(lines.length, 1, `one line: ${r.stderr}`);
  for (const re of expect) assert.match(lines[0], re);
  assert.not.match(lines[0], /internal error|\n\s+at /);
  assert.is(storeState(gitdir), before, 'the store is unchanged');
  fsck(gitdir);
  assert.is(git(gitdir, ['for-each-ref', '--format=%(refname)']), 'refs/heads/main');
}

const tar = makeTar;
const layerDigest = async (items: Parameters<typeof makeTar>[0]): Promise<string> => sha256(zlib.gzipSync(await makeTar(items)));

const cases: Array<[string, () => Promise<void>]> = [
  ["an entry with '..'", async () => {
    const items = [{ name: 'a/../../etc/passwd', content: 'x' }];
    await refused([{ tar: await tar(items) }], [new RegExp((await layerDigest(items)).slice(0, 20)), /a\/\.\.\/\.\.\/etc\/passwd/, /'\.\.'/]);
  }],
  ['an absolute path', async () => {
    const items = [{ name: '/etc/passwd', content: 'x' }];
    await refused([{ tar: await tar(items) }], [/layer sha256:/, /\/etc\/passwd/, /absolute/]);
  }],
  ['a duplicate entry', async () => {
    await refused([{ tar: await tar([{ name: 'a', content: '1' }, { name: 'a', content: '2' }]) }], [/entry "a"/, /duplicate/]);
  }],
  ['a file under a file', async () => {
    await refused([{ tar: await tar([{ name: 'a', content: '1' }, { name: 'a/b', content: '2' }]) }], [/entry "a\/b"/, /non-directory/]);
  }],
  ['a directory and a file at one path', async () => {
    await refused([{ tar: await tar([{ name: 'd/', type: 'directory' }, { name: 'd', content: '2' }]) }], [/entry "d"/, /conflicting/]);
  }],
  ['a write through a symlink of the same layer', async () => {
    await refused([{ tar: await tar([{ name: 'l', type: 'symlink', linkname: '/etc' }, { name: 'l/passwd', content: 'x' }]) }], [/entry "l\/passwd"/, /non-directory/]);
  }],
  ['a write through a symlink of a lower layer (tar-slip)', async () => {
    const lowerItems = [{ name: 'l', type: 'symlink' as const, linkname: '../../../../tmp' }];
    const upperItems = [{ name: 'l/evil', content: 'x' }];
    await refused([{ tar: await tar(lowerItems) }, { tar: await tar(upperItems) }], [new RegExp((await layerDigest(upperItems)).slice(0, 20)), /entry "l\/evil"/, /symlink "l"/]);
  }],
  ['a hardlink out of the layer', async () => {
    await refused([{ tar: await tar([{ name: 'h', type: 'link', linkname: '../../etc/shadow' }]) }], [/entry "h"/, /hardlink target/, /'\.\.'/]);
  }],
  ['a hardlink to an absolute path', async () => {
    await refused([{ tar: await tar([{ name: 'h', type: 'link', linkname: '/etc/shadow' }]) }], [/entry "h"/, /absolute/]);
  }],
  ['a hardlink to a path not seen', async () => {
    await refused([{ tar: await tar([{ name: 'h', type: 'link', linkname: 'later' }, { name: 'later', content: 'x' }]) }], [/entry "h"/, /hardlink to "later"/]);
  }],
  ['a hardlink to a directory', async () => {
    await refused([{ tar: await tar([{ name: 'd/', type: 'directory' }, { name: 'h', type: 'link', linkname: 'd' }]) }], [/entry "h"/, /directory/]);
  }],
  ['a bare .wh. marker', async () => {
    await refused([{ tar: await tar([{ name: 'a/.wh.', content: '' }]) }], [/entry "a\/\.wh\."/, /bare/]);
  }],
  ['a whiteout of a reserved name (.wh..wh.x)', async () => {
    await refused([{ tar: await tar([{ name: '.wh..wh.plnk', content: '' }]) }], [/entry "\.wh\.\.wh\.plnk"/, /reserved/]);
  }],
  ['a whiteout of the layer root (.wh..)', async () => {
    await refused([{ tar: await tar([{ name: '.wh..', content: '' }]) }], [/entry "\.wh\.\."/]);
  }],
  ['a .git entry', async () => {
    await refused([{ tar: await tar([{ name: '.git/config', content: 'x' }]) }], [/\.git/, /reserved/]);
  }],
  ['a malformed tar header', async () => {
    const t = await tar([{ name: 'a', content: 'x' }, { name: 'b', content: 'y' }]);
    t[1024 + 148] ^= 0x07; // checksum of the second header
    await refused([{ tar: t }], [/layer sha256:/, /malformed tar/, /after entry "a"/]);
  }],
  ['a truncated gzip', async () => {
    const t = await tar([{ name: 'a', content: 'x'.repeat(100000) }]);
    const gz = zlib.gzipSync(t);
    await refused([{ tar: t, blob: gz.subarray(0, gz.length - 40), badDiffId: false }], [/layer sha256:/, /truncated or corrupt gzip/]);
  }],
  ['an unknown layer media type', async () => {
    await refused([{ tar: await tar([{ name: 'a' }]), mediaType: 'application/x-foo' }], [/layer sha256:/, /unknown media type 'application\/x-foo'/]);
  }],
  ['a manifest naming a missing blob', async () => {
    await refused([{ tar: await tar([{ name: 'a' }]) }, { tar: await tar([{ name: 'b' }]), missing: true }], [/layer sha256:/, /missing/]);
  }],
  ['a digest mismatch', async () => {
    await refused([{ tar: await tar([{ name: 'a' }]), badDigest: true }], [/layer sha256:/, /digest mismatch/]);
  }],
  ['a diff_id mismatch', async () => {
    await refused([{ tar: await tar([{ name: 'a' }]) }, { tar: await tar([{ name: 'b' }]), badDiffId: true }], [/layer sha256:/, /diff_id mismatch/]);
  }],
  ['a large file of a refused layer leaves no object behind', async () => {
    const big = Buffer.alloc(17 * 1024 * 1024, 7);
    await refused([{ tar: await tar([{ name: 'big', content: big }, { name: '../x', content: 'y' }]) }], [/entry "\.\.\/x"/]);
  }],
];

for (const [name, fn] of cases) test(`refused: ${name}`, fn);

test('devices and setuid bits are recorded, never created; a fifo, a device and owners land in the manifest', async () => {
  const base = tmpdir('glayer-dev-');
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  const dir = ociLayout([{ tar: await tar([
    { name: 'dev/', type: 'directory' },
    { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660, gid: 6 },
    { name: 'p', type: 'fifo', mode: 0o600 },
    { name: 'bin/su', content: 'su', mode: 0o4755 },
    { name: 'home/app/', type: 'directory', uid: 1000, gid: 1000, mode: 0o750 },
  ]) }]);
  await glayerOk(ws, 'import', `oci:${dir}:latest`, '--stack', 'dev');
  const gitdir = join(ws, '.glayer');
  assert.is(git(gitdir, ['show', 'dev:.wh..wh..meta']), [
    '# glayer metadata 1',
    'bin/su mode=4755 mtime=1700000000',
    'dev mtime=1700000000',
    'dev/null type=char dev=1,3 mode=666 mtime=1700000000',
    'dev/sda type=block dev=8,0 mode=660 gid=6 mtime=1700000000',
    'home/app mode=750 uid=1000 gid=1000 mtime=1700000000',
    'p type=fifo mode=600 mtime=1700000000',
  ].join('\n'));
  assert.is(git(gitdir, ['ls-tree', '-r', 'dev', '--', 'dev', 'p', 'bin']), [
    `100755 blob ${git(gitdir, ['hash-object', '--stdin'], 'su')}\tbin/su`,
    '100644 blob e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\tdev/null',
    '100644 blob e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\tdev/sda',
    '100644 blob e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\tp',
  ].join('\n'));
  // Nothing but the store was written: no device node anywhere in the workspace.
  const found: string[] = [];
  const walk = (d: string): void => { for (const e of fs.readdirSync(d, { withFileTypes: true })) { if (e.isDirectory()) walk(join(d, e.name)); else if (!e.isFile()) found.push(e.name); } };
  walk(ws);
  assert.equal(found, []);
  fsck(gitdir);
});

test('UTF-8 names and long paths round-trip through pax headers', async () => {
  const base = tmpdir('glayer-names-');
  await glayerOk(base, 'init', 'ws');
  const ws = join(base, 'ws');
  const long = 'd'.repeat(90) + '/' + 'e'.repeat(90) + '/' + 'f'.repeat(120);
  const t = await tar([{ name: long, content: 'long' }, { name: 'caf\u00e9', content: 'utf8' }]);
  const dir = ociLayout([{ tar: t }]);
  await glayerOk(ws, 'import', `oci:${dir}:latest`, '--stack', 'n');
  const gitdir = join(ws, '.glayer');
  const files = git(gitdir, ['-c', 'core.quotePath=false', 'ls-tree', '-r', '--name-only', 'n']).split('\n');
  assert.ok(files.includes(long), 'long path kept');
  assert.ok(files.includes('caf\u00e9'), 'UTF-8 name kept');
  const out = tmpdir('glayer-names-out-');
  await glayerOk(ws, 'export', `oci:${out}:t`, 'n');
  await glayerOk(ws, 'import', `oci:${out}:t`, '--stack', 'again');
  // The same entries (the manifests differ: the export wrote the implied directories, with the layer's date).
  const entries = (s: string): string => git(gitdir, ['ls-tree', '-r', s]).split('\n').filter((l) => !l.endsWith('.wh..wh..meta')).join('\n');
  assert.is(entries('again'), entries('n'));
});

test.run();
