/**
 * The metadata manifest: owners, permission bits, mtimes, xattrs, devices, fifos and hardlinks, which a git
 * tree cannot hold, kept as one text file at a layer's root (`.wh..wh..meta`). The format and its union rules
 * are written out for people in docs/metadata.md; this module is their one implementation of the text: parse
 * and print. Pure: no fs, no git.
 *
 * Paths are byte strings (see path.ts). The manifest is bytes too: a record's path is written raw when it is
 * plain, else C-quoted, and a reader takes either.
 */
import { InvalidLayerError } from '../errors.js';
import { dirname, join, nameProblem } from './path.js';
import { EMPTY_BLOB, lookup, sameEntry, type Mode, type TreeEntry, type TreeSource } from './tree.js';
import { META_MARKER, classifyEntry, classifyName } from './whiteout.js';

/** The manifest's name at a layer's root. In the `.wh..wh.` namespace, so no user file can collide with it. */
export const META_NAME = META_MARKER;
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

// ---- records against tree entries -----------------------------------------------------------------------------

/**
 * A record as the union keeps it for an entry of git mode `gitMode`: fields at their default dropped (mode equal
 * to the entry's default, owner 0, no xattrs; a symlink's mode, which is not settable). Null when nothing is left.
 */
export function normalizeRecord(r: MetaRecord, gitMode: Mode): MetaRecord | null {
  const out: MetaRecord = {};
  if (r.type) out.type = r.type;
  if (r.dev) out.dev = r.dev;
  if (r.mode !== undefined && gitMode !== '120000' && r.mode !== defaultMode(gitMode)) out.mode = r.mode;
  if (r.uid) out.uid = r.uid;
  if (r.gid) out.gid = r.gid;
  if (r.mtime !== undefined) out.mtime = r.mtime;
  if (r.link !== undefined) out.link = r.link;
  if (r.xattrs && r.xattrs.size) out.xattrs = r.xattrs;
  return Object.keys(out).length ? out : null;
}

/** Why a record cannot describe `entry`, or null. */
function recordProblem(r: MetaRecord, entry: TreeEntry): string | null {
  const dir = entry.mode === '40000';
  if (r.type) {
    if (entry.mode !== '100644' || entry.oid !== EMPTY_BLOB) return `type=${r.type} needs an empty regular file (mode 100644) in the tree`;
  } else if (r.mode !== undefined && !dir && entry.mode !== '120000' && ((r.mode & 0o100) !== 0) !== (entry.mode === '100755')) {
    return `mode=${r.mode.toString(8).padStart(3, '0')} does not match the tree's mode ${entry.mode} (the owner's execute bit decides it)`;
  }
  if (r.link !== undefined && dir) return 'a directory cannot be a hardlink';
  return null;
}

/** Which of `fields` differ between two records of one entry (both normalized). */
export function changedFields(a: MetaRecord | null | undefined, b: MetaRecord | null | undefined): string[] {
  const x = a ?? {};
  const y = b ?? {};
  const out: string[] = [];
  if (x.type !== y.type || (x.dev?.join(',') ?? '') !== (y.dev?.join(',') ?? '')) out.push('type');
  if (x.mode !== y.mode) out.push('mode');
  if ((x.uid ?? 0) !== (y.uid ?? 0)) out.push('uid');
  if ((x.gid ?? 0) !== (y.gid ?? 0)) out.push('gid');
  if (x.mtime !== y.mtime) out.push('mtime');
  if (x.link !== y.link) out.push('link');
  if (!sameRecord({ xattrs: x.xattrs }, { xattrs: y.xattrs })) out.push('xattrs');
  return out;
}

/** The manifest's entry at the root of a layer tree, or null. */
export function manifestEntry(src: TreeSource, tree: string): TreeEntry | null {
  for (const e of src.readTree(tree)) if (e.name === META_NAME) return e;
  return null;
}

/** Parse a layer's manifest, refusing a bad one as an invalid layer (one line naming the layer and the line). */
export function parseLayerManifest(data: Buffer, layer: string): Manifest {
  try { return parseManifest(data); } catch (e) {
    if (e instanceof MetaParseError) throw new InvalidLayerError(layer, META_NAME, `line ${e.line}: ${e.reason}`);
    throw e;
  }
}

interface Holding {
  /** Entries the layer holds whole (rule 4): a file, symlink, or a directory that is new or replaces one. */
  full: Map<string, TreeEntry>;
  /** Directories of the layer that merge over a lower directory (rule 3). */
  merged: Map<string, TreeEntry>;
  /** Paths whose lower records go, themselves and below (whiteouts, entries held whole). */
  dropSelf: Set<string>;
  /** Opaque directories: their lower records below them go. */
  dropInside: Set<string>;
}

/** What a layer tree holds over a lower union (a sorted merge of each directory in byte order, iterative). */
function holding(src: TreeSource, lower: string | null, delta: string): Holding {
  const h: Holding = { full: new Map(), merged: new Map(), dropSelf: new Set(), dropInside: new Set() };
  const stack: Array<{ path: string; lower: string | null; delta: string }> = [{ path: '', lower, delta }];
  while (stack.length) {
    const { path, lower: low, delta: d } = stack.pop()!;
    const entries = src.readTree(d);
    let opaque = false;
    const hidden = new Set<string>();
    for (const e of entries) {
      const m = classifyEntry(e);
      if (m.kind === 'opaque') opaque = true;
      else if (m.kind === 'whiteout') { hidden.add(m.target); h.dropSelf.add(join(path, m.target)); }
    }
    if (opaque) h.dropInside.add(path);
    const lowers = low === null || opaque ? null : src.readTree(low);
    let li = 0;
    for (const e of entries) {
      if (classifyName(e.name).kind !== 'none') continue;
      const p = join(path, e.name);
      let below: TreeEntry | null = null;
      if (lowers) {
        while (li < lowers.length && lowers[li].name < e.name) li++;
        if (li < lowers.length && lowers[li].name === e.name && !hidden.has(e.name)) below = lowers[li];
      }
      if (e.mode === '40000' && below && below.mode === '40000') {
        h.merged.set(p, e);
        stack.push({ path: p, lower: below.oid, delta: e.oid });
      } else {
        h.full.set(p, e);
        h.dropSelf.add(p);
        if (e.mode === '40000') stack.push({ path: p, lower: null, delta: e.oid });
      }
    }
  }
  return h;
}

function dropped(h: Holding, path: string): boolean {
  if (h.dropSelf.size === 0 && h.dropInside.size === 0) return false;
  if (h.dropSelf.has(path)) return true;
  for (let p = path; p !== '' && p !== '.'; ) {
    p = dirname(p);
    if (h.dropSelf.has(p) || h.dropInside.has(p)) return true;
  }
  return false;
}

/**
 * The union's manifest after one layer (docs/metadata.md, "Through the union"): `lowerMeta` is the manifest of
 * the union `lower`, `delta` the layer's tree and `layerMeta` its parsed manifest (null or empty: none),
 * `result` the union tree after the layer (union.ts's applyLayer). Records are kept normalized
 * (normalizeRecord). Refuses a record the layer cannot have with InvalidLayerError naming the layer and the path;
 * `lenient` (the writable layer, which people edit by hand: a file removed there takes its record's sense with
 * it) drops such a record instead, or its broken `link=`. Returns `lowerMeta` itself when the layer changes
 * nothing of it.
 */
export function applyManifest(
  src: TreeSource, lower: string | null, lowerMeta: Manifest, delta: string, layerMeta: Manifest | null, result: string, layer: string,
  lenient = false,
): Manifest {
  const own = layerMeta ?? new Map<string, MetaRecord>();
  if (lowerMeta.size === 0 && own.size === 0) return lowerMeta;
  const h = holding(src, lower, delta);
  let out: Manifest;
  if (h.dropSelf.size === 0 && h.dropInside.size === 0) out = own.size === 0 ? lowerMeta : new Map(lowerMeta);
  else {
    out = new Map();
    for (const [p, r] of lowerMeta) if (!dropped(h, p)) out.set(p, r);
  }
  if (own.size === 0 && out === lowerMeta) return lowerMeta;
  class Skip {}
  const bad = (p: string, why: string): never => {
    if (lenient) throw new Skip();
    throw new InvalidLayerError(layer, p === '.' ? '' : p, `${META_NAME}: ${why}`);
  };
  const entryOf = (p: string): TreeEntry | null => (p === '.' ? { name: '', mode: '40000', oid: result } : lookup(src, result, p));
  for (const [p, given] of own) {
    let r = given;
    try {
    const held = h.full.get(p) ?? h.merged.get(p);
    let entry: TreeEntry | null | undefined = held;
    if (!held) {
      entry = entryOf(p);
      if (!entry) bad(p, `a record for a path that is not in the union`);
      if (p !== '.' && r.mode === undefined) bad(p, 'a record for a path the layer does not hold (a metadata-only change) must carry mode=');
    }
    const problem = recordProblem(r, entry!);
    if (problem) bad(p, problem);
    if (r.link !== undefined) {
      const target = entryOf(r.link);
      try {
        if (!target) bad(p, `link=${JSON.stringify(r.link)}: that path is not in the union`);
        if (!sameEntry(target, entry)) bad(p, `link=${JSON.stringify(r.link)}: that path does not hold the same file`);
      } catch (e) {
        if (!(e instanceof Skip)) throw e;
        const { link: _, ...rest } = r;
        r = rest;
      }
    }
    const n = normalizeRecord(r, entry!.mode);
    if (n) out.set(p, n); else out.delete(p);
    } catch (e) {
      if (!(e instanceof Skip)) throw e;
    }
  }
  // Links of lower layers whose two sides no longer hold the same file are dropped (as copy-up breaks them).
  for (const [p, r] of out) {
    if (r.link === undefined || own.has(p)) continue;
    const a = entryOf(p);
    const b = entryOf(r.link);
    const linkOf = out.get(r.link)?.link;
    if (a && b && sameEntry(a, b) && linkOf === undefined) continue;
    const { link: _, ...rest } = r;
    // Linked to a path that is itself linked now: follow it to its group's first path.
    if (a && b && sameEntry(a, b) && linkOf !== undefined) { out.set(p, { ...rest, link: linkOf }); continue; }
    const n = a ? normalizeRecord(rest, a.mode) : null;
    if (n) out.set(p, n); else out.delete(p);
  }
  return out;
}

/**
 * The records a layer must carry so that `applyManifest(lower, lowerMeta, delta, records)` gives `targetMeta`
 * (the manifest of the union `target`, normalized): full records for what the layer holds whole, records with
 * an explicit `mode=` for the paths it does not hold (or holds as a merged directory) whose metadata changed.
 */
export function manifestDelta(
  src: TreeSource, lower: string | null, lowerMeta: Manifest, delta: string, target: string, targetMeta: Manifest,
): Manifest {
  const out: Manifest = new Map();
  if (lowerMeta.size === 0 && targetMeta.size === 0) return out;
  const h = holding(src, lower, delta);
  for (const [p] of h.full) {
    const r = targetMeta.get(p);
    if (r) out.set(p, r);
  }
  const withMode = (p: string, r: MetaRecord | undefined): void => {
    const e = p === '.' ? { name: '', mode: '40000' as Mode, oid: target } : lookup(src, target, p);
    if (!e) return; // gone: a whiteout says so
    out.set(p, { ...(r ?? {}), mode: r?.mode ?? defaultMode(e.mode) });
  };
  for (const [p, r] of targetMeta) {
    if (h.full.has(p) || dropped(h, p)) continue;
    if (!sameRecord(r, lowerMeta.get(p))) withMode(p, r);
  }
  for (const [p, r] of lowerMeta) {
    if (h.full.has(p) || dropped(h, p) || targetMeta.has(p)) continue;
    if (r) withMode(p, undefined);
  }
  return out;
}

// ---- the workspace: view, writable layer --------------------------------------------------------------------

/**
 * Merge the metadata of the two sides of a reconcile, as sync.ts merges their trees: the view's changes
 * (V0m -> V1m: `viewChanged`) stand; the writable layer's and the stack's (V0m -> Mu) are brought in for paths
 * the view did not touch (`viewTouched`: its content changed there, or above or below). `onClash` hears of a
 * path both changed differently (the view's record wins).
 */
export function mergeManifests(
  v0m: Manifest, v1m: Manifest, viewChanged: ReadonlySet<string>, mu: Manifest, viewTouched: (p: string) => boolean, onClash: (p: string) => void,
): Manifest {
  if (mu === v0m) return v1m;
  let out = v1m;
  const apply = (p: string): void => {
    const r = mu.get(p);
    if (viewChanged.has(p) || viewTouched(p)) {
      if (viewChanged.has(p) && !sameRecord(v1m.get(p), r)) onClash(p);
      return;
    }
    if (out === v1m) out = new Map(v1m);
    if (r) out.set(p, r); else out.delete(p);
  };
  for (const [p, r] of mu) if (!sameRecord(r, v0m.get(p))) apply(p);
  for (const p of v0m.keys()) if (!mu.has(p)) apply(p);
  return out;
}

/** A tree with the manifest blob `oid` at its root (or without one: `oid` null). */
export function withManifest(sink: TreeSource & { writeTree(entries: readonly TreeEntry[]): string }, tree: string, oid: string | null): string {
  const entries = sink.readTree(tree).filter((e) => e.name !== META_NAME);
  if (oid) {
    entries.push({ name: META_NAME, mode: '100644', oid });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
  return sink.writeTree(entries);
}

/** A path of a directory to bring to its record (fs/apply-meta.ts). */
export interface MetaChange { path: string; entry: TreeEntry; record: MetaRecord | null; old: MetaRecord | null }

/**
 * What to apply to a directory holding `tree` whose metadata goes from `from` to `to`, after `written` (changes
 * whose new side was just written, with the defaults) were made: every path whose record changed, and every
 * path with a record at or below a written one.
 */
export function metaChanges(src: TreeSource, tree: string, from: Manifest, to: Manifest, written: ReadonlyArray<{ path: string; new: TreeEntry | null }>): MetaChange[] {
  const out: MetaChange[] = [];
  if (from.size === 0 && to.size === 0) return out;
  const fresh = new Set(written.filter((c) => c.new).map((c) => c.path));
  const isFresh = (p: string): boolean => {
    if (fresh.size === 0 || p === '.') return false;
    for (let a = p; ; a = dirname(a)) { if (fresh.has(a)) return true; if (a === '' || !a.includes('/')) return false; }
  };
  const add = (p: string): void => {
    const entry = p === '.' ? { name: '', mode: '40000' as Mode, oid: tree } : lookup(src, tree, p);
    if (!entry) return;
    const f = isFresh(p);
    const record = to.get(p) ?? null;
    if (f && !record) return;
    out.push({ path: p, entry, record, old: f ? null : from.get(p) ?? null });
  };
  for (const [p, r] of to) if (!sameRecord(r, from.get(p)) || isFresh(p)) add(p);
  for (const p of from.keys()) if (!to.has(p)) add(p);
  return out;
}
