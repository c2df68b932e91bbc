/** Git object ids: SHA-1 of "<type> <size>\0<content>". Pure computation, shared by store/ and fs/. */
import { createHash, type Hash } from 'node:crypto';

export type ObjectType = 'commit' | 'tree' | 'blob' | 'tag';

export function hashObject(type: ObjectType, data: Buffer): string {
  return createHash('sha1').update(`${type} ${data.length}\0`).update(data).digest('hex');
}

/** An incremental hash for a blob of known size (for content too large to hold). */
export function blobHasher(size: number): Hash {
  return createHash('sha1').update(`blob ${size}\0`);
}
