/** Layers made with native git for naming tests: commits whose ids share a prefix, and other stacks. */
import { createHash } from 'node:crypto';
import { git, mktree } from './git.js';

function commitText(tree: string, parent: string, message: string): string {
  const who = 'Test <test@example.com> 1700000000 +0000';
  return `tree ${tree}\nparent ${parent}\nauthor ${who}\ncommitter ${who}\n\n${message}\n`;
}

function commitId(text: string): string {
  const body = Buffer.from(text, 'utf8');
  return createHash('sha1').update(`commit ${body.length}\0`).update(body).digest('hex');
}

/**
 * Two empty layers on top of `parent` (the second on the first) whose ids share their first `digits` hex
 * digits, written with native git. Found by hashing candidate messages in memory (about 16^digits tries).
 */
export function collidingLayers(gitdir: string, parent: string, digits = 4): [string, string] {
  const tree = mktree(gitdir, []);
  const first = commitText(tree, parent, 'colliding layer one');
  const a = commitId(first);
  for (let i = 0; i < 16 ** (digits + 2); i++) {
    const second = commitText(tree, a, `colliding layer two ${i}`);
    const b = commitId(second);
    if (b.slice(0, digits) !== a.slice(0, digits)) continue;
    if (git(gitdir, ['hash-object', '-t', 'commit', '-w', '--stdin'], first) !== a) throw new Error('commit id mismatch');
    if (git(gitdir, ['hash-object', '-t', 'commit', '-w', '--stdin'], second) !== b) throw new Error('commit id mismatch');
    return [a, b];
  }
  throw new Error('no colliding pair found');
}
