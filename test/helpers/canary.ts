/**
 * Canary files outside a workspace: their content hash, mode and mtime are recorded, and `check()` fails if any
 * of them (or the set of names in the canary directory) changed. Hostile layers point symlinks at them.
 */
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';

export interface Canary {
  /** The canary directory (holds `secret`, `sub/inner` and a canary symlink). */
  dir: string;
  /** A canary regular file. */
  file: string;
  /** Fails the test if anything in the canary directory changed. */
  check(): void;
}

function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string, rel: string): void => {
    const st = fs.lstatSync(d);
    let sum = '';
    if (st.isFile()) sum = createHash('sha256').update(fs.readFileSync(d)).digest('hex');
    else if (st.isSymbolicLink()) sum = 'link:' + fs.readlinkSync(d);
    out.set(rel, `${st.mode.toString(8)} ${st.mtimeMs} ${st.size} ${sum}`);
    if (st.isDirectory()) for (const n of fs.readdirSync(d).sort()) walk(join(d, n), rel + '/' + n);
  };
  walk(dir, '');
  return out;
}

export function makeCanary(base: string): Canary {
  const dir = join(base, 'canary');
  fs.mkdirSync(join(dir, 'sub'), { recursive: true });
  fs.writeFileSync(join(dir, 'secret'), 'do not touch\n', { mode: 0o600 });
  fs.writeFileSync(join(dir, 'sub', 'inner'), 'inner canary\n', { mode: 0o644 });
  fs.symlinkSync('secret', join(dir, 'link'));
  // mtimes in the past, so a rewrite with the same content is still seen.
  const past = new Date('2001-02-03T04:05:06Z');
  for (const p of ['secret', 'sub/inner', 'sub', '']) fs.utimesSync(join(dir, p), past, past);
  const before = snapshot(dir);
  return {
    dir,
    file: join(dir, 'secret'),
    check() {
      const after = snapshot(dir);
      assert.equal([...after.entries()], [...before.entries()], 'canary files outside the workspace changed');
    },
  };
}
