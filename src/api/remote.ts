/**
 * `remote add|remove|list`: named remotes, kept in the store's git config as git keeps them
 * (`[remote "origin"] url = ... fetch = +refs/heads/*:refs/remotes/origin/*`), so native git sees them too.
 * Also where a SOURCE argument (a remote's name, a URL or a path) is resolved for the other verbs.
 */
import { resolve } from 'node:path';
import { GlayerError, UsageError } from '../errors.js';
import { deleteRef, listRefs } from '../store/refs.js';
import {
  addRemoteConfig, listRemoteConfigs, looksLikeUrl, readUpstream, removeRemoteConfig, safeUrl, transportFor,
  type Transport,
} from '../store/remote.js';
import { withWorkspace, type Workspace } from '../workspace/workspace.js';
import type { WorkspaceOptions } from './types.js';

export class UnknownRemoteError extends GlayerError {
  constructor(name: string, known: string[]) {
    super('E_UNKNOWN_REMOTE', `no remote named '${name}'${known.length ? ` (known: ${known.join(', ')})` : ''}; add one with 'glayer remote add ${name} URL'`, { name, known });
  }
}

export interface RemoteInfo { name: string; url: string }

/** Where a remote is, ready for a transport: local paths are made absolute. */
function normalizeUrl(url: string, cwd: string): string {
  const t = transportFor(url, cwd);
  return t.kind === 'local' && !/^file:\/\//i.test(url) ? resolve(cwd, url) : url;
}

export interface RemoteAddOptions extends WorkspaceOptions { name: string; url: string }

export async function remoteAdd(opts: RemoteAddOptions): Promise<RemoteInfo> {
  const cwd = opts.cwd ?? process.cwd();
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(opts.name) || opts.name.endsWith('.lock')) throw new UsageError(`invalid remote name: ${opts.name}`);
  if (opts.url === '') throw new UsageError('a remote needs a URL or a path');
  return withWorkspace(cwd, async (ws) => {
    const known = await listRemoteConfigs(ws.gitdir);
    if (known.some((r) => r.name === opts.name)) {
      throw new GlayerError('E_REMOTE_EXISTS', `remote '${opts.name}' already exists (${safeUrl(known.find((r) => r.name === opts.name)!.url)}); remove it first`, { name: opts.name });
    }
    const url = normalizeUrl(opts.url, cwd);
    await addRemoteConfig(ws.gitdir, opts.name, url);
    return { name: opts.name, url: safeUrl(url) };
  });
}

export interface RemoteRemoveOptions extends WorkspaceOptions { name: string }

/** Forget a remote and its remote-tracking refs (the layers stay in the store). */
export async function remoteRemove(opts: RemoteRemoveOptions): Promise<RemoteInfo> {
  return withWorkspace(opts.cwd ?? process.cwd(), async (ws) => {
    const known = await listRemoteConfigs(ws.gitdir);
    const r = known.find((x) => x.name === opts.name);
    if (!r) throw new UnknownRemoteError(opts.name, known.map((x) => x.name));
    await removeRemoteConfig(ws.gitdir, opts.name);
    // Its remote-tracking stacks and image configs, loose or packed, each under its lock (with its reflog).
    for (const prefix of [`refs/remotes/${opts.name}/`, `refs/glayer/remote-config/${opts.name}/`]) {
      for (const [ref, oid] of listRefs(ws.gitdir, prefix)) deleteRef(ws.gitdir, ref, oid);
    }
    return { name: r.name, url: safeUrl(r.url) };
  });
}

export async function remoteList(opts: WorkspaceOptions = {}): Promise<RemoteInfo[]> {
  return withWorkspace(opts.cwd ?? process.cwd(), async (ws) => {
    return (await listRemoteConfigs(ws.gitdir)).map((r) => ({ name: r.name, url: safeUrl(r.url) }));
  }, { lock: false });
}

/** A resolved SOURCE: the transport, and the remote's name when SOURCE named one. */
export interface Source { name: string | null; url: string; transport: Transport }

/**
 * Resolve SOURCE: a configured remote's name (in `gitdir`'s config, when there is one), else a URL or a path.
 * A bare word that names no remote and no existing path is an error naming the known remotes.
 */
export async function resolveSource(gitdir: string | null, source: string, cwd: string): Promise<Source> {
  const known = gitdir ? await listRemoteConfigs(gitdir) : [];
  const hit = known.find((r) => r.name === source);
  if (hit) return { name: hit.name, url: hit.url, transport: transportFor(hit.url, cwd) };
  const { existsSync } = await import('node:fs');
  if (looksLikeUrl(source) || existsSync(resolve(cwd, source))) {
    const url = normalizeUrl(source, cwd);
    return { name: null, url, transport: transportFor(url, cwd) };
  }
  throw new UnknownRemoteError(source, known.map((r) => r.name));
}

/**
 * The remote a stack talks to by default: its upstream's remote, else `origin`, else the only remote.
 * Returns null when the workspace has no remote at all.
 */
export async function defaultRemote(ws: Workspace, stack: string): Promise<string | null> {
  const up = await readUpstream(ws.gitdir, stack);
  if (up) return up.remote;
  const known = await listRemoteConfigs(ws.gitdir);
  if (known.some((r) => r.name === 'origin')) return 'origin';
  return known.length === 1 ? known[0].name : null;
}

export function stackName(ref: string): string {
  return ref.replace(/^refs\/heads\//, '');
}
