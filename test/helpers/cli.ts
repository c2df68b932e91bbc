import { PassThrough } from 'node:stream';
import { runCli } from '../../src/cli/cli.js';

export interface CliResult { code: number; stdout: string; stderr: string }

/** Run the glayer CLI in-process, in `cwd`, capturing its streams. */
export async function glayer(cwd: string, ...argv: string[]): Promise<CliResult> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => { out += d; });
  stderr.on('data', (d) => { err += d; });
  const code = await runCli(argv, { cwd, stdout, stderr, env: { ...process.env, NO_COLOR: '1' } });
  return { code, stdout: out, stderr: err };
}

/** Like glayer(), but fails with the output when the exit code is not 0. */
export async function glayerOk(cwd: string, ...argv: string[]): Promise<CliResult> {
  const r = await glayer(cwd, ...argv);
  if (r.code !== 0) throw new Error(`glayer ${argv.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}
