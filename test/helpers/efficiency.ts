// An independent count of what `glayer efficiency` measures, made with native git and the file system.
import * as fs from 'node:fs';
import { join } from 'node:path';
import { git } from './git.js';

/** Every blob of every layer (whiteouts aside), by `git ls-tree -l`; and the bytes of the union, from a view. */
export function countWithGit(gitdir: string, view: string): { total: number; union: number } {
  let total = 0;
  for (const c of git(gitdir, ['rev-list', '--first-parent', 'HEAD']).split('\n')) {
    for (const line of git(gitdir, ['ls-tree', '-r', '-l', c]).split('\n')) {
      const m = /^(\d+) blob [0-9a-f]+ +(\d+)\t(.*)$/.exec(line);
      if (m && !m[3].split('/').pop()!.startsWith('.wh.')) total += Number(m[2]);
    }
  }
  let union = 0;
  const walk = (d: string): void => {
    for (const n of fs.readdirSync(d)) {
      const st = fs.lstatSync(join(d, n));
      if (st.isDirectory()) walk(join(d, n)); else union += st.isSymbolicLink() ? fs.readlinkSync(join(d, n)).length : st.size;
    }
  };
  walk(view);
  return { total, union };
}
