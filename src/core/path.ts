/**
 * Layer paths.
 *
 * Every name and path inside glayer is a *byte string*: a JS string whose char codes are the raw bytes of the
 * name (latin1), exactly as git stores them. Comparing two byte strings with `<` is byte order (git order for
 * plain names), never locale or Unicode order, and names that are not UTF-8 survive unchanged. Convert only
 * at the edges: `toBytes` for text coming from a user, `display` (errors.ts) for text going to one.
 */

/** A path from the user (UTF-8 JS string) as a byte string. */
export function toBytes(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

export function join(parent: string, name: string): string {
  return parent === '' ? name : parent + '/' + name;
}

export function basename(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? path : path.slice(i + 1);
}

export function dirname(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

/** True when `a` is `b` or one of its ancestors. */
export function isAncestorOrSelf(a: string, b: string): boolean {
  return a === '' || a === b || (b.length > a.length && b.startsWith(a) && b.charCodeAt(a.length) === 0x2f);
}

export function compareBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// Code points that HFS+ ignores when comparing names (git's is_hfs_dotgit), as UTF-8 byte strings.
const HFS_IGNORABLE = /\xe2\x80[\x8c-\x8f\xaa-\xae]|\xe2\x81[\xaa-\xaf]|\xef\xbb\xbf/g;

/** Is `name` a spelling of `.git` that git refuses in a tree (case, HFS ignorables, NTFS short name and trailing dots/spaces)? */
export function isDotGit(name: string): boolean {
  const folded = name.replace(HFS_IGNORABLE, '').toLowerCase();
  if (folded === '.git') return true;
  const ntfs = name.toLowerCase().replace(/[. ]+$/, '');
  return ntfs === '.git' || ntfs === 'git~1';
}

/** Why `name` cannot be a tree entry name, or null when it can. */
export function nameProblem(name: string): string | null {
  if (name === '') return 'empty name';
  if (name === '.' || name === '..') return `'${name}' is not a valid name`;
  if (name.includes('/')) return "name contains '/'";
  if (name.includes('\0')) return 'name contains NUL';
  // Every spelling of .git starts with '.', 'g' or 'G', or an HFS+ ignorable (UTF-8 lead byte e2 or ef).
  const c = name.charCodeAt(0);
  if ((c === 0x2e || c === 0x67 || c === 0x47 || c === 0xe2 || c === 0xef) && isDotGit(name)) return `'.git' is reserved`;
  return null;
}

/** Split a relative, '/'-separated user path into validated components (throws a message on bad input). */
export function splitPath(path: string): string[] {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  for (const p of parts) {
    const problem = nameProblem(p);
    if (problem) throw new Error(problem);
  }
  return parts;
}
