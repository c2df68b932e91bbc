/**
 * Extended attributes through the `getfattr` and `setfattr` programs (Debian's `attr` package): node has no
 * xattr API and glayer has no native addon. Each call is one process for a whole batch of paths, so a scan
 * asks only for the paths whose metadata it must read again (see sync.ts), and a view gets one `setfattr
 * --restore` per batch of files that carry xattrs. Paths go to the programs in their escaped dump form
 * (`\ooo` for every byte that is not plain printable ASCII), so names that are not UTF-8 work too.
 */
import { spawnSync } from 'node:child_process';

/** Attributes glayer does not record: set by the system per file, not by the layer's author. */
const IGNORED = new Set(['security.selinux']);

/** Bytes per batch of paths given on one command line. */
const ARG_BYTES = 96 * 1024;

let missing = false;

/** A byte string as a command-line argument (arguments are UTF-8 in node), or null when its bytes are not UTF-8. */
function arg(p: string): string | null {
  const u = Buffer.from(p, 'latin1').toString('utf8');
  return Buffer.from(u, 'utf8').toString('latin1') === p ? u : null;
}

/** Is the program there? (After a first ENOENT, glayer stops asking.) */
export function xattrToolsMissing(): boolean { return missing; }

/** The dump format's escape for a path (a byte string): `\ooo` for control bytes, space, backslash and non-ASCII. */
export function escapePath(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out += c <= 0x20 || c >= 0x7f || c === 0x5c ? '\\' + c.toString(8).padStart(3, '0') : s[i];
  }
  return out;
}

function unescapePath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * The xattrs of each path (absolute byte strings; a path the process can name as a string argument, so
 * /proc/self paths are not allowed), without following symlinks. Paths without any are absent from the map.
 */
export function readXattrs(paths: readonly string[]): Map<string, Map<string, Buffer>> {
  const out = new Map<string, Map<string, Buffer>>();
  if (missing || paths.length === 0) return out;
  // Node passes arguments as UTF-8: a path whose bytes are not UTF-8 cannot be named (its xattrs stay as recorded).
  const args = paths.map(arg).filter((a): a is string => a !== null);
  for (let i = 0; i < args.length; ) {
    const batch: string[] = [];
    let bytes = 0;
    while (i < args.length && (batch.length === 0 || bytes + args[i].length < ARG_BYTES)) { bytes += args[i].length + 1; batch.push(args[i++]); }
    const r = spawnSync('getfattr', ['--absolute-names', '-h', '-d', '-m', '-', '-e', 'base64', '--', ...batch], {
      encoding: 'latin1', maxBuffer: 256 * 1024 * 1024,
    });
    if (r.error) {
      if ((r.error as NodeJS.ErrnoException).code === 'ENOENT') { missing = true; return out; }
      throw r.error;
    }
    // Exit 1 means some path could not be read (gone meanwhile): what was printed is still right.
    let cur: Map<string, Buffer> | null = null;
    for (const line of (r.stdout as string).split('\n')) {
      if (line.startsWith('# file: ')) {
        cur = new Map();
        out.set(unescapePath(line.slice(8)), cur);
        continue;
      }
      if (!cur || line === '') continue;
      const eq = line.indexOf('=');
      const name = eq < 0 ? line : line.slice(0, eq);
      if (IGNORED.has(name)) continue;
      const v = eq < 0 ? '' : line.slice(eq + 1);
      cur.set(name, v.startsWith('0s') ? Buffer.from(v.slice(2), 'base64') : Buffer.from(v.replace(/^"|"$/g, ''), 'latin1'));
    }
    for (const [p, m] of out) if (m.size === 0) out.delete(p);
  }
  return out;
}

/**
 * Set (and remove) xattrs: one `setfattr --restore` for all of them. `path` is any path the child process can
 * open (e.g. `/proc/PID/fd/N/NAME`). Returns the paths it could not change (no permission, not supported).
 */
export function writeXattrs(items: ReadonlyArray<{ path: string; set: Map<string, Buffer>; remove: readonly string[] }>): string[] {
  if (items.length === 0) return [];
  if (missing) return items.map((i) => i.path);
  const failed: string[] = [];
  // setfattr --restore cannot remove; removals are one call per attribute (rare: an xattr dropped by a layer).
  let dump = '';
  for (const it of items) {
    if (it.set.size) {
      dump += `# file: ${escapePath(it.path)}\n`;
      for (const [k, v] of it.set) dump += `${k}=0s${v.toString('base64')}\n`;
      dump += '\n';
    }
    const a = arg(it.path);
    for (const name of it.remove) {
      if (a === null) { failed.push(it.path); break; }
      const r = spawnSync('setfattr', ['-h', '-x', name, '--', a], { encoding: 'latin1' });
      if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') { missing = true; return items.map((i) => i.path); }
      if (r.status !== 0 && !/No such attribute/.test(String(r.stderr))) failed.push(it.path);
    }
  }
  if (dump) {
    const r = spawnSync('setfattr', ['-h', '--restore=-'], { input: Buffer.from(dump, 'latin1'), encoding: 'latin1' });
    if (r.error) {
      if ((r.error as NodeJS.ErrnoException).code === 'ENOENT') { missing = true; return items.map((i) => i.path); }
      throw r.error;
    }
    if (r.status !== 0) {
      // Which ones failed: setfattr names them on stderr ("setfattr: PATH: Operation not permitted").
      for (const it of items) if (String(r.stderr).includes(it.path)) failed.push(it.path);
      if (failed.length === 0) failed.push(...items.map((i) => i.path));
    }
  }
  return failed;
}
