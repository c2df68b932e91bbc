/**
 * The image config kept with a stack: what `import` read (Env, Cmd, Entrypoint, WorkingDir, User, Labels,
 * ExposedPorts, Volumes, os, architecture and any other field of the OCI config, without rootfs and history,
 * which `export` rebuilds from the layers) and what `export` writes.
 *
 * Where it lives: the ref `refs/glayer/config/STACK` names a commit whose tree holds one file, `config.json`.
 * Each change is a new commit on that ref (the config has a history, `git log refs/glayer/config/STACK`), and
 * it is an ordinary git object. It travels with its stack: `glayer push` sends it (fast-forward only, unless
 * --force), `glayer fetch` brings it to `refs/glayer/remote-config/REMOTE/STACK` (outside refs/heads, refs/tags
 * and refs/remotes, so nothing lists it as a stack), `clone` sets it, `pull` fast-forwards it. A stack without
 * a config exports with the default one (linux/amd64, no command).
 */
import { GlayerError, ObjectError, UsageError } from '../errors.js';
import type { ImageConfig } from '../image/layout.js';
import { formatCommit } from '../store/commits.js';
import type { ObjectWriter } from '../store/objects.js';
import { checkRefName, readRef, updateRef } from '../store/refs.js';
import type { Store } from '../store/store.js';
import { withWorkspace } from '../workspace/workspace.js';
import { stackName } from './resolve.js';
import type { WorkspaceOptions } from './types.js';

export const CONFIG_FILE = 'config.json';

export function configRef(stack: string): string {
  return `refs/glayer/config/${stack}`;
}

/** Where `fetch` keeps the config of REMOTE's stack STACK (like refs/remotes/REMOTE/STACK for its layers). */
export function remoteConfigRef(remote: string, stack: string): string {
  return `refs/glayer/remote-config/${remote}/${stack}`;
}

/**
 * Check a config commit that came from a remote before a ref names it: each commit of its history is here, and
 * the top's tree holds `config.json`, a JSON object. Throws an ObjectError naming what is wrong.
 */
export function checkConfigCommit(store: Store, oid: string): void {
  const seen = new Set<string>();
  for (const todo = [oid]; todo.length;) {
    const c = todo.pop()!;
    if (seen.has(c)) continue;
    seen.add(c);
    if (!store.objects.has(c)) throw new ObjectError(c, 'missing (an image config commit)');
    todo.push(...store.readCommit(c).parents);
  }
  const tree = store.objects.readTree(store.readCommit(oid).tree);
  const e = tree.find((x) => x.name === CONFIG_FILE);
  if (!e || e.mode !== '100644') throw new ObjectError(oid, `not an image config (no ${CONFIG_FILE} in its tree)`);
  let v: unknown;
  try { v = JSON.parse(store.objects.readType(e.oid, 'blob').toString('utf8')); } catch (err) {
    if (err instanceof GlayerError) throw err;
    throw new ObjectError(e.oid, `not an image config (${CONFIG_FILE} is not JSON)`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ObjectError(e.oid, `not an image config (${CONFIG_FILE} is not a JSON object)`);
}

/** Point `ref` at `oid` (a config commit already checked), unless it is there already; returns whether it moved. */
export function setConfigRef(store: Store, ref: string, oid: string): boolean {
  const old = readRef(store.gitdir, ref);
  if (old === oid) return false;
  updateRef(store.gitdir, ref, oid, old);
  return true;
}

/** Move `refs/glayer/remote-config/REMOTE/STACK` to `oid` (skipped for a name git refuses); whether it moved. */
export function trackConfig(store: Store, remote: string, stack: string, oid: string): boolean {
  const ref = remoteConfigRef(remote, stack);
  try { checkRefName(ref); } catch { return false; }
  return setConfigRef(store, ref, oid);
}

/** Is commit `ancestor` in the history of commit `from` (every parent; only the local store is searched)? */
export function configBelow(store: Store, ancestor: string, from: string): boolean {
  if (!store.objects.has(ancestor)) return false;
  const seen = new Set<string>();
  for (const todo = [from]; todo.length;) {
    const c = todo.pop()!;
    if (c === ancestor) return true;
    if (seen.has(c) || !store.objects.has(c)) continue;
    seen.add(c);
    todo.push(...store.readCommit(c).parents);
  }
  return false;
}

export type ConfigPull = 'fast-forward' | 'up-to-date' | 'kept';

/**
 * After a pull or a clone: move the local config of `stack` to `fetched` (the remote's) when the local one is
 * absent or below it; keep a local one that is ahead or has diverged (`kept`, with a warning for the caller).
 */
export function followConfig(store: Store, stack: string, fetched: string): ConfigPull {
  const ref = configRef(stack);
  const local = readRef(store.gitdir, ref);
  if (local === fetched || (local !== null && configBelow(store, fetched, local))) return 'up-to-date';
  if (local !== null && !configBelow(store, local, fetched)) return 'kept';
  updateRef(store.gitdir, ref, fetched, local);
  return 'fast-forward';
}

/** The default config of a stack that has none. */
export function defaultConfig(): ImageConfig {
  return { architecture: 'amd64', os: 'linux', config: {} };
}

/** The config kept with `stack`, or null. */
export function readImageConfig(store: Store, stack: string): ImageConfig | null {
  const c = readRef(store.gitdir, configRef(stack));
  if (!c) return null;
  const tree = store.objects.readTree(store.readCommit(c).tree);
  const e = tree.find((x) => x.name === CONFIG_FILE);
  if (!e) return null;
  return JSON.parse(store.objects.readType(e.oid, 'blob').toString('utf8')) as ImageConfig;
}

/**
 * Add a config commit for `stack` to `w`; returns a function that moves the config ref once `w` is flushed.
 */
export function saveImageConfig(store: Store, w: ObjectWriter, stack: string, config: ImageConfig, message: string): () => void {
  const ref = configRef(stack);
  checkRefName(ref);
  const old = readRef(store.gitdir, ref);
  const blob = w.add('blob', Buffer.from(JSON.stringify(config, null, 2) + '\n', 'utf8'));
  const tree = w.add('tree', Buffer.concat([Buffer.from(`100644 ${CONFIG_FILE}\0`, 'latin1'), Buffer.from(blob, 'hex')]));
  const sig = store.signature('COMMITTER');
  const commit = w.add('commit', formatCommit({ tree, parents: old ? [old] : [], author: sig, committer: sig, message }));
  return () => updateRef(store.gitdir, ref, commit, old);
}

export interface ImageConfigOptions extends WorkspaceOptions {
  /** Default: the current stack. */
  stack?: string;
  /** KEY=VALUE settings (see applySetting). */
  set?: string[];
  /** KEYs to remove. */
  unset?: string[];
}

export interface ImageConfigResult { stack: string; config: ImageConfig; stored: boolean; changed: boolean }

const SCALAR: Record<string, string> = { workdir: 'WorkingDir', workingdir: 'WorkingDir', user: 'User', stopsignal: 'StopSignal' };
const LIST: Record<string, string> = { cmd: 'Cmd', entrypoint: 'Entrypoint' };

function splitKey(s: string): [string, string | null] {
  const eq = s.indexOf('=');
  return eq < 0 ? [s, null] : [s.slice(0, eq), s.slice(eq + 1)];
}

/**
 * One `--set` or `--unset`: `env.NAME=VALUE`, `label.KEY=VALUE`, `port.80/tcp`, `volume./data`,
 * `cmd=["a","b"]` (JSON) or `cmd=a shell line` (run with /bin/sh -c), `entrypoint=...`, `workdir=`, `user=`,
 * `os=`, `architecture=`, `variant=`.
 */
export function applySetting(cfg: ImageConfig, setting: string, unset: boolean): void {
  const [key, value] = splitKey(setting);
  const c = (cfg.config ??= {}) as Record<string, unknown>;
  const lower = key.toLowerCase();
  const dot = key.indexOf('.');
  const head = dot < 0 ? lower : lower.slice(0, dot);
  const sub = dot < 0 ? '' : key.slice(dot + 1);
  const need = (): string => {
    if (value === null) throw new UsageError(`--set ${key} needs a value (${key}=VALUE)`);
    return value;
  };
  if (dot >= 0 && sub === '') throw new UsageError(`empty name in '${key}'`);
  if (head === 'env' && dot >= 0) {
    const env = (Array.isArray(c.Env) ? c.Env : []) as string[];
    const rest = env.filter((e) => e.split('=')[0] !== sub);
    c.Env = unset ? rest : [...rest, `${sub}=${need()}`];
    if ((c.Env as string[]).length === 0) delete c.Env;
    return;
  }
  if ((head === 'label' || head === 'labels') && dot >= 0) {
    const labels = { ...((c.Labels as Record<string, string>) ?? {}) };
    if (unset) delete labels[sub]; else labels[sub] = need();
    if (Object.keys(labels).length) c.Labels = labels; else delete c.Labels;
    return;
  }
  if ((head === 'port' || head === 'exposedports') && dot >= 0) {
    if (!/^\d{1,5}(\/(tcp|udp|sctp))?$/.test(sub)) throw new UsageError(`invalid port '${sub}' (PORT[/tcp|udp|sctp])`);
    const p = sub.includes('/') ? sub : `${sub}/tcp`;
    const ports = { ...((c.ExposedPorts as Record<string, object>) ?? {}) };
    if (unset) delete ports[p]; else ports[p] = {};
    if (Object.keys(ports).length) c.ExposedPorts = ports; else delete c.ExposedPorts;
    return;
  }
  if ((head === 'volume' || head === 'volumes') && dot >= 0) {
    const vols = { ...((c.Volumes as Record<string, object>) ?? {}) };
    if (unset) delete vols[sub]; else vols[sub] = {};
    if (Object.keys(vols).length) c.Volumes = vols; else delete c.Volumes;
    return;
  }
  if (dot < 0 && lower in LIST) {
    const field = LIST[lower];
    if (unset) { delete c[field]; return; }
    const v = need();
    if (v.trim().startsWith('[')) {
      let arr: unknown;
      try { arr = JSON.parse(v); } catch { throw new UsageError(`${key}: not a JSON array: ${v}`); }
      if (!Array.isArray(arr) || arr.some((x) => typeof x !== 'string')) throw new UsageError(`${key}: a JSON array of strings, please`);
      c[field] = arr;
    } else {
      c[field] = ['/bin/sh', '-c', v];
    }
    return;
  }
  if (dot < 0 && lower in SCALAR) {
    if (unset) delete c[SCALAR[lower]]; else c[SCALAR[lower]] = need();
    return;
  }
  if (dot < 0 && (lower === 'os' || lower === 'architecture' || lower === 'variant')) {
    if (unset) delete cfg[lower]; else cfg[lower] = need();
    return;
  }
  throw new UsageError(`unknown image config key '${key}' (env.NAME, label.KEY, port.N/tcp, volume.PATH, cmd, entrypoint, workdir, user, os, architecture, variant)`);
}

/** Show, and with `set`/`unset` change, the image config kept with a stack. */
export async function imageConfig(opts: ImageConfigOptions): Promise<ImageConfigResult> {
  const changing = (opts.set?.length ?? 0) + (opts.unset?.length ?? 0) > 0;
  return withWorkspace(opts.cwd ?? process.cwd(), (ws) => {
    const store = ws.store;
    const stack = opts.stack ?? stackName(store.stackRef);
    try { checkRefName(configRef(stack)); } catch { throw new UsageError(`invalid stack name: ${stack}`); }
    if (opts.stack !== undefined && readRef(store.gitdir, `refs/heads/${stack}`) === null) throw new UsageError(`no stack named '${stack}'`);
    const stored = readImageConfig(store, stack);
    const config = stored ?? defaultConfig();
    if (!changing) return { stack, config, stored: stored !== null, changed: false };
    const before = JSON.stringify(config);
    for (const s of opts.unset ?? []) applySetting(config, s, true);
    for (const s of opts.set ?? []) applySetting(config, s, false);
    if (JSON.stringify(config) === before && stored) return { stack, config, stored: true, changed: false };
    const w = store.objects.writer();
    const move = saveImageConfig(store, w, stack, config, `image-config: ${[...(opts.set ?? []).map((s) => `set ${s}`), ...(opts.unset ?? []).map((s) => `unset ${s}`)].join(', ')}`);
    w.flush();
    move();
    return { stack, config, stored: true, changed: true };
  }, { lock: changing });
}
