import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';

const made: string[] = [];

/** A fresh temporary directory, removed when the process exits. */
export function tmpdir(prefix = 'glayer-test-'): string {
  const d = fs.mkdtempSync(join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

process.on('exit', () => {
  if (process.env.GLAYER_KEEP_TMP) return;
  for (const d of made) { try { fs.rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ } }
});
