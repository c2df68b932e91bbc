// Metadata in live views (docs/metadata.md, README "Live views"): the layer cache gives each cached layer the
// owners, modes, mtimes, xattrs and hardlinks the union has there (metadata-only records and links to lower
// layers as copy-ups), so a live view shows what a copied view shows; and chmod / chown / touch -m / ln /
// setfattr in a live view are read from the upper directory by status and commit as the copied view records them.
// Root only (owners, setuid bits, trusted xattrs need it); CI runs as root with both backends.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { glayer, glayerOk } from '../helpers/cli.js';
import { fsck, git } from '../helpers/git.js';
import { liveBackends, unmountUnder } from '../helpers/live.js';
import { HAS_ATTR, metaSnapshot } from '../helpers/meta-snapshot.js';
import { tmpdir } from '../helpers/tmp.js';

const ROOT = process.getuid?.() === 0;
const BACKENDS = ROOT ? liveBackends() : [];
const META = '.wh..wh..meta';
const sh = (cwd: string, script: string): void => { execFileSync('sh', ['-ec', script], { cwd }); };

/** The edits of the copied-view metadata test: every kind of record, held and metadata-only. */
const EDITS = `
  chmod 4755 etc/init.d/app
  chmod 600 etc/hosts
  chown 1000:42 etc/passwd
  touch -m -d @1700000000.25 etc/hostname
  ln etc/group etc/group-
  chmod 1777 etc/cron.d
  ${HAS_ATTR ? 'setfattr -n user.note -v "hello world" etc/nginx/nginx.conf' : ':'}
  ${HAS_ATTR ? 'setfattr -n trusted.glayer -v x etc/hosts' : ':'}
`;
const MTIMES = { mtimes: ['etc/hostname'] };

/** A workspace on the etc template (with a copied view when `copied`), unmounted and cleaned up after `fn`. */
async function withEtc(copied: boolean, fn: (ws: string, base: string) => Promise<void>): Promise<void> {
  const base = tmpdir('glayer-live-meta-');
  const ws = join(base, 'ws');
  try {
    await glayerOk(base, 'init', 'ws', '--template', 'etc');
    if (copied) await glayerOk(ws, 'mount-view');
    await fn(ws, base);
  } finally {
    await glayer(ws, 'umount');
    unmountUnder(base);
  }
}

if (BACKENDS.length === 0) test('live views with metadata', () => { console.log('SKIPPED live views with metadata: needs root and a backend'); });

for (const backend of BACKENDS) {
  test(`${backend}: a live view shows the layers' metadata as a copied view does (held, metadata-only, linked to a lower layer)`, async () => {
    await withEtc(true, async (ws) => {
      const view = join(ws, 'view');
      sh(view, EDITS);
      await glayerOk(ws, 'commit', '-m', 'metadata');
      // A second layer: new content with a record, over the metadata-only layer.
      sh(view, 'echo more >> etc/hosts && chmod 640 etc/hosts && mkdir -p srv/app && chown 1000:1000 srv/app && chmod 700 srv/app');
      await glayerOk(ws, 'commit', '-m', 'content and records');
      const copied = metaSnapshot(view, MTIMES);
      assert.ok(copied['etc/init.d/app'].startsWith('file 4755 0:0'), copied['etc/init.d/app']);
      await glayerOk(ws, 'mount-view', '--live', '--backend', backend);
      assert.equal(metaSnapshot(view, MTIMES), copied);
      assert.is((await glayerOk(ws, 'status')).stdout, '', 'nothing changed');
      // The same from a cold cache, after the copied view is gone.
      await glayerOk(ws, 'umount');
      fs.rmSync(join(ws, '.glayer', 'glayer', 'cache'), { recursive: true, force: true });
      await glayerOk(ws, 'mount-view', '--live', '--backend', backend);
      assert.equal(metaSnapshot(view, MTIMES), copied);
    });
  });
  test(`${backend}: chmod, chown, touch -m, ln and setfattr in a live view: the status and the layer's manifest of a copied view`, async () => {
    await withEtc(false, async (ws, base) => {
      const copyWs = join(base, 'copy');
      // The oracle: the same edits in a copied view.
      await glayerOk(base, 'init', 'copy', '--template', 'etc');
      await glayerOk(copyWs, 'mount-view');
      sh(join(copyWs, 'view'), EDITS);
      const copyStatus = (await glayerOk(copyWs, 'status', '--json')).stdout;
      await glayerOk(copyWs, 'commit', '-m', 'metadata');
      const copyMeta = git(join(copyWs, '.glayer'), ['show', `HEAD:${META}`]);

      await glayerOk(ws, 'mount-view', '--live', '--backend', backend);
      const view = join(ws, 'view');
      sh(view, EDITS);
      assert.is((await glayerOk(ws, 'status', '--json')).stdout, copyStatus);
      const before = metaSnapshot(view, MTIMES);
      const id = (await glayerOk(ws, 'commit', '-m', 'metadata')).stdout.trim();
      assert.is(git(join(ws, '.glayer'), ['show', `${id}:${META}`]), copyMeta);
      fsck(join(ws, '.glayer'));
      assert.is((await glayerOk(ws, 'status')).stdout, '', 'clean after the commit');
      // Remounted on the new layer: the view is what it was.
      assert.equal(metaSnapshot(view, MTIMES), before);
      // Back to the default in the live view: a metadata-only record, as in a copied view.
      sh(view, 'chmod 755 etc/init.d/app');
      sh(join(copyWs, 'view'), 'chmod 755 etc/init.d/app');
      assert.is((await glayerOk(ws, 'status')).stdout, 'M etc/init.d/app\n');
      await glayerOk(ws, 'commit', '-m', 'back');
      await glayerOk(copyWs, 'commit', '-m', 'back');
      assert.is(git(join(ws, '.glayer'), ['show', `HEAD:${META}`]), git(join(copyWs, '.glayer'), ['show', `HEAD:${META}`]));
      fsck(join(ws, '.glayer'));
    });
  });
  test(`${backend}: uncommitted metadata edits survive copied view -> live -> copied`, async () => {
    await withEtc(true, async (ws) => {
      const view = join(ws, 'view');
      sh(view, EDITS + '\n  echo new > etc/new.conf && chmod 600 etc/new.conf && chown 7:7 etc/new.conf\n  mkdir -p srv/x && chmod 700 srv/x');
      const status = (await glayerOk(ws, 'status', '--json')).stdout;
      const copied = metaSnapshot(view, MTIMES);
      await glayerOk(ws, 'mount-view', '--live', '--backend', backend);
      assert.equal(metaSnapshot(view, MTIMES), copied, 'live');
      assert.is((await glayerOk(ws, 'status', '--json')).stdout, status, 'live status');
      await glayerOk(ws, 'umount');
      await glayerOk(ws, 'mount-view');
      assert.equal(metaSnapshot(view, MTIMES), copied, 'copied again');
      assert.is((await glayerOk(ws, 'status', '--json')).stdout, status, 'copied status');
    });
  });
}

test.run();
