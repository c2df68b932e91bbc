/**
 * Hostile objects that `git mktree` refuses: a tree object written from raw bytes with
 * `git hash-object -t tree --literally -w`. Names are byte strings (latin1) or Buffers; entries are written in
 * the order given (git order is the caller's business).
 */
import { git } from './git.js';

export interface RawEntry { mode: string; name: string | Buffer; oid: string }

export function rawTree(gitdir: string, entries: RawEntry[]): string {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const name = typeof e.name === 'string' ? Buffer.from(e.name, 'latin1') : e.name;
    parts.push(Buffer.from(`${e.mode} `, 'latin1'), name, Buffer.from([0]), Buffer.from(e.oid, 'hex'));
  }
  return git(gitdir, ['hash-object', '-t', 'tree', '-w', '--literally', '--stdin'], Buffer.concat(parts));
}

export function blob(gitdir: string, content: string | Buffer): string {
  return git(gitdir, ['hash-object', '-w', '--stdin'], content);
}

/** Point the stack (refs/heads/main) at `commit` with native git. */
export function setStack(gitdir: string, commit: string): void {
  git(gitdir, ['update-ref', 'refs/heads/main', commit]);
}
