/** Run the built CLI (bin/glayer, after `npm run build`) as a child process, through its launcher as a user does. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/glayer', import.meta.url));

export interface Child { code: number | null; signal: string | null; stdout: string; stderr: string }

export function run(cwd: string, args: string[], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<Child> } {
  const child = spawn(BIN, args, { cwd, env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => { stdout += d; });
  child.stderr!.on('data', (d) => { stderr += d; });
  const done = new Promise<Child>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done };
}
