/** Shared checks for the hardening tests (not a test file itself). */
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { CliResult } from '../helpers/cli.js';

/** A clear refusal: non-zero (and not the internal-error status), one line on stderr, no stack. */
export function assertRefusal(r: CliResult, pattern: RegExp, what: string): void {
  assert.ok(r.code !== 0, `${what}: expected a refusal, got exit 0\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.ok(r.code !== 70, `${what}: internal error instead of a refusal: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.is(lines.length, 1, `${what}: expected one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0], /^glayer: /, what);
  assert.not.match(r.stderr, /\n\s+at /, `${what}: stack trace printed`);
  assert.match(lines[0], pattern, `${what}: message does not say why: ${lines[0]}`);
}

/** Every path under `dir` with kind, mode and content hash (symlinks: their target), never following links. */
export function snapshotDir(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (abs: Buffer, rel: string): void => {
    let st: fs.Stats;
    try { st = fs.lstatSync(abs); } catch { return; }
    if (st.isSymbolicLink()) out[rel] = 'l ' + fs.readlinkSync(abs, { encoding: 'buffer' }).toString('hex');
    else if (st.isFile()) out[rel] = `f ${(st.mode & 0o777).toString(8)} ` + createHash('sha1').update(fs.readFileSync(abs)).digest('hex');
    else if (st.isDirectory()) {
      out[rel] = 'd';
      for (const n of fs.readdirSync(abs, { encoding: 'buffer' })) walk(Buffer.concat([abs, Buffer.from('/'), n]), rel + '/' + n.toString('latin1'));
    } else out[rel] = 'special';
  };
  walk(Buffer.from(dir), '');
  return out;
}

/** Names in a directory, or [] when it does not exist. */
export function ls(dir: string): string[] {
  try { return fs.readdirSync(dir).sort(); } catch { return []; }
}

/** Leftover staging/trash siblings of a path. */
export function leftovers(parent: string): string[] {
  return ls(parent).filter((n) => n.includes('.glayer-staging-') || n.includes('.glayer-old-'));
}

export const upperOf = (ws: string): string => join(ws, 'upper');
