/**
 * The image config kept with a stack: what `import` read (Env, Cmd, Entrypoint, WorkingDir, User, Labels,
 * ExposedPorts, Volumes, os, architecture and any other field of the OCI config, without rootfs and history,
 * which `export` rebuilds from the layers) and what `export` writes.
 *
 * Where it lives: the ref `refs/glayer/config/STACK` names a commit whose tree holds one file, `config.json`.
 * Each change is a new commit on that ref (the config has a history, `git log refs/glayer/config/STACK`), and
 * it is an ordinary git object, so `git push REMOTE 'refs/glayer/*:refs/glayer/*'` carries it. `glayer push` and
 * `glayer fetch` move stacks (refs/heads) only, so they do not carry it yet: after a clone, a stack without a
 * config exports with the default one (linux/amd64, no command).
 */
import { UsageError } from '../errors.js';
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
