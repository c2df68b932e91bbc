/** Child processes for the benchmark: timed runs, peak RSS as the OS reports it, and summary statistics. */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';

export const ENV: NodeJS.ProcessEnv = {
  ...process.env,
  GIT_AUTHOR_NAME: 'Bench', GIT_AUTHOR_EMAIL: 'bench@example.com',
  GIT_COMMITTER_NAME: 'Bench', GIT_COMMITTER_EMAIL: 'bench@example.com',
  GIT_CONFIG_NOSYSTEM: '1', HOME: '/nonexistent-glayer-bench-home', NO_COLOR: '1',
};

export class ChildError extends Error {}

/** ms: wall time; cpu: the child's user + system CPU time in ms (NaN without GNU time), less sensitive to load. */
export interface Ran { ms: number; cpu: number; stdout: string; stderr: string; status: number }

let gnuTime: boolean | null = null;
/** Whether `/usr/bin/time -f` works here (GNU time); it reports the child's rusage from wait4. */
export function hasGnuTime(): boolean {
  if (gnuTime === null) {
    const dir = fs.mkdtempSync('/tmp/glayer-bench-time-');
    try {
      const r = spawnSync('/usr/bin/time', ['-f', '%U %S %M', '-o', join(dir, 'o'), 'true']);
      gnuTime = r.status === 0 && /^[\d.]+ [\d.]+ \d+\s*$/.test(fs.readFileSync(join(dir, 'o'), 'utf8'));
    } catch { gnuTime = false; } finally { fs.rmSync(dir, { recursive: true, force: true }); }
  }
  return gnuTime;
}
let timeOut = '';

export function run(cmd: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: number | string; allowFail?: boolean; noWrap?: boolean } = {}): Ran {
  const wrap = !opts.noWrap && hasGnuTime();
  if (wrap && !timeOut) timeOut = join(fs.mkdtempSync('/tmp/glayer-bench-time-'), 'rusage');
  const argv = wrap ? ['-f', '%U %S', '-o', timeOut, cmd, ...args] : [...args];
  const t0 = process.hrtime.bigint();
  const r: SpawnSyncReturns<Buffer> = spawnSync(wrap ? '/usr/bin/time' : cmd, argv, {
    cwd: opts.cwd,
    env: opts.env ?? ENV,
    stdio: [typeof opts.input === 'number' ? opts.input : 'pipe', 'pipe', 'pipe'],
    input: typeof opts.input === 'string' ? opts.input : undefined,
    maxBuffer: 1 << 30,
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  let cpu = NaN;
  if (wrap) {
    const last = fs.readFileSync(timeOut, 'utf8').trim().split('\n').pop() ?? '';
    const m = /^([\d.]+) ([\d.]+)$/.exec(last);
    if (m) cpu = (Number(m[1]) + Number(m[2])) * 1000;
  }
  const out: Ran = { ms, cpu, stdout: r.stdout?.toString() ?? '', stderr: r.stderr?.toString() ?? '', status: r.status ?? -1 };
  if (r.error) throw new ChildError(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (out.status !== 0 && !opts.allowFail) {
    throw new ChildError(`${cmd} ${args.join(' ')} (in ${opts.cwd ?? '.'}) exited ${out.status}${r.signal ? ` (${r.signal})` : ''}\n${out.stderr.slice(0, 2000)}${out.stdout.slice(0, 500)}`);
  }
  return out;
}

export function git(args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: number | string; allowFail?: boolean } = {}): Ran {
  return run('git', args, opts);
}

/** Where the built CLI is, and extra node flags (e.g. --cpu-prof) for the glayer child. */
export const glayerCli = { bin: '', nodeFlags: [] as string[] };

/**
 * Run glayer as a user does: the launcher itself (its shebang drops NODE_EXTRA_CA_CERTS, see bin/glayer). With
 * node flags (profiling) it runs under `node FLAGS`, with the same environment the launcher would give it.
 */
export function glayer(cwd: string, args: readonly string[], opts: { allowFail?: boolean; nodeFlags?: string[] } = {}): Ran {
  const flags = [...glayerCli.nodeFlags, ...(opts.nodeFlags ?? [])];
  if (flags.length === 0) return run(glayerCli.bin, args, { cwd, allowFail: opts.allowFail });
  const { NODE_EXTRA_CA_CERTS: extra, ...env } = ENV;
  return run(process.execPath, [...flags, glayerCli.bin, ...args], { cwd, allowFail: opts.allowFail, env: { ...env, GLAYER_EXTRA_CA_CERTS: extra ?? '' } });
}

// ---- peak RSS -----------------------------------------------------------------------------------------------

export type RssMethod = 'gnu-time' | 'python-rusage';

/**
 * The child's peak RSS in KiB as the kernel accounts it (ru_maxrss from wait4/getrusage(RUSAGE_CHILDREN)):
 * through GNU `/usr/bin/time -f %M` when it works, else through a python3 wrapper calling getrusage.
 * Node itself cannot read a child's rusage (process.resourceUsage() is the current process only).
 */
export function rssMethod(): RssMethod {
  return hasGnuTime() ? 'gnu-time' : 'python-rusage';
}

const PY = 'import resource,subprocess,sys\nr=subprocess.run(sys.argv[2:])\nopen(sys.argv[1],"w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\nsys.exit(r.returncode)';

export function runWithRss(method: RssMethod, cmd: string, args: readonly string[], cwd: string): Ran & { rssKiB: number } {
  const dir = fs.mkdtempSync('/tmp/glayer-bench-rss-');
  const out = join(dir, 'rss');
  try {
    const r = method === 'gnu-time'
      ? run('/usr/bin/time', ['-f', '%M', '-o', out, cmd, ...args], { cwd, noWrap: true })
      : run('python3', ['-c', PY, out, cmd, ...args], { cwd, noWrap: true });
    return { ...r, rssKiB: Number(fs.readFileSync(out, 'utf8').trim().split('\n').pop()) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---- statistics ---------------------------------------------------------------------------------------------

export interface Stats { median: number; min: number; max: number; runs: number[] }

export function stats(xs: readonly number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  const median = n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  return { median, min: s[0], max: s[n - 1], runs: xs.map((x) => Math.round(x * 10) / 10) };
}
