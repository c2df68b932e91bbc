// The layer cache verified by `glayer fsck` (src/mount/verify.ts): each entry a live view uses is compared with a
// new extraction of its layer. A named table of damage done to the entries by hand (bytes, modes, owners, a
// record's mtime, names added and removed, whiteouts and opaque markers in either form, symlinks, xattrs): fsck
// names the path, replaces the entry, and the next live view shows the stack again. An entry a mounted view uses
// is reported, not replaced; --dry-run changes nothing. Root only (owners, trusted xattrs); CI runs as root.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { glayer, glayerOk } from '../helpers/cli.js';
import { fsck as gitFsck, git } from '../helpers/git.js';
import { liveBackends, unmountUnder } from '../helpers/live.js';
import { HAS_ATTR, metaSnapshot } from '../helpers/meta-snapshot.js';
import { tmpdir } from '../helpers/tmp.js';

const ROOT = process.getuid?.() === 0;
const BACKENDS = ROOT ? liveBackends() : [];
const sh = (cwd: string, script: string): void => { execFileSync('sh', ['-ec', script], { cwd }); };
const MTIMES = { mtimes: ['etc/hostname'] };

interface FsckJson { ok: boolean; problems: Array<{ area: string; message: string }>; repaired: string[]; notes: string[]; checked: { cacheEntries: number } }

async function fsckJson(ws: string, ...args: string[]): Promise<{ code: number; r: FsckJson }> {
  const out = await glayer(ws, 'fsck', '--json', ...args);
  return { code: out.code, r: JSON.parse(out.stdout) as FsckJson };
}

/** Where the damage goes: the top layer's entry or the one below it (metadata-only copy-ups). */
type Where = 'top' | 'below';
interface Damage { name: string; where: Where; script: (form: 'k' | 'f') => string; says: RegExp; needsAttr?: boolean }

const DAMAGE: Damage[] = [
  { name: 'the bytes of a file, same size', where: 'top', script: () => 'printf X | dd of=etc/hosts bs=1 seek=0 conv=notrunc status=none', says: /etc\/hosts: the bytes differ/ },
  { name: 'a file cut short', where: 'top', script: () => 'truncate -s 3 etc/hosts', says: /etc\/hosts: 3 bytes, the layer gives \d+/ },
  { name: 'a setuid bit of a metadata-only copy-up', where: 'below', script: () => 'chmod 755 etc/init.d/app', says: /etc\/init\.d\/app: mode 755, the layer gives 4755/ },
  { name: 'an owner', where: 'top', script: () => 'chown 7:7 etc/hosts', says: /etc\/hosts: owner 7:7, the layer gives 0:0/ },
  { name: "a record's mtime", where: 'below', script: () => 'touch -m etc/hostname', says: /etc\/hostname: the mtime differs/ },
  { name: 'a name added', where: 'top', script: () => 'echo stray > etc/stray', says: /etc\/stray: not in the layer/ },
  { name: 'a name removed', where: 'top', script: () => 'rm etc/cron.d/job', says: /etc\/cron\.d\/job: missing/ },
  { name: 'a whiteout removed', where: 'top', script: (f) => (f === 'k' ? 'rm etc/passwd' : 'rm etc/.wh.passwd'), says: /etc\/(\.wh\.)?passwd: missing/ },
  { name: 'a whiteout turned into a file', where: 'top', script: (f) => (f === 'k' ? 'rm etc/passwd && echo x > etc/passwd' : 'echo x > etc/.wh.passwd'), says: /etc\/(\.wh\.)?passwd: (a file, the layer gives a character device|\d+ bytes, the layer gives 0)/ },
  { name: 'an opaque marker removed', where: 'top', script: (f) => (f === 'k' ? 'setfattr -x trusted.overlay.opaque etc/cron.d' : 'rm etc/cron.d/.wh..wh..opq'), says: /etc\/cron\.d(\/\.wh\.\.wh\.\.opq)?: (xattr trusted\.overlay\.opaque is missing|missing)/, needsAttr: true },
  { name: "a symlink's target", where: 'top', script: () => 'ln -sfn passwd etc/hosts-link', says: /etc\/hosts-link: the symlink's target differs/ },
  { name: 'an xattr of a copy-up removed', where: 'below', script: () => 'setfattr -x user.note etc/nginx/nginx.conf', says: /etc\/nginx\/nginx\.conf: xattr user\.note is missing/, needsAttr: true },
];

/** A workspace with two layers over the etc template: metadata-only records, then content, a whiteout, an opaque directory and a symlink. */
async function withStack(backend: string, fn: (ws: string, entry: (w: Where) => string, copied: unknown) => Promise<void>): Promise<void> {
  const base = tmpdir('glayer-verify-');
  const ws = join(base, 'ws');
  try {
    await glayerOk(base, 'init', 'ws', '--template', 'etc');
    await glayerOk(ws, 'mount-view');
    const view = join(ws, 'view');
    sh(view, `chmod 4755 etc/init.d/app && touch -m -d @1700000000.25 etc/hostname${HAS_ATTR ? ' && setfattr -n user.note -v hello etc/nginx/nginx.conf' : ''}`);
    await glayerOk(ws, 'commit', '-m', 'records');
    // An opaque directory is written as a marker into the writable layer (a view's rm -rf + mkdir gives whiteouts).
    sh(ws, 'mkdir -p upper/etc/cron.d && : > upper/etc/cron.d/.wh..wh..opq && echo job > upper/etc/cron.d/job');
    sh(view, 'echo more >> etc/hosts && rm etc/passwd && ln -s hosts etc/hosts-link');
    await glayerOk(ws, 'commit', '-m', 'content');
    const copied = metaSnapshot(view, MTIMES);
    await glayerOk(ws, 'mount-view', '--live', '--backend', backend);
    assert.equal(metaSnapshot(view, MTIMES), copied, 'the live view shows the stack');
    await glayerOk(ws, 'umount');
    const form = backend === 'kernel' ? 'k' : 'f';
    const gitdir = join(ws, '.glayer');
    const layer = (rev: string): string => git(gitdir, ['rev-parse', rev]).trim();
    const entry = (w: Where): string => join(gitdir, 'glayer', 'cache', form, `${layer(w === 'top' ? 'HEAD' : 'HEAD~1')}.m`);
    assert.ok(fs.existsSync(entry('top')) && fs.existsSync(entry('below')), 'both layers are cached with their metadata');
    await fn(ws, entry, copied);
    gitFsck(gitdir);
  } finally {
    await glayer(ws, 'umount');
    unmountUnder(base);
  }
}

if (BACKENDS.length === 0) test('layer cache verification', () => { console.log('SKIPPED layer cache verification: needs root and a live backend'); });

for (const backend of BACKENDS) {
  const form = backend === 'kernel' ? 'k' : 'f';
  test(`${backend}: fsck finds each kind of damage to a cache entry, names the path and replaces the entry`, async () => {
    await withStack(backend, async (ws, entry, copied) => {
      const clean = await fsckJson(ws);
      assert.is(clean.code, 0, JSON.stringify(clean.r));
      assert.equal(clean.r.repaired, [], 'nothing to repair in a cache just made');
      assert.ok(clean.r.checked.cacheEntries >= 2, `${clean.r.checked.cacheEntries} entries checked`);
      for (const d of DAMAGE) {
        if (d.needsAttr && !HAS_ATTR) continue;
        sh(entry(d.where), d.script(form));
        const { code, r } = await fsckJson(ws);
        assert.is(code, 0, `${d.name}: a repair is not a problem: ${JSON.stringify(r)}`);
        const line = r.repaired.find((l) => l.includes('layer cache entry'));
        assert.ok(line, `${d.name}: repaired ${JSON.stringify(r.repaired)}`);
        assert.ok(line!.includes(`${form}/`), line);
        assert.match(line!, d.says, `${d.name}`);
        const again = await fsckJson(ws);
        assert.equal(again.r.repaired, [], `${d.name}: the new entry is the layer's`);
      }
      await glayerOk(ws, 'mount-view', '--live', '--backend', backend);
      assert.equal(metaSnapshot(join(ws, 'view'), MTIMES), copied, 'the live view shows the stack again');
    });
  });

  test(`${backend}: an entry a mounted live view uses is reported, not replaced; --dry-run changes nothing`, async () => {
    await withStack(backend, async (ws, entry) => {
      const hosts = join(entry('top'), 'etc', 'hosts');
      const good = fs.readFileSync(hosts);
      fs.writeFileSync(hosts, 'damaged\n');
      const dry = await fsckJson(ws, '--dry-run');
      assert.is(dry.code, 0);
      assert.ok(dry.r.notes.some((n) => n.startsWith('would repair: replace the layer cache entry') && n.includes('etc/hosts')), JSON.stringify(dry.r.notes));
      assert.is(fs.readFileSync(hosts, 'utf8'), 'damaged\n', 'a dry run changes nothing');

      await glayerOk(ws, 'mount-view', '--live', '--backend', backend);
      const used = await fsckJson(ws);
      assert.is(used.code, 1, 'a damaged entry in use is a problem');
      const p = used.r.problems.find((x) => x.area === 'cache');
      assert.ok(p && p.message.includes('etc/hosts') && p.message.includes('a live view uses it'), JSON.stringify(used.r.problems));
      assert.is(fs.readFileSync(hosts, 'utf8'), 'damaged\n', 'not replaced under the mount');
      await glayerOk(ws, 'umount');

      const fixed = await fsckJson(ws);
      assert.is(fixed.code, 0, JSON.stringify(fixed.r));
      assert.ok(fixed.r.repaired.some((l) => l.includes('etc/hosts')), JSON.stringify(fixed.r.repaired));
      assert.ok(fs.readFileSync(hosts).equals(good), 'the entry holds the layer again');
      assert.equal(fs.readdirSync(join(ws, '.glayer', 'glayer', 'cache', 'tmp')), [], 'nothing left in tmp/');
    });
  });
}

test.run();
