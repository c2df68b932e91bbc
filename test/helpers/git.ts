/** Native git as an independent oracle: read what glayer wrote, and write layers glayer did not. */
import { execFileSync, spawnSync } from 'node:child_process';

export const GIT_ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'Test', GIT_AUTHOR_EMAIL: 'test@example.com',
  GIT_COMMITTER_NAME: 'Test', GIT_COMMITTER_EMAIL: 'test@example.com',
  GIT_CONFIG_NOSYSTEM: '1', HOME: '/nonexistent-glayer-test-home',
};

export function hasGit(): boolean {
  return spawnSync('git', ['--version']).status === 0;
}

/** Run git with `--git-dir`, returning stdout (trimmed of one trailing newline). Throws with stderr on failure. */
export function git(gitdir: string, args: string[], input?: string | Buffer): string {
  const out = execFileSync('git', ['--git-dir', gitdir, ...args], { env: GIT_ENV, input, maxBuffer: 1 << 30 });
  return out.toString('utf8').replace(/\n$/, '');
}

/** `git fsck --strict`; throws with git's output when it finds a problem. */
export function fsck(gitdir: string): void {
  const r = spawnSync('git', ['--git-dir', gitdir, 'fsck', '--strict', '--no-dangling'], { env: GIT_ENV });
  if (r.status !== 0) throw new Error(`git fsck --strict failed on ${gitdir}:\n${r.stdout}${r.stderr}`);
}

export interface NativeEntry { mode: string; name: string; content?: string | Buffer; entries?: NativeEntry[] }

/** Write a tree with native git (hash-object --literally, mktree) from a nested description; returns its oid. */
export function mktree(gitdir: string, entries: NativeEntry[]): string {
  const lines: string[] = [];
  for (const e of entries) {
    if (e.mode === '040000' || e.mode === '40000') {
      lines.push(`040000 tree ${mktree(gitdir, e.entries ?? [])}\t${e.name}`);
    } else if (e.mode === '160000') {
      lines.push(`160000 commit ${String(e.content)}\t${e.name}`);
    } else {
      const oid = git(gitdir, ['hash-object', '-w', '--literally', '--stdin'], e.content ?? '');
      lines.push(`${e.mode} blob ${oid}\t${e.name}`);
    }
  }
  return git(gitdir, ['mktree', '--missing'], lines.join('\n') + (lines.length ? '\n' : ''));
}

/** A commit with native git on top of `parent` (or a root commit). */
export function commitTree(gitdir: string, tree: string, parent: string | null, message: string): string {
  return git(gitdir, ['commit-tree', tree, ...(parent ? ['-p', parent] : []), '-m', message]);
}
