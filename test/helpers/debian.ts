/**
 * A real-data corpus: Debian root filesystems built with `mmdebstrap`, as tar files.
 *
 * - `minbase`: `mmdebstrap --variant=minbase bookworm` (about 170 MB, 8,700 entries: files, symlinks,
 *   hardlinks, character devices in /dev, files of many owners and modes);
 * - `web`: the same plus a small web server (`--include=lighttpd`): a second version of the tree, with files
 *   added, changed (the package database, /etc/passwd, ...) and the same ones elsewhere.
 *
 * Each is built once per test run (one promise per process; the two build in parallel), into a cache directory
 * outside the repository that is reused across runs, keyed by the mmdebstrap arguments (`GLAYER_TEST_CACHE`, else
 * `$XDG_CACHE_HOME/glayer-test` or `~/.cache/glayer-test`; delete it for fresh trees). A tar is written under a
 * temporary name and renamed, so parallel runs and a killed build never leave half a tar under the key.
 *
 * `debianTars()` resolves to the tar paths, or to a reason to skip: only when mmdebstrap cannot run here (not
 * installed, not root) or Debian's package mirror cannot be reached. Any other failure of a build is an error.
 * Untar as root with `untar()` (`tar --numeric-owner -xpf`: owners, modes, devices and hardlinks as in the tar).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import { createHash } from 'node:crypto';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';

export const SUITE = 'bookworm';
export const MIRROR = 'http://deb.debian.org/debian';

/** The corpus: name -> mmdebstrap arguments (suite and target added). */
export const DEBIAN_TREES = {
  minbase: ['--variant=minbase'],
  web: ['--variant=minbase', '--include=lighttpd'],
} as const;

export type DebianTree = keyof typeof DEBIAN_TREES;
export type DebianTars = Record<DebianTree, string>;

export function cacheDir(): string {
  if (process.env.GLAYER_TEST_CACHE) return process.env.GLAYER_TEST_CACHE;
  const base = process.env.XDG_CACHE_HOME || join(os.homedir(), '.cache');
  return join(base, 'glayer-test');
}

/** The cache file of a build: named by a hash of everything that decides its content. */
export function tarPath(tree: DebianTree): string {
  const args = [...DEBIAN_TREES[tree], SUITE, MIRROR];
  const key = createHash('sha256').update(JSON.stringify(args)).digest('hex').slice(0, 16);
  return join(cacheDir(), `debian-${tree}-${SUITE}-${key}.tar`);
}

let pending: Promise<DebianTars | string> | null = null;

/** The two tars (built at most once per run), or the reason they cannot be built here. */
export function debianTars(log: (line: string) => void = (l) => console.log(l)): Promise<DebianTars | string> {
  pending ??= build(log);
  return pending;
}

async function build(log: (line: string) => void): Promise<DebianTars | string> {
  const names = Object.keys(DEBIAN_TREES) as DebianTree[];
  const out = Object.fromEntries(names.map((n) => [n, tarPath(n)])) as DebianTars;
  const missing = names.filter((n) => !fs.existsSync(out[n]));
  if (missing.length === 0) return out;
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return 'not running as root (mmdebstrap and untarring device nodes need root)';
  if (spawnSync('mmdebstrap', ['--version']).status !== 0) return 'mmdebstrap is not installed';
  const unreachable = await mirrorUnreachable();
  if (unreachable) return `Debian's packages cannot be reached (${MIRROR}: ${unreachable})`;
  fs.mkdirSync(cacheDir(), { recursive: true });
  const t0 = Date.now();
  log(`  building the Debian corpus (${missing.join(', ')}) with mmdebstrap into ${cacheDir()} ...`);
  await Promise.all(missing.map((n) => mmdebstrap(n, out[n])));
  log(`  built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return out;
}

function mmdebstrap(tree: DebianTree, dest: string): Promise<void> {
  const tmp = `${dest}.tmp${process.pid}`;
  return new Promise((resolve, reject) => {
    const child = spawn('mmdebstrap', ['--quiet', ...DEBIAN_TREES[tree], SUITE, tmp, MIRROR], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) { fs.renameSync(tmp, dest); resolve(); return; }
      fs.rmSync(tmp, { force: true });
      reject(new Error(`mmdebstrap ${tree} failed (exit ${code}):\n${err.split('\n').slice(-15).join('\n')}`));
    });
  });
}

/** Null when the mirror answers, else what went wrong. */
function mirrorUnreachable(): Promise<string | null> {
  return new Promise((resolve) => {
    const req = http.request(`${MIRROR}/dists/${SUITE}/InRelease`, { method: 'HEAD', timeout: 15_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 ? null : `HTTP ${res.statusCode}`);
    });
    req.on('timeout', () => { req.destroy(new Error('timed out')); });
    req.on('error', (e) => resolve(e.message));
    req.end();
  });
}

/** Extract `tar` into `dir` (created) as root: numeric owners, modes, device nodes and hardlinks as stored. */
export function untar(tar: string, dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('tar', ['--numeric-owner', '-xpf', tar, '-C', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Paths (relative, sorted) under `dir` that are neither files, directories nor symlinks: devices, fifos, sockets. */
export function specialFiles(dir: string): string[] {
  const out: string[] = [];
  walk(dir, (rel, st) => { if (!st.isFile() && !st.isDirectory() && !st.isSymbolicLink()) out.push(rel); });
  return out.sort();
}

/** Every entry under `dir` in a pre-order walk (iterative), with its lstat; names as latin1 (a byte a char). */
export function walk(dir: string, fn: (rel: string, st: fs.Stats) => void): void {
  const stack: string[] = [''];
  while (stack.length) {
    const rel = stack.pop()!;
    const names = fs.readdirSync(Buffer.from(rel ? `${dir}/${rel}` : dir, 'latin1'), { encoding: 'latin1' }).sort().reverse();
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(Buffer.from(`${dir}/${r}`, 'latin1'));
      fn(r, st);
      if (st.isDirectory()) stack.push(r);
    }
  }
}

/**
 * How the trees under `a` and `b` differ, as layers can hold them: each path present on one side only, or whose
 * kind, executable bit, content (byte for byte) or symlink target differs. Paths in `ignore` are left
 * out. With `meta`, also what the metadata manifest keeps of a tree committed from a view: the whole st_mode (type
 * and permission bits), owner, group, device numbers and hardlink groups (paths that are one inode on one side
 * must be one inode on the other). Not mtimes: a commit records a new file's content, not the time it was written
 * (docs/metadata.md, "In the view"). Empty when the trees are equal.
 */
export function treeDifferences(a: string, b: string, ignore: ReadonlySet<string> = new Set(), meta = false): string[] {
  const list = (root: string): Map<string, fs.Stats> => {
    const m = new Map<string, fs.Stats>();
    walk(root, (rel, st) => { if (!ignore.has(rel)) m.set(rel, st); });
    return m;
  };
  const A = list(a);
  const B = list(b);
  const out: string[] = [];
  const kind = (st: fs.Stats): string => (st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'special');
  for (const [rel, sa] of A) {
    const sb = B.get(rel);
    if (!sb) { out.push(`only in ${a}: ${rel}`); continue; }
    if (kind(sa) !== kind(sb)) { out.push(`${rel}: ${kind(sa)} vs ${kind(sb)}`); continue; }
    const pa = Buffer.from(`${a}/${rel}`, 'latin1');
    const pb = Buffer.from(`${b}/${rel}`, 'latin1');
    if (sa.isSymbolicLink()) {
      if (!fs.readlinkSync(pa, { encoding: 'buffer' }).equals(fs.readlinkSync(pb, { encoding: 'buffer' }))) out.push(`${rel}: symlink targets differ`);
    } else if (sa.isFile()) {
      if ((sa.mode & 0o100) !== (sb.mode & 0o100)) out.push(`${rel}: executable bit differs`);
      if (sa.size !== sb.size || !fs.readFileSync(pa).equals(fs.readFileSync(pb))) out.push(`${rel}: content differs`);
    }
  }
  for (const rel of B.keys()) if (!A.has(rel)) out.push(`only in ${b}: ${rel}`);
  if (meta) {
    const firstOf = (m: Map<string, fs.Stats>): Map<string, string> => {
      // Each path of a link group -> the group's first path (byte order), so both sides name groups alike.
      const byIno = new Map<number, string>();
      const out = new Map<string, string>();
      for (const rel of [...m.keys()].sort()) {
        const st = m.get(rel)!;
        if (st.isDirectory() || st.nlink < 2) continue;
        if (!byIno.has(st.ino)) byIno.set(st.ino, rel);
        out.set(rel, byIno.get(st.ino)!);
      }
      return out;
    };
    const la = firstOf(A);
    const lb = firstOf(B);
    for (const [rel, sa] of A) {
      const sb = B.get(rel);
      if (!sb) continue;
      if (sa.mode !== sb.mode) out.push(`${rel}: mode ${sa.mode.toString(8)} vs ${sb.mode.toString(8)}`);
      if (sa.uid !== sb.uid || sa.gid !== sb.gid) out.push(`${rel}: owner ${sa.uid}:${sa.gid} vs ${sb.uid}:${sb.gid}`);
      if (!sa.isFile() && !sa.isDirectory() && !sa.isSymbolicLink() && sa.rdev !== sb.rdev) out.push(`${rel}: device ${sa.rdev} vs ${sb.rdev}`);
      if ((la.get(rel) ?? rel) !== (lb.get(rel) ?? rel)) out.push(`${rel}: hardlink group ${la.get(rel) ?? '(none)'} vs ${lb.get(rel) ?? '(none)'}`);
    }
  }
  return out;
}

/** Disk usage (KiB) of `dirs` with each inode counted once, as one `du` over all of them counts it. */
export function du(...dirs: string[]): number {
  return Number(execFileSync('du', ['-sk', '--total', ...dirs]).toString().trim().split('\n').pop()!.split('\t')[0]);
}
