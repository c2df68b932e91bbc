/** A store's layout on disk: which git dir holds what (see commonDir). */
import * as fs from '../sys/fs.js';
import { isAbsolute, join, resolve } from 'node:path';
import { isAbsent } from '../errors.js';

/**
 * The git dir that holds the shared part of a store: objects, refs, config and glayer's caches. A linked
 * workspace (`glayer workspace add`) has a private git dir of its own (git's worktree layout: HEAD, its logs,
 * glayer's state and stat caches) whose `commondir` file names the shared one; any other git dir is its own.
 */
export function commonDir(gitdir: string): string {
  let c = commons.get(gitdir);
  if (c === undefined) {
    let text: string | null = null;
    try { text = fs.readFileSync(join(gitdir, 'commondir'), 'utf8').trim(); } catch (e) { if (!isAbsent(e)) throw e; }
    c = text ? (isAbsolute(text) ? text : resolve(gitdir, text)) : gitdir;
    commons.set(gitdir, c);
  }
  return c;
}
const commons = new Map<string, string>();

/**
 * A workspace's `.glayer`: the store's git dir itself, or, in a linked workspace, a file `gitdir: PATH` naming
 * its private git dir (as git's `.git` file in a linked work tree). Returns the git dir.
 */
export function storeDirOf(dotGlayer: string): string {
  let st: fs.Stats;
  try { st = fs.statSync(dotGlayer); } catch { return dotGlayer; }
  if (!st.isFile()) return dotGlayer;
  const text = fs.readFileSync(dotGlayer, 'utf8').trim();
  if (!text.startsWith('gitdir: ')) return dotGlayer;
  const p = text.slice(8).trim();
  return isAbsolute(p) ? p : resolve(join(dotGlayer, '..'), p);
}
