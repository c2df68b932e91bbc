/**
 * A directory's metadata as one comparable record per path: kind (and device number), permission bits, owner,
 * hardlink group (the first path seen with the inode), xattrs (getfattr, when installed), and mtimes of the
 * paths asked for. What a view must reproduce of a layer's manifest (docs/metadata.md).
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

export const HAS_ATTR = spawnSync('getfattr', ['--version']).status === 0;

/** Every path under `dir` with what `glayer` must reproduce: type, permission bits, owner, link group, device, xattrs. */
export function metaSnapshot(dir: string, opts: { mtimes?: string[] } = {}): Record<string, string> {
  const out: Record<string, string> = {};
  const firstOf = new Map<number, string>();
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(join(dir, r));
      let kind = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'link' : st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? `char:${st.rdev}` : st.isBlockDevice() ? `block:${st.rdev}` : 'file';
      if (kind === 'file' && st.nlink > 1) {
        const first = firstOf.get(st.ino);
        if (first) kind += ` =${first}`; else firstOf.set(st.ino, r);
      }
      let line = `${kind} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (opts.mtimes?.includes(r)) line += ` mtime=${st.mtimeMs}`;
      out[r] = line;
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  if (HAS_ATTR) {
    const dump = spawnSync('getfattr', ['-R', '-h', '-d', '-m', '-', '-e', 'base64', '.'], { cwd: dir, encoding: 'utf8' }).stdout;
    for (const block of dump.split('\n\n')) {
      const m = /^# file: \.\/(.*)\n([\s\S]*)$/.exec(block.trim());
      if (m) out[m[1]] += ' ' + m[2].split('\n').sort().join(' ');
    }
  }
  return out;
}

