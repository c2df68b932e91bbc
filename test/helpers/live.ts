/** Which live-view backends this machine can run (tests of both run in CI, as root with fuse-overlayfs). */
import { chooseBackend } from '../../src/mount/live.js';

export function liveBackends(): Array<'kernel' | 'fuse'> {
  const out: Array<'kernel' | 'fuse'> = [];
  for (const b of ['kernel', 'fuse'] as const) {
    try { chooseBackend(b); out.push(b); } catch (e) { console.log(`SKIPPED live views with the ${b} backend: ${(e as Error).message}`); }
  }
  return out;
}
