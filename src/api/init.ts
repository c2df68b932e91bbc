/** `init`: a new workspace: the store, an empty writable layer, and a base layer from a template. */
import * as fs from '../sys/fs.js';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UnknownTemplateError, UsageError, WorkspaceExistsError } from '../errors.js';
import { scanTree } from '../fs/scan.js';
import { addLayerObjects } from './layer-objects.js';
import { checkRefName } from '../store/refs.js';
import { Store } from '../store/store.js';
import { STORE_DIR, UPPER_DIR, Workspace } from '../workspace/workspace.js';
import { Index, saveIndex, indexPath } from '../fs/index-file.js';
import { startFrom } from './fetch.js';
import { importInto } from './import.js';
import { isImageRef, parseImageRef } from '../image/transport.js';
import { writeSymbolicHead } from '../store/refs.js';
import type { Progress } from './types.js';

/** templates/ of the package: beside dist/ (the bundle, dist/glayer.cjs) or two levels up (dist/api/, src/api/). */
export const TEMPLATES_DIR = ['../templates/', '../../templates/']
  .map((rel) => fileURLToPath(new URL(rel, import.meta.url)))
  .find((dir) => fs.existsSync(join(dir, 'aufs-demo', 'template.json'))) ?? fileURLToPath(new URL('../../templates/', import.meta.url));

export interface TemplateInfo { name: string; description: string; files: number }

export function listTemplates(): TemplateInfo[] {
  const out: TemplateInfo[] = [];
  for (const name of fs.readdirSync(TEMPLATES_DIR).sort()) {
    const meta = join(TEMPLATES_DIR, name, 'template.json');
    if (!fs.existsSync(meta)) continue;
    const { description } = JSON.parse(fs.readFileSync(meta, 'utf8')) as { description: string };
    let files = 0;
    const count = (d: string): void => {
      if (!fs.existsSync(d)) return;
      for (const e of fs.readdirSync(d, { withFileTypes: true })) { if (e.isDirectory()) count(join(d, e.name)); else files++; }
    };
    count(join(TEMPLATES_DIR, name, 'files'));
    out.push({ name, description, files });
  }
  return out;
}

export interface InitOptions {
  /** Directory of the new workspace (created if missing). Default: the current directory. */
  dir?: string;
  cwd?: string;
  /** Template for the base layer; default: none (an empty stack). */
  template?: string;
  /** Name of the stack (branch). Default: main (with `from`: the source stack's name). */
  stack?: string;
  /**
   * Start the stack on another stack: `SOURCE#REF`, SOURCE a URL, a path or a remote's name (of the workspace
   * around `cwd`), REF a branch or tag (default: the source's HEAD branch). Its layers are fetched, checked and
   * shared, never rewritten; SOURCE becomes the remote `origin` and the stack's upstream.
   */
  from?: string;
  /** With an image `from`: os/arch[/variant] to pick from a multi-platform index. */
  platform?: string;
  onProgress?: Progress;
}

export interface InitResult { root: string; store: string; ref: string; head: string | null; template: string | null; from?: string | null }

export async function init(opts: InitOptions = {}): Promise<InitResult> {
  const root = resolve(opts.cwd ?? process.cwd(), opts.dir ?? '.');
  let ref = `refs/heads/${opts.stack ?? 'main'}`;
  if (opts.from !== undefined && opts.template !== undefined) throw new UsageError('--from and --template exclude each other: a stack starts from one base');
  let from: string | null = null;
  try { checkRefName(ref); } catch { throw new UsageError(`invalid stack name: ${opts.stack}`); }
  let templateDir: string | null = null;
  if (opts.template !== undefined) {
    const known = listTemplates().map((t) => t.name);
    if (!known.includes(opts.template)) throw new UnknownTemplateError(opts.template, known);
    templateDir = join(TEMPLATES_DIR, opts.template, 'files');
  }
  if (fs.existsSync(join(root, STORE_DIR))) throw new WorkspaceExistsError(root);
  fs.mkdirSync(root, { recursive: true });
  const gitdir = join(root, STORE_DIR);
  // Build the store under a temporary name so a failed init leaves nothing half made.
  const tmp = join(root, `${STORE_DIR}.init-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  let head: string | null = null;
  try {
    const store = await Store.init(tmp, opts.stack ?? 'main');
    if (templateDir && fs.existsSync(templateDir)) head = await commitDirectory(store, templateDir, `base: template ${opts.template}`);
    if (opts.from !== undefined && isImageRef(opts.from)) {
      // An image (oci:, oci-archive:, docker-archive:, tar:): its layers become the stack (default name main).
      const r = await importInto(store, parseImageRef(opts.from), { stack: opts.stack ?? 'main', platform: opts.platform, onProgress: opts.onProgress, source: opts.from });
      ({ head, ref } = r);
      writeSymbolicHead(tmp, ref);
      from = opts.from;
    } else if (opts.from !== undefined) ({ head, ref, url: from } = await startFrom(store, opts.from, { cwd: opts.cwd ?? process.cwd(), stack: opts.stack, onProgress: opts.onProgress }));
    store.close();
    fs.renameSync(tmp, gitdir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  fs.mkdirSync(join(root, UPPER_DIR), { recursive: true });
  const ws = new Workspace(root);
  ws.writeState({ version: 1, view: null, lower: head });
  saveIndex(indexPath(gitdir, 'upper'), ws.store.objects, null, new Index());
  ws.close();
  return { root, store: gitdir, ref, head, template: opts.template ?? null, ...(opts.from !== undefined ? { from } : {}) };
}

/** Commit a plain directory (no markers) as one layer on an empty stack. */
async function commitDirectory(store: Store, dir: string, message: string): Promise<string | null> {
  const scan = scanTree(dir, new Index(), store.objects, { markers: false });
  if (!scan.root || scan.root === '4b825dc642cb6eb9a060e54bf8d69288fbee4904') return null;
  const w = store.objects.writer();
  await addLayerObjects(store, w, scan.root, dir);
  const commit = store.makeCommit(w, scan.root, [], message);
  w.flush();
  store.moveStack(commit, null);
  return commit;
}
