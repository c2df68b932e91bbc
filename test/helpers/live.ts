/** Which live-view backends this machine can run (tests of both run in CI, as root with fuse-overlayfs). */
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { chooseBackend } from '../../src/mount/live.js';

export function liveBackends(): Array<'kernel' | 'fuse'> {
  const out: Array<'kernel' | 'fuse'> = [];
  for (const b of ['kernel', 'fuse'] as const) {
    try { chooseBackend(b); out.push(b); } catch (e) { console.log(`SKIPPED live views with the ${b} backend: ${(e as Error).message}`); }
  }
  return out;
}

/** Mount points at `dir` or below it. */
export function mountsUnder(dir: string): string[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((t) => t && (t === dir || t.startsWith(dir + '/')));
}

/** Unmount whatever a test left below `dir` (after a failure), so later runs are not disturbed. */
export function unmountUnder(dir: string): void {
  for (const t of mountsUnder(dir).reverse()) {
    try { execFileSync('umount', ['-l', t], { stdio: 'ignore' }); } catch { try { execFileSync('fusermount3', ['-u', '-z', t], { stdio: 'ignore' }); } catch { /* gone */ } }
  }
}
