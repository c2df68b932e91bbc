import * as fs from '../sys/fs.js';

/** Byte paths for node:fs: a root (a UTF-8 path from the user) plus a relative byte-string path (core/path.ts). */
export function fsPath(root: string, rel: string): Buffer {
  return rel === '' ? Buffer.from(root, 'utf8') : Buffer.concat([Buffer.from(root, 'utf8'), Buffer.from('/' + rel, 'latin1')]);
}

export function nameOf(buf: Buffer): string {
  return buf.toString('latin1');
}

const PATH_SHORT = 3000;
const DIR_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_DIRECTORY ?? 0) | (fs.constants.O_NOFOLLOW ?? 0);

/**
 * Run `fn` with a path for root/rel that works in one system call even when root/rel is longer than PATH_MAX:
 * past a few thousand bytes the directories on the way are opened (without following symlinks) and the rest is
 * named through /proc/self/fd. The fds are closed when `fn`'s promise settles.
 */
export function withDeepPathSync<T>(root: string, rel: string, fn: (path: Buffer) => T): T {
  const full = fsPath(root, rel);
  if (full.length < PATH_SHORT) return fn(full);
  const fds: number[] = [];
  try {
    return fn(deepPath(root, rel, fds));
  } finally {
    for (const fd of fds) fs.closeSync(fd);
  }
}

export async function withDeepPath<T>(root: string, rel: string, fn: (path: Buffer) => T | Promise<T>): Promise<T> {
  const full = fsPath(root, rel);
  if (full.length < PATH_SHORT) return fn(full);
  const fds: number[] = [];
  try {
    return await fn(deepPath(root, rel, fds));
  } finally {
    for (const fd of fds) fs.closeSync(fd);
  }
}

function deepPath(root: string, rel: string, fds: number[]): Buffer {
  const parts = rel.split('/');
  let base = Buffer.from(root, 'utf8');
  let k = 0;
  while (k < parts.length - 1) {
    // Take as many components as fit, open that directory, and continue from its fd.
    let chunk = '';
    while (k < parts.length - 1 && chunk.length + parts[k].length + 1 < PATH_SHORT / 2) chunk += '/' + parts[k++];
    if (chunk === '') chunk = '/' + parts[k++];
    const fd = fs.openSync(Buffer.concat([base, Buffer.from(chunk, 'latin1')]), DIR_FLAGS);
    fds.push(fd);
    base = Buffer.from(`/proc/self/fd/${fd}`);
  }
  return Buffer.concat([base, Buffer.from('/' + parts[parts.length - 1], 'latin1')]);
}
