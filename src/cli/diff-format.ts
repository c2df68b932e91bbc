/**
 * Rendering of FileDiffs (src/api/diff.ts) the way git prints them: unified patches with `diff --git` headers
 * that `git apply` accepts, `--stat` with git's +/- bar and column rules, `--name-only`, `--name-status`, and
 * JSON. Output is written file by file as the API produces it, with backpressure, and stops quietly when the
 * reader goes away (`glayer diff | head`).
 *
 * Patch text is bytes: paths and file contents are byte strings (latin1) and are written as such; paths are
 * quoted as git quotes them (core.quotePath: C escapes, octal for bytes outside printable ASCII).
 */
import { Option } from 'clipanion';
import type { Writable } from 'node:stream';
import type { FileDiff, Hunk } from '../api/diff.js';
import { UsageError } from '../errors.js';
import { GlayerCommand } from './base.js';
import { useColor } from './format.js';

// ---- colours, as git's defaults ------------------------------------------------------------------------

const RESET = '\x1b[m';
const C = { meta: '\x1b[1m', frag: '\x1b[36m', old: '\x1b[31m', new: '\x1b[32m', ws: '\x1b[41m', commit: '\x1b[33m' };

// ---- paths ------------------------------------------------------------------------------------------------

const ESCAPES: Record<number, string> = { 0x07: '\\a', 0x08: '\\b', 0x09: '\\t', 0x0a: '\\n', 0x0b: '\\v', 0x0c: '\\f', 0x0d: '\\r', 0x22: '\\"', 0x5c: '\\\\' };

/** git's quote_c_style with core.quotePath on: a byte string, quoted only when it must be. */
export function quotePath(bytes: string): string {
  if (!/[\x00-\x1f"\\\x7f-\xff]/.test(bytes)) return bytes;
  let out = '"';
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes.charCodeAt(i);
    const esc = ESCAPES[c];
    if (esc) out += esc;
    else if (c < 0x20 || c >= 0x7f) out += '\\' + c.toString(8).padStart(3, '0');
    else out += bytes[i];
  }
  return out + '"';
}

const abbrev = (oid: string | undefined): string => (oid ?? '0000000000').slice(0, 7);

// ---- one file's patch -------------------------------------------------------------------------------------

/** The git-style patch of one file, as a byte string. */
export function formatPatch(f: FileDiff, color: boolean): string {
  const meta = (s: string): string => (color ? C.meta + s + RESET : s) + '\n';
  const oldBytes = f.oldPathBytes ?? f.pathBytes;
  const a = quotePath('a/' + oldBytes);
  const b = quotePath('b/' + f.pathBytes);
  let out = meta(`diff --git ${a} ${b}`);
  if (f.change === 'R' || f.change === 'C') {
    const sameMode = f.old!.mode === f.new!.mode;
    if (!sameMode) out += meta(`old mode ${f.old!.mode}`) + meta(`new mode ${f.new!.mode}`);
    const word = f.change === 'R' ? 'rename' : 'copy';
    out += meta(`similarity index ${f.similarity}%`) + meta(`${word} from ${quotePath(oldBytes)}`) + meta(`${word} to ${quotePath(f.pathBytes)}`);
    if (f.old!.oid !== f.new!.oid) out += meta(`index ${abbrev(f.old!.oid)}..${abbrev(f.new!.oid)}${sameMode ? ' ' + f.new!.mode : ''}`);
  } else if (f.change === 'A') {
    out += meta(`new file mode ${f.new!.mode}`) + meta(`index 0000000..${abbrev(f.new!.oid)}`);
  } else if (f.change === 'D') {
    out += meta(`deleted file mode ${f.old!.mode}`) + meta(`index ${abbrev(f.old!.oid)}..0000000`);
  } else {
    const sameMode = f.old!.mode === f.new!.mode;
    if (!sameMode) out += meta(`old mode ${f.old!.mode}`) + meta(`new mode ${f.new!.mode}`);
    if (f.old!.oid !== f.new!.oid) out += meta(`index ${abbrev(f.old!.oid)}..${abbrev(f.new!.oid)}${sameMode ? ' ' + f.new!.mode : ''}`);
  }
  const from = f.old ? a : '/dev/null';
  const to = f.new ? b : '/dev/null';
  if (f.old && f.new && f.old.oid === f.new.oid) return out;
  if (f.binary) return out + `Binary files ${from} and ${to} differ\n`;
  if (f.skipped) return out + `Files ${from} and ${to} differ\n`;
  if (f.hunks.length === 0) return out;
  // git ends these two lines with a tab when the name has a space (so that GNU patch finds where it ends).
  const tab = (label: string): string => (label !== '/dev/null' && (label === from ? oldBytes : f.pathBytes).includes(' ') ? '\t' : '');
  out += meta(`--- ${from}`).slice(0, -1) + tab(from) + '\n' + meta(`+++ ${to}`).slice(0, -1) + tab(to) + '\n';
  for (const h of f.hunks) out += formatHunk(h, color);
  return out;
}

function range(start: number, lines: number): string {
  return lines === 1 ? `${start}` : `${start},${lines}`;
}

export function formatHunk(h: Hunk, color: boolean): string {
  const head = `@@ -${range(h.oldStart, h.oldLines)} +${range(h.newStart, h.newLines)} @@`;
  let out = color
    ? C.frag + head + RESET + (h.heading ? ' ' + RESET + h.heading + RESET : '') + '\n'
    : head + (h.heading ? ' ' + h.heading : '') + '\n';
  if (!color) return out + h.lines.join('\n') + '\n';
  for (const l of h.lines) {
    const sign = l[0];
    if (sign === '-') out += C.old + l + RESET + '\n';
    else if (sign === '+') {
      // git marks whitespace at the end of an added line (core.whitespace blank-at-eol).
      const body = l.slice(1);
      const trimmed = body.replace(/[ \t]+$/, '');
      out += C.new + '+' + RESET + (trimmed ? C.new + trimmed + RESET : '') + (trimmed.length < body.length ? C.ws + body.slice(trimmed.length) + RESET : '') + '\n';
    } else out += l + RESET + '\n';
  }
  return out;
}

// ---- --stat -----------------------------------------------------------------------------------------------

interface StatEntry { name: string; added: number; deleted: number; binary: boolean; oldSize: number; newSize: number }

/** git's diffstat (diff.c show_stats) for `width` columns. */
export function formatStat(entries: readonly StatEntry[], width: number, color: boolean): string {
  if (entries.length === 0) return '';
  let maxLen = 0, maxChange = 0, binWidth = 0, numberWidth = 0;
  for (const e of entries) {
    maxLen = Math.max(maxLen, e.name.length);
    if (e.binary) {
      binWidth = Math.max(binWidth, 14 + String(e.newSize).length + String(e.oldSize).length);
      numberWidth = 3;
      continue;
    }
    maxChange = Math.max(maxChange, e.added + e.deleted);
  }
  numberWidth = Math.max(numberWidth, String(maxChange).length);
  if (width < 16 + 6 + numberWidth) width = 16 + 6 + numberWidth;
  let graphWidth = maxChange + 4 > binWidth ? maxChange : binWidth - 4;
  let nameWidth = maxLen;
  if (nameWidth + numberWidth + 6 + graphWidth > width) {
    if (graphWidth > Math.trunc((width * 3) / 8) - numberWidth - 6) {
      graphWidth = Math.trunc((width * 3) / 8) - numberWidth - 6;
      if (graphWidth < 6) graphWidth = 6;
    }
    if (nameWidth > width - numberWidth - 6 - graphWidth) nameWidth = width - numberWidth - 6 - graphWidth;
    else graphWidth = width - numberWidth - 6 - nameWidth;
  }
  const paint = (c: string, s: string): string => (color && s ? c + s + RESET : s);
  const scale = (it: number): number => (it ? 1 + Math.trunc((it * (graphWidth - 1)) / maxChange) : 0);
  let out = '';
  let adds = 0, dels = 0;
  for (const e of entries) {
    let name = e.name;
    let prefix = '';
    let len = nameWidth;
    if (nameWidth < name.length) {
      prefix = '...';
      len = Math.max(0, len - 3);
      name = name.slice(name.length - len);
      const slash = name.indexOf('/');
      if (slash >= 0) name = name.slice(slash);
    }
    const pad = ' '.repeat(Math.max(0, len - name.length));
    if (e.binary) {
      out += ` ${prefix}${name}${pad} | ${'Bin'.padStart(numberWidth)}`;
      out += e.newSize || e.oldSize ? ` ${paint(C.old, String(e.oldSize))} -> ${paint(C.new, String(e.newSize))} bytes\n` : '\n';
      continue;
    }
    adds += e.added;
    dels += e.deleted;
    let add = e.added, del = e.deleted;
    if (graphWidth <= maxChange) {
      let total = scale(add + del);
      if (total < 2 && add && del) total = 2;
      if (add < del) { add = scale(add); del = total - add; }
      else { del = scale(del); add = total - del; }
    }
    const n = e.added + e.deleted;
    out += ` ${prefix}${name}${pad} | ${String(n).padStart(numberWidth)}${n ? ' ' : ''}${paint(C.new, '+'.repeat(add))}${paint(C.old, '-'.repeat(del))}\n`;
  }
  const files = entries.length;
  out += ` ${files} file${files === 1 ? '' : 's'} changed`;
  if (adds || !dels) out += `, ${adds} insertion${adds === 1 ? '' : 's'}(+)`;
  if (dels || !adds) out += `, ${dels} deletion${dels === 1 ? '' : 's'}(-)`;
  return out + '\n';
}

/** git's parse_rename_score: digits are a fraction (`5` = 50%, `75` = 75%, `.5` = 50%), `N%` a percentage; a MAX_SCORE-scale score. */
export function parseRenameScore(text: string): number {
  if (!/^(\d*\.?\d*%?)$/.test(text) || text === '' || text === '.' || text === '%') throw new UsageError(`not a similarity: '${text}' (e.g. 50, 50%, .5)`);
  let num = 0;
  let scale = 1;
  let dot = false;
  for (const ch of text) {
    if (!dot && ch === '.') { scale = 1; dot = true; }
    else if (ch === '%') { scale = dot ? scale * 100 : 100; break; }
    else if (scale < 100000) { scale *= 10; num = num * 10 + Number(ch); }
  }
  return num >= scale ? 60000 : Math.floor((60000 * num) / scale);
}

/** git's pprint_rename: `old => new`, with a common directory prefix and suffix outside braces. */
export function renameName(a: string, b: string): string {
  if (quotePath(a) !== a || quotePath(b) !== b) return `${quotePath(a)} => ${quotePath(b)}`;
  let pfx = 0;
  for (let i = 0; i < a.length && i < b.length && a[i] === b[i]; i++) if (a[i] === '/') pfx = i + 1;
  let sfx = 0;
  const adj = pfx ? 1 : 0;
  for (let i = a.length, j = b.length; i >= pfx - adj && j >= pfx - adj && (i === a.length ? j === b.length : a[i] === b[j]); i--, j--) {
    if (i < a.length && a[i] === '/') sfx = a.length - i;
  }
  const am = Math.max(0, a.length - pfx - sfx);
  const bm = Math.max(0, b.length - pfx - sfx);
  if (pfx + sfx === 0) return `${a} => ${b}`;
  return `${a.slice(0, pfx)}{${a.slice(pfx, pfx + am)} => ${b.slice(pfx, pfx + bm)}}${a.slice(a.length - sfx)}`;
}

// ---- JSON -------------------------------------------------------------------------------------------------

const utf8 = (bytes: string): string => Buffer.from(bytes, 'latin1').toString('utf8');

/** One file as JSON (text as UTF-8 where it decodes). */
export function fileJson(f: FileDiff): unknown {
  return {
    path: f.path,
    change: f.change,
    ...(f.oldPath !== undefined ? { oldPath: f.oldPath, similarity: f.similarity } : {}),
    typeChange: f.typeChange,
    old: f.old,
    new: f.new,
    binary: f.binary,
    skipped: f.skipped,
    added: f.added,
    deleted: f.deleted,
    hunks: f.hunks.map((h) => ({ ...h, heading: utf8(h.heading), lines: h.lines.map(utf8) })),
  };
}

// ---- output -----------------------------------------------------------------------------------------------

/** The reader went away (EPIPE): stop producing. */
export class OutputClosed extends Error {}

/** Writes with backpressure; after an EPIPE every write throws OutputClosed. */
export class Output {
  private closed = false;
  private readonly onError = (e: NodeJS.ErrnoException): void => { this.closed = true; if (e?.code !== 'EPIPE') this.error = e; };
  error: Error | null = null;

  constructor(private readonly stream: Writable) {
    stream.on('error', this.onError);
  }

  /** Write a byte string (latin1). */
  bytes(s: string): Promise<void> { return this.put(Buffer.from(s, 'latin1')); }
  /** Write text (UTF-8). */
  text(s: string): Promise<void> { return this.put(Buffer.from(s, 'utf8')); }

  private async put(buf: Buffer): Promise<void> {
    if (this.closed) throw new OutputClosed();
    if (buf.length === 0) return;
    if (this.stream.write(buf)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => { s.off('drain', done); s.off('error', done); s.off('close', done); resolve(); };
      const s = this.stream;
      s.once('drain', done); s.once('error', done); s.once('close', done);
    });
    if (this.closed) throw new OutputClosed();
  }

  release(): void {
    this.stream.off('error', this.onError);
  }
}

export type DiffFormat = 'patch' | 'stat' | 'name-only' | 'name-status' | 'json' | 'quiet';

/** Renders files as they come; `end()` writes what needs them all (the stat table, JSON's closing bracket). */
export class DiffRenderer {
  private readonly stats: StatEntry[] = [];
  private pendingType: FileDiff | null = null;
  count = 0;

  constructor(private readonly out: Output, readonly format: DiffFormat, private readonly color: boolean, private readonly width = 80) {}

  async file(f: FileDiff): Promise<void> {
    this.count++;
    switch (this.format) {
      case 'quiet': return;
      case 'patch': return this.out.bytes(formatPatch(f, this.color));
      case 'json': return this.out.text((this.count === 1 ? '[\n' : ',\n') + indent(JSON.stringify(fileJson(f), null, 2)));
      case 'name-only':
        if (f.typeChange && f.change === 'D') return;
        // git lists a rename or copy by its new path.
        return this.out.bytes(quotePath(f.pathBytes) + '\n');
      case 'name-status':
        // A change of kind is one entry, 'T', as git lists it.
        if (f.typeChange && f.change === 'D') return;
        if (f.oldPathBytes !== undefined) return this.out.bytes(`${f.change}${String(f.similarity).padStart(3, '0')}\t${quotePath(f.oldPathBytes)}\t${quotePath(f.pathBytes)}\n`);
        return this.out.bytes(`${f.typeChange ? 'T' : f.change}\t${quotePath(f.pathBytes)}\n`);
      case 'stat': {
        if (f.typeChange && f.change === 'D') { this.pendingType = f; return; }
        const prev = this.pendingType && this.pendingType.pathBytes === f.pathBytes ? this.pendingType : null;
        this.pendingType = null;
        const binary = f.binary || f.skipped !== null || (prev !== null && (prev.binary || prev.skipped !== null));
        this.stats.push({
          name: f.oldPathBytes !== undefined ? renameName(f.oldPathBytes, f.pathBytes) : quotePath(f.pathBytes),
          added: f.added + (prev?.added ?? 0),
          deleted: f.deleted + (prev?.deleted ?? 0),
          binary,
          oldSize: f.old && f.new && f.old.oid === f.new.oid ? 0 : (prev ?? f).old?.size ?? 0,
          newSize: f.old && f.new && f.old.oid === f.new.oid ? 0 : f.new?.size ?? 0,
        });
      }
    }
  }

  async end(): Promise<void> {
    if (this.format === 'json') await this.out.text(this.count === 0 ? '[]\n' : '\n]\n');
    else if (this.format === 'stat') await this.out.bytes(formatStat(this.stats, this.width, this.color));
  }
}

function indent(s: string): string {
  return s.split('\n').map((l) => '  ' + l).join('\n');
}

// ---- shared options of diff and show ------------------------------------------------------------------

/** Options and output plumbing shared by `diff` and `show`. */
export abstract class DiffOutputCommand extends GlayerCommand {
  stat = Option.Boolean('--stat', false, { description: 'Show a diffstat: lines added and deleted per file, with a +/- bar' });
  nameOnly = Option.Boolean('--name-only', false, { description: 'Show only the paths that differ' });
  nameStatus = Option.Boolean('--name-status', false, { description: 'Show the paths with A (added), M (modified), D (deleted) or T (kind changed)' });
  unified = Option.String('-U,--unified', { description: 'Lines of context around each change (default 3)' });
  findRenames = Option.String('-M,--find-renames', false, { tolerateBoolean: true, description: 'Detect renames (on by default), at least N similar (git\'s syntax: 50, 50%, .5; default 50%)' });
  noRenames = Option.Boolean('--no-renames', false, { description: 'Show a rename as a deletion and an addition' });
  findCopies = Option.String('--find-copies', false, { tolerateBoolean: true, description: 'Detect copies (from deleted and modified files) too, at least N similar (git\'s -C; here -C is the directory)' });
  color = Option.Boolean('--color', { description: 'Colour the output (default: when stdout is a terminal and NO_COLOR is unset); --no-color turns it off' });

  /** Set by runCli (src/cli/cli.ts): the raw arguments, to find where `--` was. */
  rawArgv?: string[];

  get contextLines(): number | undefined {
    if (this.unified === undefined) return undefined;
    const n = Number(this.unified);
    if (!/^\d+$/.test(this.unified) || !Number.isSafeInteger(n)) throw new UsageError(`-U takes a whole number of lines, not '${this.unified}'`);
    return n;
  }

  /** The rename and copy options for the API (git's -M/-C semantics; -M is on unless --no-renames). */
  get renameOptions(): { renames: boolean; renameThreshold?: number; copies: boolean; copyThreshold?: number } {
    const pct = (v: string | boolean): number | undefined => (typeof v === 'string' ? (parseRenameScore(v) * 100) / 60000 : undefined);
    if (this.noRenames && (this.findRenames !== false || this.findCopies !== false)) throw new UsageError('--no-renames cannot be combined with -M or --find-copies');
    return {
      renames: !this.noRenames,
      renameThreshold: pct(this.findRenames),
      copies: this.findCopies !== false,
      copyThreshold: pct(this.findCopies),
    };
  }

  get format(): DiffFormat {
    if (this.json) return 'json';
    if (this.nameOnly) return 'name-only';
    if (this.nameStatus) return 'name-status';
    if (this.stat) return 'stat';
    return 'patch';
  }

  get colored(): boolean {
    return this.color ?? useColor(this.context.stdout, this.context.env);
  }

  get statWidth(): number {
    const s = this.context.stdout as NodeJS.WriteStream;
    return s.isTTY && s.columns ? s.columns : 80;
  }

  /** Per-file time bound for line diffs (GLAYER_DIFF_TIMEOUT_MS, default the API's). */
  get timeoutMs(): number | undefined {
    const v = this.context.env.GLAYER_DIFF_TIMEOUT_MS;
    return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
  }

  /** Split the positional arguments at `--`: names before it, paths after it. */
  splitArgs(args: readonly string[]): { names: string[]; paths: string[] } {
    const raw = this.rawArgv ?? [];
    const at = raw.indexOf('--');
    const n = at < 0 ? 0 : Math.min(args.length, raw.length - at - 1);
    return { names: args.slice(0, args.length - n), paths: args.slice(args.length - n) };
  }

  /** Run `produce` with a renderer on stdout; returns the number of files, or null when the reader went away. */
  async render(format: DiffFormat, produce: (r: DiffRenderer, out: Output) => Promise<void>): Promise<number | null> {
    const out = new Output(this.context.stdout);
    try {
      const r = new DiffRenderer(out, format, format === 'json' ? false : this.colored, this.statWidth);
      await produce(r, out);
      await r.end();
      return r.count;
    } catch (e) {
      if (e instanceof OutputClosed) return null;
      throw e;
    } finally {
      out.release();
    }
  }
}
