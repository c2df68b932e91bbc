/**
 * node:fs behind a switch, for fault injection (the test seam of SQLite's and git's test suites).
 *
 * Every module that touches the file system imports this one (`import * as fs from '../sys/fs.js'`) instead of
 * `node:fs`: both fs/ and store/ may import it, neither imports the other. Each function is exported as a
 * binding that normally *is* node's own function, so the switch costs nothing while it is off. A test turns it
 * on with `injectFault({ errno: 'ENOSPC', nth: 17 })`: the bindings are then replaced by wrappers that count
 * calls, and the 17th file-system call fails with that errno (once: the calls after it work again), exactly as
 * the kernel would have failed it (an Error with `code`, `errno`, `syscall` and `path`). `injectFault(null)`
 * puts node's functions back. A process started with GLAYER_TEST_FAULT=ENOSPC@17 arms the same fault at start
 * (src/cli/main.ts).
 *
 * Every exported function counts as one call, except `exists`/`existsSync` (which cannot fail) and the watch
 * functions. A failed close still closes (Linux releases the descriptor whatever close returns). Streams fail
 * on their first tick, with the stream's 'error'. The list of names is node 20's fs functions; a module that
 * needs another adds it here.
 */
import * as real from 'node:fs';
import { getSystemErrorMap } from 'node:util';

export { constants, Stats, Dirent, Dir, ReadStream, WriteStream } from 'node:fs';
export type { BigIntStats, PathLike, Mode, MakeDirectoryOptions, RmOptions, StatSyncOptions, WriteFileOptions } from 'node:fs';

export interface FaultPlan {
  /** Node's error code to fail with: ENOSPC, EIO, EACCES, ... */
  errno: string;
  /** The call (counted from 1 since injectFault) that fails. */
  nth: number;
}

export interface FaultState extends FaultPlan {
  /** File-system calls made since the fault was armed. */
  calls: number;
  /** The call that failed ("writeSync /ws/.glayer/objects/pack/tmp_pack_..."), or null if none did yet. */
  fired: string | null;
}

let fault: FaultState | null = null;
let wrapped: typeof real | null = null;

/** Arm a fault (replacing any armed one) or, with null, switch the seam off. Returns the live state. */
export function injectFault(plan: FaultPlan | null): FaultState | null {
  if (plan === null) {
    fault = null;
    install(real);
    return null;
  }
  fault = { ...plan, calls: 0, fired: null };
  install(wrapped ??= wrapAll());
  return fault;
}

/** The armed fault's state, or null when the seam is off. */
export function faultState(): FaultState | null {
  return fault;
}

const NOT_COUNTED = new Set(['exists', 'existsSync', 'watch', 'watchFile', 'unwatchFile', 'openAsBlob']);

/** The error the kernel would give, or null when this call is not the one to fail. */
function due(name: string, args: unknown[]): NodeJS.ErrnoException | null {
  if (!fault || NOT_COUNTED.has(name)) return null;
  if (++fault.calls !== fault.nth) return null;
  const syscall = name.replace(/Sync$/, '').replace(/^(readFile|writeFile|appendFile|createReadStream|createWriteStream)$/, 'open').toLowerCase();
  const p = args[0];
  const path = typeof p === 'string' ? p : Buffer.isBuffer(p) ? p.toString('latin1') : p instanceof URL ? p.pathname : undefined;
  const entry = [...getSystemErrorMap().entries()].find(([, [code]]) => code === fault!.errno);
  const text = entry ? entry[1][1] : 'injected fault';
  const e = new Error(`${fault.errno}: ${text}, ${syscall}${path !== undefined ? ` '${path}'` : ''}`) as NodeJS.ErrnoException;
  Object.assign(e, { errno: entry ? entry[0] : -5, code: fault.errno, syscall }, path !== undefined ? { path } : {});
  fault.fired = `${name} ${path ?? (typeof p === 'number' ? `fd ${p}` : '')}`.trim();
  return e;
}

function wrapFn(name: string, fn: (...a: unknown[]) => unknown): (...a: unknown[]) => unknown {
  if (name === 'closeSync') return (...a) => { const e = due(name, a); const r = fn(...a); if (e) throw e; return r; };
  if (name === 'createReadStream' || name === 'createWriteStream') {
    return (...a) => {
      const e = due(name, a);
      const s = fn(...a) as NodeJS.ReadableStream & { destroy(e: Error): void };
      if (e) process.nextTick(() => s.destroy(e));
      return s;
    };
  }
  if (/Sync$/.test(name)) return (...a) => { const e = due(name, a); if (e) throw e; return fn(...a); };
  // Callback style: the error goes to the callback, later, as node does.
  return (...a) => {
    const e = due(name, a);
    const cb = a[a.length - 1];
    if (e && typeof cb === 'function') {
      if (name === 'close') return fn(...a.slice(0, -1), () => cb(e));
      process.nextTick(() => (cb as (e: Error) => void)(e));
      return undefined;
    }
    return fn(...a);
  };
}

function wrapAll(): typeof real {
  const out: Record<string, unknown> = { ...real };
  for (const name of NAMES) out[name] = wrapFn(name, (real as unknown as Record<string, (...a: unknown[]) => unknown>)[name]);
  const p: Record<string, unknown> = { ...real.promises };
  for (const [name, fn] of Object.entries(real.promises)) {
    if (typeof fn !== 'function' || name === 'watch') continue;
    p[name] = (...a: unknown[]) => { const e = due(name, a); return e ? Promise.reject(e) : (fn as (...a: unknown[]) => unknown)(...a); };
  }
  out.promises = p;
  return out as unknown as typeof real;
}

export let access = real.access;
export let accessSync = real.accessSync;
export let appendFile = real.appendFile;
export let appendFileSync = real.appendFileSync;
export let chmod = real.chmod;
export let chmodSync = real.chmodSync;
export let chown = real.chown;
export let chownSync = real.chownSync;
export let close = real.close;
export let closeSync = real.closeSync;
export let copyFile = real.copyFile;
export let copyFileSync = real.copyFileSync;
export let cp = real.cp;
export let cpSync = real.cpSync;
export let createReadStream = real.createReadStream;
export let createWriteStream = real.createWriteStream;
export let exists = real.exists;
export let existsSync = real.existsSync;
export let fchmod = real.fchmod;
export let fchmodSync = real.fchmodSync;
export let fchown = real.fchown;
export let fchownSync = real.fchownSync;
export let fdatasync = real.fdatasync;
export let fdatasyncSync = real.fdatasyncSync;
export let fstat = real.fstat;
export let fstatSync = real.fstatSync;
export let fsync = real.fsync;
export let fsyncSync = real.fsyncSync;
export let ftruncate = real.ftruncate;
export let ftruncateSync = real.ftruncateSync;
export let futimes = real.futimes;
export let futimesSync = real.futimesSync;
export let lchown = real.lchown;
export let lchownSync = real.lchownSync;
export let link = real.link;
export let linkSync = real.linkSync;
export let lstat = real.lstat;
export let lstatSync = real.lstatSync;
export let lutimes = real.lutimes;
export let lutimesSync = real.lutimesSync;
export let mkdir = real.mkdir;
export let mkdirSync = real.mkdirSync;
export let mkdtemp = real.mkdtemp;
export let mkdtempSync = real.mkdtempSync;
export let open = real.open;
export let openAsBlob = real.openAsBlob;
export let openSync = real.openSync;
export let opendir = real.opendir;
export let opendirSync = real.opendirSync;
export let read = real.read;
export let readFile = real.readFile;
export let readFileSync = real.readFileSync;
export let readSync = real.readSync;
export let readdir = real.readdir;
export let readdirSync = real.readdirSync;
export let readlink = real.readlink;
export let readlinkSync = real.readlinkSync;
export let readv = real.readv;
export let readvSync = real.readvSync;
export let realpath = real.realpath;
export let realpathSync = real.realpathSync;
export let rename = real.rename;
export let renameSync = real.renameSync;
export let rm = real.rm;
export let rmSync = real.rmSync;
export let rmdir = real.rmdir;
export let rmdirSync = real.rmdirSync;
export let stat = real.stat;
export let statSync = real.statSync;
export let statfs = real.statfs;
export let statfsSync = real.statfsSync;
export let symlink = real.symlink;
export let symlinkSync = real.symlinkSync;
export let truncate = real.truncate;
export let truncateSync = real.truncateSync;
export let unlink = real.unlink;
export let unlinkSync = real.unlinkSync;
export let unwatchFile = real.unwatchFile;
export let utimes = real.utimes;
export let utimesSync = real.utimesSync;
export let watch = real.watch;
export let watchFile = real.watchFile;
export let write = real.write;
export let writeFile = real.writeFile;
export let writeFileSync = real.writeFileSync;
export let writeSync = real.writeSync;
export let writev = real.writev;
export let writevSync = real.writevSync;
export let promises = real.promises;

function install(f: typeof real): void {
  access = f.access;
  accessSync = f.accessSync;
  appendFile = f.appendFile;
  appendFileSync = f.appendFileSync;
  chmod = f.chmod;
  chmodSync = f.chmodSync;
  chown = f.chown;
  chownSync = f.chownSync;
  close = f.close;
  closeSync = f.closeSync;
  copyFile = f.copyFile;
  copyFileSync = f.copyFileSync;
  cp = f.cp;
  cpSync = f.cpSync;
  createReadStream = f.createReadStream;
  createWriteStream = f.createWriteStream;
  exists = f.exists;
  existsSync = f.existsSync;
  fchmod = f.fchmod;
  fchmodSync = f.fchmodSync;
  fchown = f.fchown;
  fchownSync = f.fchownSync;
  fdatasync = f.fdatasync;
  fdatasyncSync = f.fdatasyncSync;
  fstat = f.fstat;
  fstatSync = f.fstatSync;
  fsync = f.fsync;
  fsyncSync = f.fsyncSync;
  ftruncate = f.ftruncate;
  ftruncateSync = f.ftruncateSync;
  futimes = f.futimes;
  futimesSync = f.futimesSync;
  lchown = f.lchown;
  lchownSync = f.lchownSync;
  link = f.link;
  linkSync = f.linkSync;
  lstat = f.lstat;
  lstatSync = f.lstatSync;
  lutimes = f.lutimes;
  lutimesSync = f.lutimesSync;
  mkdir = f.mkdir;
  mkdirSync = f.mkdirSync;
  mkdtemp = f.mkdtemp;
  mkdtempSync = f.mkdtempSync;
  open = f.open;
  openAsBlob = f.openAsBlob;
  openSync = f.openSync;
  opendir = f.opendir;
  opendirSync = f.opendirSync;
  read = f.read;
  readFile = f.readFile;
  readFileSync = f.readFileSync;
  readSync = f.readSync;
  readdir = f.readdir;
  readdirSync = f.readdirSync;
  readlink = f.readlink;
  readlinkSync = f.readlinkSync;
  readv = f.readv;
  readvSync = f.readvSync;
  realpath = f.realpath;
  realpathSync = f.realpathSync;
  rename = f.rename;
  renameSync = f.renameSync;
  rm = f.rm;
  rmSync = f.rmSync;
  rmdir = f.rmdir;
  rmdirSync = f.rmdirSync;
  stat = f.stat;
  statSync = f.statSync;
  statfs = f.statfs;
  statfsSync = f.statfsSync;
  symlink = f.symlink;
  symlinkSync = f.symlinkSync;
  truncate = f.truncate;
  truncateSync = f.truncateSync;
  unlink = f.unlink;
  unlinkSync = f.unlinkSync;
  unwatchFile = f.unwatchFile;
  utimes = f.utimes;
  utimesSync = f.utimesSync;
  watch = f.watch;
  watchFile = f.watchFile;
  write = f.write;
  writeFile = f.writeFile;
  writeFileSync = f.writeFileSync;
  writeSync = f.writeSync;
  writev = f.writev;
  writevSync = f.writevSync;
  promises = f.promises;
}

export const NAMES = ["access","accessSync","appendFile","appendFileSync","chmod","chmodSync","chown","chownSync","close","closeSync","copyFile","copyFileSync","cp","cpSync","createReadStream","createWriteStream","exists","existsSync","fchmod","fchmodSync","fchown","fchownSync","fdatasync","fdatasyncSync","fstat","fstatSync","fsync","fsyncSync","ftruncate","ftruncateSync","futimes","futimesSync","lchown","lchownSync","link","linkSync","lstat","lstatSync","lutimes","lutimesSync","mkdir","mkdirSync","mkdtemp","mkdtempSync","open","openAsBlob","openSync","opendir","opendirSync","read","readFile","readFileSync","readSync","readdir","readdirSync","readlink","readlinkSync","readv","readvSync","realpath","realpathSync","rename","renameSync","rm","rmSync","rmdir","rmdirSync","stat","statSync","statfs","statfsSync","symlink","symlinkSync","truncate","truncateSync","unlink","unlinkSync","unwatchFile","utimes","utimesSync","watch","watchFile","write","writeFile","writeFileSync","writeSync","writev","writevSync"] as const;
