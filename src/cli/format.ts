/** Output helpers: errors, tables, sizes, colours (off unless the stream is a TTY; NO_COLOR wins). */
import type { Writable } from 'node:stream';
import { GlayerError, SystemError, isSystemRefusal } from '../errors.js';

export function useColor(stream: Writable, env: Record<string, string | undefined>): boolean {
  if ('NO_COLOR' in env && env.NO_COLOR !== undefined) return false;
  return Boolean((stream as NodeJS.WriteStream).isTTY);
}

/** Print an error as one line (or JSON) on stderr and return the exit code. Internal bugs ask to be reported. */
export function reportError(e: unknown, stderr: Writable, json: boolean, env: Record<string, string | undefined>, place = ''): number {
  // The operating system's refusals (no space, read-only, permission, I/O errors) are not bugs: one line, 74 or 77.
  if (!(e instanceof GlayerError) && isSystemRefusal(e)) e = new SystemError(e as NodeJS.ErrnoException, place);
  if (e instanceof GlayerError) {
    if (env.GLAYER_DEBUG && e.stack) stderr.write(e.stack + '\n');
    const message = e.message.split('\n')[0];
    if (json) stderr.write(JSON.stringify({ error: { code: e.code, message, ...e.data } }) + '\n');
    else stderr.write(`glayer: ${message}\n`);
    return e.exitCode;
  }
  const err = e as NodeJS.ErrnoException;
  const message = `internal error: ${err?.message ?? String(e)} (this is a bug in glayer; please report it with the command you ran)`;
  if (json) stderr.write(JSON.stringify({ error: { code: 'E_INTERNAL', message } }) + '\n');
  else stderr.write(`glayer: ${message}\n`);
  if (env.GLAYER_DEBUG && err?.stack) stderr.write(err.stack + '\n');
  return 70;
}

export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1000;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) { v /= 1000; u++; }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => { if (i < r.length - 1) widths[i] = Math.max(widths[i] ?? 0, [...c].length); });
  return rows.map((r) => r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i] + ([...c].length - c.length) * 0) : c)).join('  ').trimEnd()).join('\n') + '\n';
}

export const ansi = {
  green: (s: string) => `\x1b[32m${s}\x1b[m`,
  red: (s: string) => `\x1b[31m${s}\x1b[m`,
  yellow: (s: string) => `\x1b[33m${s}\x1b[m`,
  bold: (s: string) => `\x1b[1m${s}\x1b[m`,
  cyan: (s: string) => `\x1b[36m${s}\x1b[m`,
};

/** A progress line on stderr when it is a terminal; nothing otherwise. */
export function progressReporter(stderr: Writable): ((p: { phase: string; done: number; total: number }) => void) | undefined {
  if (!(stderr as NodeJS.WriteStream).isTTY) return undefined;
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (p.done !== p.total && now - last < 100) return;
    last = now;
    // A total of 0: not known yet (bytes received so far, say).
    stderr.write(`\r${p.phase}: ${p.total ? `${p.done}/${p.total}` : p.done}${p.done === p.total ? '\n' : ''}`);
  };
}
