/** `umount`: unmount the live view (live.ts); the writable layer keeps every change not committed. */
import { withWorkspace } from '../workspace/workspace.js';
import { umountLive } from './live.js';
import type { WorkspaceOptions } from './types.js';

export interface UmountOptions extends WorkspaceOptions {
  /** The view to unmount (default: the workspace's live view). */
  target?: string;
}

export interface UmountResult { view: string; warnings: string[] }

export async function umount(opts: UmountOptions = {}): Promise<UmountResult> {
  const cwd = opts.cwd ?? process.cwd();
  return withWorkspace(cwd, (ws) => umountLive(ws, ws.readState(), opts.target === undefined ? undefined : (opts.target.startsWith('/') ? opts.target : `${cwd}/${opts.target}`)));
}
