/**
 * `clone URL [DIR]`: a new workspace whose stack is the remote's stack (its HEAD branch, or `branch`), with the
 * remote recorded as `origin` and the view mounted. It is `init --from URL#BRANCH` followed by `mount-view`.
 */
import * as fs from '../sys/fs.js';
import { basename, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { init } from './init.js';
import { mountView } from './mount-view.js';
import type { Progress } from './types.js';

export interface CloneOptions {
  /** A URL (http, https, ssh, file) or a path to a repository or a glayer workspace. */
  url: string;
  /** Directory of the new workspace; default: the last part of the URL without `.git`. */
  dir?: string;
  cwd?: string;
  /** The remote branch or tag to start from; default: the remote's HEAD branch. */
  branch?: string;
  /** Name of the local stack; default: the remote branch's name. */
  stack?: string;
  onProgress?: Progress;
}

export interface CloneResult { root: string; ref: string; head: string | null; view: string; url: string }

export function defaultCloneDir(url: string): string {
  const clean = url.replace(/[?#].*$/, '').replace(/\/+$/, '').replace(/\/\.git$/, '').replace(/\/\.glayer$/, '');
  const last = basename(clean.replace(/^.*:/, (m) => (m.includes('/') ? m : ''))).replace(/\.(git|glayer)$/, '');
  if (!last || last === '.' || last === '..') throw new UsageError(`cannot guess a directory name from ${url}; give one: glayer clone URL DIR`);
  return last;
}

export async function clone(opts: CloneOptions): Promise<CloneResult> {
  if (!opts.url) throw new UsageError('clone needs a URL or a path');
  const cwd = opts.cwd ?? process.cwd();
  const dir = opts.dir ?? defaultCloneDir(opts.url);
  const root = resolve(cwd, dir);
  const existed = fs.existsSync(root);
  let r;
  try {
    r = await init({ cwd, dir, from: opts.branch ? `${opts.url}#${opts.branch}` : opts.url, stack: opts.stack, onProgress: opts.onProgress });
  } catch (e) {
    // Leave no trace: a directory this clone made, and that holds nothing, goes again.
    if (!existed) { try { fs.rmdirSync(root); } catch { /* not empty or gone */ } }
    throw e;
  }
  const m = await mountView({ cwd: r.root, onProgress: opts.onProgress });
  return { root: r.root, ref: r.ref, head: r.head, view: m.view, url: r.from ?? opts.url };
}
