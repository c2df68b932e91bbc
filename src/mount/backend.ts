/**
 * Live views: the union mounted instead of copied. One small interface, two backends: the kernel's overlayfs
 * (kernel.ts, when the process may mount) and fuse-overlayfs (fuse.ts). Both get the same arguments: lower
 * directories (top first, relative to `cwd` so that hundreds fit in one page of mount options), the upper and
 * work directories, and the target.
 */
import * as fs from '../sys/fs.js';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { GlayerError } from '../errors.js';

export type BackendName = 'kernel' | 'fuse';

export interface MountSpec {
  /** Directory the lower paths are relative to. */
  cwd: string;
  /** Lower directories, top first, relative to cwd. */
  lowers: string[];
  upper: string;
  work: string;
  target: string;
}

export interface Backend {
  name: BackendName;
  /** How this backend's lower directories spell markers: 'k' (devices, xattrs) or 'f' (`.wh.` files). */
  form: 'k' | 'f';
  /** Why this backend cannot mount here (one line), or null when it can. */
  unavailable(): string | null;
  mount(spec: MountSpec): void;
  /** Unmount; `lazy` detaches it now and lets processes that hold files in it keep them. */
  umount(target: string, lazy: boolean): void;
  /** Is this mount (by its fstype in mountinfo) one of this backend's? */
  owns(fstype: string): boolean;
}

/** Is `name` an executable on PATH? */
export function onPath(name: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    if (!dir) continue;
    try { fs.accessSync(join(dir, name), fs.constants.X_OK); return true; } catch { /* next */ }
  }
  return false;
}

/** Run a mount helper; a failure becomes one line naming the command and what it said. */
export function run(cmd: string, args: string[], cwd?: string): void {
  const r = spawnSync(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
  if (r.error || r.status !== 0) {
    const why = (r.error?.message ?? r.stderr.toString('utf8')).trim().split('\n').filter((l) => !/unknown argument ignored/.test(l))[0] ?? `exit ${r.status}`;
    throw new GlayerError('E_MOUNT', `${cmd} failed: ${why}`, { cmd, args }, 2);
  }
}

/** Overlay options: the kernel takes `\` escapes, but none of ours should need one; refuse what would break. */
export function checkOptionPath(p: string): void {
  if (/[,:\\\n]/.test(p)) throw new GlayerError('E_MOUNT', `cannot mount a live view with ${p}: the path holds ',' ':' or '\\', which overlay options cannot take`, { path: p }, 2);
}
