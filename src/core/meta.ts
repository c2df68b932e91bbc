/**
 * The metadata manifest: owners, permission bits, mtimes, xattrs, devices, fifos and hardlinks, which a git
 * tree cannot hold, kept as one text file at a layer's root (`.wh..wh..meta`). The format and its union rules
 * are written out for people in docs/metadata.md; this module is their one implementation of the text: parse
 * and print. Pure: no fs, no git.
 *
 * Paths are byte strings (see path.ts). The manifest is bytes too: a record's path is written raw when it is
 * plain, else C-quoted, and a reader takes either.
 */
import { nameProblem } from './path.js';
import { classifyName } from './whiteout.js';

/** The manifest's name at a layer's root. In the `.wh..wh.` namespace, so no user file can collide with it. */
export const META_NAME = '.wh..wh..meta';
export const META_HEADER = '# glayer metadata 1';

export type SpecialType = 'char' | 'block' | 'fifo';

/** One path's metadata. An absent field has its default (docs/metadata.md). */
export interface MetaRecord {
  type?: SpecialType;
  /** Device numbers, with type char or block. */
  dev?: [number, number];
  /** Permission bits (0o7777 at most), never the file type. */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds since the epoch, with the fraction as written (`"1700000000.5"`), kept as text so it round-trips. */
  mtime?: string;
  /** The first path of this path's hardlink group (a byte string). */
  link?: string;
  /** Extended attributes by name (byte strings), values as raw bytes. */
  xattrs?: Map<string, Buffer>;
}

/** path ('.' for the root) -> record, sorted by path in byte order when printed. */
export type Manifest = Map<string, MetaRecord>;

export class MetaParseError extends Error {
  constructor(readonly line: number, readonly reason: string) {
    super(`line ${line}: ${reason}`);
  }
}

const MTIME = /^(0|[1-9][0-9]{0,11})(\.[0-9]{1,9})?$/;
const UINT = /^(0|[1-9][0-9]{0,9})$/;
const MODE = /^[0-7]{3,4}$/;

/** Is a record the same as no record (every field at its default, given the entry's default mode)? */
export function isDefault(r: MetaRecord, defaultMode?: number): boolean {
  return r.type === undefined && r.dev === undefined && (r.mode === undefined || r.mode === defaultMode)
    && (r.uid === undefined || r.uid === 0) && (r.gid === undefined || r.gid === 0) && r.mtime === undefined
    && r.link === undefined && (r.xattrs === undefined || r.xattrs.size === 0);
}

/** Field-by-field equality (absent and default-valued owner fields are equal; modes are compared as given). */
export function sameRecord(a: MetaRecord | undefined, b: MetaRecord | undefined): boolean {
  const x = a ?? {};
  const y = b ?? {};
  if (x.type !== y.type || x.mode !== y.mode || (x.uid ?? 0) !== (y.uid ?? 0) || (x.gid ?? 0) !== (y.gid ?? 0)) return false;
  if (x.mtime !== y.mtime || x.link !== y.link) return false;
  if ((x.dev?.[0] ?? -1) !== (y.dev?.[0] ?? -1) || (x.dev?.[1] ?? -1) !== (y.dev?.[1] ?? -1)) return false;
  const xa = x.xattrs ?? new Map<string, Buffer>();
  const ya = y.xattrs ?? new Map<string, Buffer>();
  if (xa.size !== ya.size) return false;
  for (const [k, v] of xa) { const w = ya.get(k); if (!w || !w.equals(v)) return false; }
  return true;
}

// ---- quoting ------------------------------------------------------------------------------------------------

/** Does a path (or xattr text value) need the quoted form? */
function needsQuote(s: string): boolean {
  if (s === '' || s[0] === '#' || s[0] === '"') return true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c === 0x22 || c === 0x5c || c === 0x3d || c >= 0x7f) return true;
  }
  return false;
}

/** C-quote a byte string as git quotes paths. */
export function quote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x0a) out += '\\n';
    else if (c < 0x20 || c >= 0x7f) out += '\\' + c.toString(8).padStart(3, '0');
    else out += s[i];
  }
  return out + '"';
}

function quoteIfNeeded(s: string): string {
  return needsQuote(s) ? quote(s) : s;
}

/** Read a C-quoted string starting at text[i] === '"'; returns the byte string and the index after it. */
function unquote(text: string, i: number, line: number): [string, number] {
  let out = '';
  for (let j = i + 1; j < text.length; j++) {
    const ch = text[j];
    if (ch === '"') return [out, j + 1];
    if (ch !== '\\') { out += ch; continue; }
    const e = text[++j];
    if (e === '"' || e === '\\') out += e;
    else if (e === 't') out += '\t';
    else if (e === 'n') out += '\n';
    else if (e !== undefined && /[0-3]/.test(e) && /^[0-7]{2}$/.test(text.slice(j + 1, j + 3))) {
      out += String.fromCharCode(parseInt(text.slice(j, j + 3), 8));
      j += 2;
    } else throw new MetaParseError(line, `bad escape '\\${e ?? ''}' in a quoted string`);
  }
  throw new MetaParseError(line, 'unterminated quoted string');
}

/** A token: a quoted string, or raw bytes up to the next space. */
function token(text: string, i: number, line: number): [string, number] {
  if (text[i] === '"') return unquote(text, i, line);
  const j = text.indexOf(' ', i);
  const end = j < 0 ? text.length : j;
  return [text.slice(i, end), end];
}

function checkPath(path: string, line: number): void {
  if (path === '.') return;
  if (path === '') throw new MetaParseError(line, 'empty path');
  for (const part of path.split('/')) {
    const problem = nameProblem(part);
    if (problem) throw new MetaParseError(line, `invalid path ${JSON.stringify(path)}: ${problem}`);
    if (classifyName(part).kind !== 'none') throw new MetaParseError(line, `invalid path ${JSON.stringify(path)}: '${part}' is a whiteout marker name`);
  }
}

// ---- xattr values -------------------------------------------------------------------------------------------

function printable(v: Buffer): boolean {
  for (const c of v) if (c < 0x20 || c >= 0x7f) return false;
  return true;
}

function formatXattrValue(v: Buffer): string {
  return printable(v) ? quote(v.toString('latin1')) : '0s' + v.toString('base64');
}

function parseXattrValue(text: string, i: number, line: number): [Buffer, number] {
  if (text[i] === '"') {
    const [s, j] = unquote(text, i, line);
    return [Buffer.from(s, 'latin1'), j];
  }
  const [raw, j] = token(text, i, line);
  if (raw.startsWith('0s') && /^[A-Za-z0-9+/]*={0,2}$/.test(raw.slice(2)) && (raw.length - 2) % 4 === 0) {
    return [Buffer.from(raw.slice(2), 'base64'), j];
  }
  if (raw.startsWith('0x') && /^([0-9a-fA-F]{2})*$/.test(raw.slice(2))) return [Buffer.from(raw.slice(2), 'hex'), j];
  throw new MetaParseError(line, `bad xattr value '${raw}' (use "text", 0sBASE64 or 0xHEX)`);
}

// ---- parse and print ----------------------------------------------------------------------------------------

/** Parse a manifest (its bytes). Throws MetaParseError naming the line. */
export function parseManifest(data: Buffer | string): Manifest {
  const text = typeof data === 'string' ? data : data.toString('latin1');
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  else if (text !== '') throw new MetaParseError(lines.length, 'the last line does not end with a newline');
  if (lines[0] !== META_HEADER) throw new MetaParseError(1, `the first line must be '${META_HEADER}'`);
  const out: Manifest = new Map();
  let prev: string | null = null;
  for (let n = 1; n < lines.length; n++) {
    const line = n + 1;
    const text = lines[n];
    if (text === '' || text.startsWith('#')) continue;
    let [path, i] = token(text, 0, line);
    checkPath(path, line);
    if (prev !== null && !(prev < path)) {
      throw new MetaParseError(line, prev === path ? `path ${JSON.stringify(path)} is listed twice` : 'records are not sorted by path');
    }
    prev = path;
    const r: MetaRecord = {};
    const seen = new Set<string>();
    if (i >= text.length) throw new MetaParseError(line, 'a record needs at least one field');
    while (i < text.length) {
      if (text[i] !== ' ' || i + 1 >= text.length || text[i + 1] === ' ') throw new MetaParseError(line, 'fields are separated by one space');
      i++;
      const eq = text.indexOf('=', i);
      if (eq < 0) throw new MetaParseError(line, `field without '=' at column ${i + 1}`);
      const key = text.slice(i, eq);
      if (key.includes(' ')) throw new MetaParseError(line, `field without '=' at column ${i + 1}`);
      if (seen.has(key)) throw new MetaParseError(line, `field '${key}' given twice`);
      seen.add(key);
      i = eq + 1;
      if (key.startsWith('xattr.')) {
        const name = key.slice(6);
        if (name === '') throw new MetaParseError(line, 'empty xattr name');
        const [v, j] = parseXattrValue(text, i, line);
        (r.xattrs ??= new Map()).set(name, v);
        i = j;
        continue;
      }
      const [value, j] = token(text, i, line);
      i = j;
      switch (key) {
        case 'type':
          if (value !== 'char' && value !== 'block' && value !== 'fifo') throw new MetaParseError(line, `unknown type '${value}' (char, block or fifo)`);
          r.type = value;
          break;
        case 'dev': {
          const m = /^(0|[1-9][0-9]{0,9}),(0|[1-9][0-9]{0,9})$/.exec(value);
          if (!m) throw new MetaParseError(line, `bad dev '${value}' (MAJOR,MINOR)`);
          r.dev = [Number(m[1]), Number(m[2])];
          break;
        }
        case 'mode':
          if (!MODE.test(value)) throw new MetaParseError(line, `bad mode '${value}' (3 or 4 octal digits)`);
          r.mode = parseInt(value, 8);
          break;
        case 'uid':
        case 'gid':
          if (!UINT.test(value) || Number(value) > 0xffffffff) throw new MetaParseError(line, `bad ${key} '${value}'`);
          r[key] = Number(value);
          break;
        case 'mtime':
          if (!MTIME.test(value)) throw new MetaParseError(line, `bad mtime '${value}' (seconds since the epoch)`);
          r.mtime = value;
          break;
        case 'link':
          checkPath(value, line);
          if (value === '.' || !(value < path)) throw new MetaParseError(line, `link=${JSON.stringify(value)} must name an earlier path of the link group`);
          r.link = value;
          break;
        default:
          throw new MetaParseError(line, `unknown field '${key}'`);
      }
    }
    if ((r.type === 'char' || r.type === 'block') !== (r.dev !== undefined)) {
      throw new MetaParseError(line, r.dev ? 'dev= is only for type=char or type=block' : `type=${r.type} needs dev=MAJOR,MINOR`);
    }
    if (r.xattrs) r.xattrs = new Map([...r.xattrs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    out.set(path, r);
  }
  return out;
}

/** One record's fields, in the documented order, without the path. Empty when the record says nothing. */
export function formatFields(r: MetaRecord): string {
  const f: string[] = [];
  if (r.type) f.push(`type=${r.type}`);
  if (r.dev) f.push(`dev=${r.dev[0]},${r.dev[1]}`);
  if (r.mode !== undefined) f.push(`mode=${r.mode.toString(8).padStart(3, '0')}`);
  if (r.uid !== undefined && r.uid !== 0) f.push(`uid=${r.uid}`);
  if (r.gid !== undefined && r.gid !== 0) f.push(`gid=${r.gid}`);
  if (r.mtime !== undefined) f.push(`mtime=${r.mtime}`);
  if (r.link !== undefined) f.push(`link=${quoteIfNeeded(r.link)}`);
  if (r.xattrs) {
    for (const name of [...r.xattrs.keys()].sort()) f.push(`xattr.${name}=${formatXattrValue(r.xattrs.get(name)!)}`);
  }
  return f.join(' ');
}

/** One record as a line (without the newline). */
export function formatRecord(path: string, r: MetaRecord): string {
  return `${quoteIfNeeded(path)} ${formatFields(r)}`;
}

/**
 * Print a manifest: the header, then one line per record sorted by path in byte order. Records with no fields
 * are left out. Returns null when nothing is left (a layer then has no manifest file at all).
 */
export function formatManifest(m: Manifest): Buffer | null {
  const paths = [...m.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const lines: string[] = [];
  for (const p of paths) {
    const fields = formatFields(m.get(p)!);
    if (fields !== '') lines.push(`${quoteIfNeeded(p)} ${fields}`);
  }
  if (lines.length === 0) return null;
  return Buffer.from([META_HEADER, ...lines, ''].join('\n'), 'latin1');
}

/** The default permission bits of an entry of git mode `gitMode` with no record. */
export function defaultMode(gitMode: string): number {
  return gitMode === '100755' || gitMode === '40000' ? 0o755 : gitMode === '120000' ? 0o777 : 0o644;
}

/** mtime text -> seconds as a number (for utimes). */
export function mtimeSeconds(mtime: string): number {
  return Number(mtime);
}

/** Seconds and nanoseconds -> mtime text, without trailing zeros in the fraction. */
export function formatMtime(seconds: number, nanos = 0): string {
  if (!nanos) return String(seconds);
  return `${seconds}.${String(nanos).padStart(9, '0').replace(/0+$/, '')}`;
}
