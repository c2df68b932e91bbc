/** Byte paths for node:fs: a root (a UTF-8 path from the user) plus a relative byte-string path (core/path.ts). */
export function fsPath(root: string, rel: string): Buffer {
  return rel === '' ? Buffer.from(root, 'utf8') : Buffer.concat([Buffer.from(root, 'utf8'), Buffer.from('/' + rel, 'latin1')]);
}

export function nameOf(buf: Buffer): string {
  return buf.toString('latin1');
}
