/**
 * Deterministic workloads for the benchmark: a seeded PRNG, text-like file contents cut from a pseudo-text
 * pool (so they compress like source files do), the file tree, the edit sets, and `git fast-import` streams
 * that build layer stacks straight into a store (any commit is a layer; see the layer format).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';

/** mulberry32: small, fast, deterministic. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A buffer of pseudo-English text: lines of words from a generated vocabulary. */
export function textPool(seed: number, bytes: number): Buffer {
  const rnd = prng(seed);
  const letters = 'etaoinshrdlucmfwypvbgkqjxz';
  const vocab: string[] = [];
  for (let i = 0; i < 4000; i++) {
    const n = 2 + Math.floor(rnd() * rnd() * 10);
    let w = '';
    for (let k = 0; k < n; k++) w += letters[Math.floor(rnd() * rnd() * letters.length)];
    vocab.push(w);
  }
  const parts: string[] = [];
  let size = 0;
  while (size < bytes) {
    const words = 4 + Math.floor(rnd() * 12);
    let line = '  '.repeat(Math.floor(rnd() * 4));
    for (let k = 0; k < words; k++) line += (k ? ' ' : '') + vocab[Math.floor(rnd() * rnd() * vocab.length)];
    line += rnd() < 0.3 ? ';\n' : '\n';
    parts.push(line);
    size += line.length;
  }
  return Buffer.from(parts.join('').slice(0, bytes), 'latin1');
}

export interface FileSpec {
  path: string;
  /** '100644' or '100755'. */
  mode: string;
  size: number;
  /** Offset of the body in the pool. */
  off: number;
}

export interface Workload {
  files: FileSpec[];
  dirs: string[];
  pool: Buffer;
}

export interface WorkloadSize {
  files: number;
  /** Top-level directories; each holds `sub` leaf directories that hold the files. */
  top: number;
  sub: number;
}

const MIN_SIZE = 200;
const MAX_SIZE = 11_000; // uniform 200..11000: mean 5,600 B, 112 MB for 20,000 files

export function makeWorkload(seed: number, size: WorkloadSize): Workload {
  const rnd = prng(seed);
  const pool = textPool(seed ^ 0x5eed, 4 << 20);
  const dirs: string[] = [];
  for (let a = 0; a < size.top; a++) for (let b = 0; b < size.sub; b++) dirs.push(`d${pad(a, 2)}/s${pad(b, 2)}`);
  const files: FileSpec[] = [];
  for (let i = 0; i < size.files; i++) {
    const fsize = MIN_SIZE + Math.floor(rnd() * (MAX_SIZE - MIN_SIZE + 1));
    const off = Math.floor(rnd() * (pool.length - MAX_SIZE - 200));
    files.push({ path: `${dirs[i % dirs.length]}/f${pad(i, 5)}.txt`, mode: i % 97 === 13 ? '100755' : '100644', size: fsize, off });
  }
  return { files, dirs, pool };
}

export function pad(n: number, w: number): string {
  return String(n).padStart(w, '0');
}

/** The bytes of a file at a version (0 = the original); every file and version is distinct. */
export function content(w: Workload, f: FileSpec, version = 0): Buffer {
  const head = Buffer.from(`// ${f.path} version ${version}\n`, 'latin1');
  const bodyLen = Math.max(0, f.size - head.length);
  const off = (f.off + version * 131) % (w.pool.length - bodyLen);
  return Buffer.concat([head, w.pool.subarray(off, off + bodyLen)]);
}

export function blobOid(data: Buffer): string {
  return createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
}

/** What a directory must hold: path -> "mode oid". */
export type Manifest = Map<string, string>;

export function writeTree(w: Workload, dir: string): Manifest {
  const m: Manifest = new Map();
  for (const d of w.dirs) fs.mkdirSync(join(dir, d), { recursive: true });
  for (const f of w.files) {
    const data = content(w, f);
    fs.writeFileSync(join(dir, f.path), data, { mode: f.mode === '100755' ? 0o755 : 0o644 });
    fs.chmodSync(join(dir, f.path), f.mode === '100755' ? 0o755 : 0o644);
    m.set(f.path, `${f.mode} ${blobOid(data)}`);
  }
  return m;
}

/** Hash everything under `dir` (regular files, symlinks) into a manifest; `skip` names top-level entries to ignore. */
export function hashDir(dir: string, skip: readonly string[] = []): Manifest {
  const m: Manifest = new Map();
  const walk = (abs: string, rel: string): void => {
    for (const e of fs.readdirSync(abs, { withFileTypes: true })) {
      if (rel === '' && skip.includes(e.name)) continue;
      const a = join(abs, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(a, r);
      else if (e.isSymbolicLink()) m.set(r, `120000 ${blobOid(fs.readlinkSync(a, { encoding: 'buffer' }))}`);
      else if (e.isFile()) {
        const st = fs.statSync(a);
        m.set(r, `${st.mode & 0o100 ? '100755' : '100644'} ${blobOid(fs.readFileSync(a))}`);
      } else m.set(r, 'special');
    }
  };
  walk(dir, '');
  return m;
}

/** '' when equal, else a short description of the first differences. */
export function compareManifests(want: Manifest, got: Manifest): string {
  const out: string[] = [];
  for (const [p, v] of want) {
    const g = got.get(p);
    if (g === undefined) out.push(`missing ${p}`);
    else if (g !== v) out.push(`differs ${p} (want ${v}, got ${g})`);
    if (out.length >= 5) break;
  }
  for (const p of got.keys()) {
    if (out.length >= 5) break;
    if (!want.has(p)) out.push(`extra ${p}`);
  }
  return out.length ? `${out.join('; ')}${out.length >= 5 ? '; ...' : ''} (want ${want.size} files, got ${got.size})` : '';
}

// ---- edit sets ----------------------------------------------------------------------------------------------

export interface EditSet {
  modified: FileSpec[];
  deleted: FileSpec[];
  added: FileSpec[];
}

/** Distinct files picked at random: `mod` to modify, `del` to delete, and `add` new files in existing directories. */
export function makeEditSet(w: Workload, seed: number, mod: number, del: number, add: number): EditSet {
  const rnd = prng(seed);
  const idx = w.files.map((_, i) => i);
  for (let i = idx.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  const modified = idx.slice(0, mod).map((i) => w.files[i]);
  const deleted = idx.slice(mod, mod + del).map((i) => w.files[i]);
  const added: FileSpec[] = [];
  for (let i = 0; i < add; i++) {
    const size = MIN_SIZE + Math.floor(rnd() * (MAX_SIZE - MIN_SIZE + 1));
    added.push({ path: `${w.dirs[Math.floor(rnd() * w.dirs.length)]}/n${pad(i, 5)}.txt`, mode: '100644', size, off: Math.floor(rnd() * (w.pool.length - MAX_SIZE - 200)) });
  }
  return { modified, deleted, added };
}

/** Apply the edit set (forward) or undo it (reverse) in a work tree; returns the manifest it leads to. */
export function applyEdits(w: Workload, dir: string, e: EditSet, reverse: boolean, base: Manifest): Manifest {
  const write = (f: FileSpec, version: number): void => {
    fs.writeFileSync(join(dir, f.path), content(w, f, version), { mode: 0o644 });
    fs.chmodSync(join(dir, f.path), f.mode === '100755' ? 0o755 : 0o644);
  };
  for (const f of e.modified) write(f, reverse ? 0 : 1);
  for (const f of e.deleted) {
    if (reverse) write(f, 0);
    else fs.rmSync(join(dir, f.path));
  }
  for (const f of e.added) {
    if (reverse) fs.rmSync(join(dir, f.path));
    else write(f, 0);
  }
  return editedManifest(w, e, reverse, base);
}

export function editedManifest(w: Workload, e: EditSet, reverse: boolean, base: Manifest): Manifest {
  if (reverse) return base;
  const m = new Map(base);
  for (const f of e.modified) m.set(f.path, `${f.mode} ${blobOid(content(w, f, 1))}`);
  for (const f of e.deleted) m.delete(f.path);
  for (const f of e.added) m.set(f.path, `${f.mode} ${blobOid(content(w, f, 0))}`);
  return m;
}

// ---- fast-import streams ------------------------------------------------------------------------------------

const WHO = 'Bench <bench@example.com>';

/** Appends to a fast-import stream file. */
export class ImportStream {
  private readonly fd: number;
  private t = 1_700_000_000;
  constructor(readonly file: string) { this.fd = fs.openSync(file, 'w'); }
  raw(s: string | Buffer): void { if (typeof s === 'string') fs.writeSync(this.fd, s); else fs.writeSync(this.fd, s); }
  blob(mark: number, data: Buffer): void {
    this.raw(`blob\nmark :${mark}\ndata ${data.length}\n`);
    this.raw(data);
    this.raw('\n');
  }
  /** A commit whose tree is exactly `entries` (mode, dataref, path); `from` null makes a root commit. */
  commit(ref: string, mark: number, from: string | null, message: string, entries: Array<[string, string, string]>): void {
    this.t++;
    this.raw(`commit ${ref}\nmark :${mark}\ncommitter ${WHO} ${this.t} +0000\ndata ${Buffer.byteLength(message)}\n${message}\n`);
    if (from) this.raw(`from ${from}\n`);
    this.raw('deleteall\n');
    let s = '';
    for (const [mode, ref2, path] of entries) s += `M ${mode} ${ref2} ${path}\n`;
    this.raw(s + '\n');
  }
  close(): void { fs.closeSync(this.fd); }
}
