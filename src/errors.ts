/**
 * Errors carry a stable `code` and structured `data`, in the manner of isomorphic-git's errors.
 * A code is never reused for another meaning. `user` errors are the caller's mistake (bad input, a refused
 * layer, a busy workspace): the CLI prints them as one line without a stack. Anything else is a bug.
 */
export class GlayerError extends Error {
  readonly code: string;
  readonly data: Record<string, unknown>;
  /** Exit status the CLI uses for this error. */
  readonly exitCode: number;
  constructor(code: string, message: string, data: Record<string, unknown> = {}, exitCode = 2) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.data = data;
    this.exitCode = exitCode;
  }
}

export class NotAWorkspaceError extends GlayerError {
  constructor(dir: string) {
    super('E_NOT_WORKSPACE', `not a glayer workspace (or any parent up to /): ${dir}`, { dir });
  }
}

export class WorkspaceExistsError extends GlayerError {
  constructor(dir: string) {
    super('E_WORKSPACE_EXISTS', `a glayer workspace already exists at ${dir}`, { dir });
  }
}

export class UnknownTemplateError extends GlayerError {
  constructor(name: string, known: string[]) {
    super('E_UNKNOWN_TEMPLATE', `unknown template '${name}' (known: ${known.join(', ')})`, { name, known });
  }
}

/** A layer (a commit's tree, or the writable layer) breaks the format or safety rules. */
export class InvalidLayerError extends GlayerError {
  constructor(layer: string, path: string, reason: string) {
    super('E_INVALID_LAYER', `invalid layer ${layer}: ${path === '' ? '/' : brief(path)}: ${reason}`, { layer, path: display(path), reason });
  }
}

/** A path that would leave the store, the writable layer or the view, or go through a symlink. */
export class UnsafePathError extends GlayerError {
  constructor(path: string, reason: string) {
    super('E_UNSAFE_PATH', `refusing unsafe path ${brief(path)}: ${reason}`, { path: display(path), reason });
  }
}

/** A user file whose name is reserved for whiteout markers cannot be stored in a layer. */
export class ReservedNameError extends GlayerError {
  constructor(paths: string[]) {
    super(
      'E_RESERVED_NAME',
      `cannot commit ${paths.map(display).join(', ')}: names starting with '.wh.' are reserved for whiteout markers; rename ${paths.length === 1 ? 'it' : 'them'}`,
      { paths: paths.map(display) },
    );
  }
}

export class NothingToCommitError extends GlayerError {
  constructor() {
    super('E_NOTHING_TO_COMMIT', 'nothing to commit: the writable layer has no changes', {}, 1);
  }
}

export class ObjectError extends GlayerError {
  constructor(oid: string, reason: string) {
    super('E_OBJECT', `object ${oid} is ${reason}`, { oid, reason });
  }
}

export class UnknownLayerError extends GlayerError {
  constructor(name: string, reason = 'unknown layer') {
    super('E_UNKNOWN_LAYER', `${reason}: ${name}`, { name });
  }
}

export class TargetNotEmptyError extends GlayerError {
  constructor(dir: string) {
    super('E_TARGET_NOT_EMPTY', `${dir} is not empty and is not this workspace's view (use --force to replace its contents)`, { dir });
  }
}

export class LockedError extends GlayerError {
  constructor(lock: string, pid: number | null) {
    super('E_LOCKED', `another glayer process${pid ? ` (pid ${pid})` : ''} is writing this workspace; lock ${lock}`, { lock, pid });
  }
}

export class UsageError extends GlayerError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('E_USAGE', message, data);
  }
}

export class IoError extends GlayerError {
  constructor(path: string, cause: NodeJS.ErrnoException) {
    super('E_IO', `${brief(path)}: ${ERRNO_TEXT[cause.code ?? ''] ?? (cause.code ? cause.code.toLowerCase() : cause.message)}`, { path: display(path), errno: cause.code });
  }
}

/** Internal paths are byte strings (latin1); show them as UTF-8 where they decode. */
export function display(path: string): string {
  return Buffer.from(path, 'latin1').toString('utf8');
}

const ERRNO_TEXT: Record<string, string> = {
  EACCES: 'permission denied', EPERM: 'operation not permitted', ENOENT: 'no such file or directory',
  ENOSPC: 'no space left on device', EMFILE: 'too many open files', ENAMETOOLONG: 'name too long',
  EROFS: 'read-only file system', ENOTDIR: 'not a directory', EISDIR: 'is a directory', EEXIST: 'already exists',
  ELOOP: 'too many levels of symbolic links', EIO: 'input/output error', EDQUOT: 'disk quota exceeded',
};

/** A path for a one-line message: very long ones (a tree 10,000 directories deep) keep their two ends. */
export function brief(path: string): string {
  const d = display(path);
  return d.length <= 200 ? d : `${d.slice(0, 60)}...${d.slice(-120)}`;
}

/** A history rewrite (squash, reset) asked for something the stack's shape does not allow. */
export class HistoryError extends GlayerError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('E_HISTORY', message, data);
  }
}

/** A tag or stack that already exists (without -f), or one that is missing or in use. */
export class RefExistsError extends GlayerError {
  constructor(kind: 'tag' | 'stack', name: string) {
    super('E_REF_EXISTS', `${kind} '${name}' already exists${kind === 'tag' ? ' (use -f to move it)' : ''}`, { kind, name });
  }
}

export class UnknownRefError extends GlayerError {
  constructor(kind: 'tag' | 'stack', name: string) {
    super('E_UNKNOWN_REF', `no such ${kind}: ${name}`, { kind, name });
  }
}

/** The writable layer has changes that an operation would lose or that clash with it. */
export class DirtyError extends GlayerError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('E_DIRTY', message, data, 1);
  }
}

/**
 * An image (OCI layout, archive or tarball) that glayer refuses: a digest mismatch, a missing blob, an unsafe
 * or malformed tar entry. Names the image part (`layer sha256:...`, `manifest`, ...) and, for an entry, its path.
 */
export class ImageError extends GlayerError {
  constructor(where: string, reason: string, entry?: string) {
    super('E_IMAGE', `invalid image: ${where}${entry !== undefined ? `: entry ${JSON.stringify(brief(entry))}` : ''}: ${reason}`, { where, reason, ...(entry !== undefined ? { entry: display(entry) } : {}) });
  }
}

/** `glayer serve`: a request's path that cannot name anything in a layer (absolute, `..`, NUL, empty component). */
export class BadPathError extends GlayerError {
  constructor(path: string, reason: string) {
    super('E_BAD_PATH', `${JSON.stringify(path)}: ${reason}`, { path });
  }
}

/** `glayer serve`: a path that is not in the union as of the layer asked about. */
export class NoSuchPathError extends GlayerError {
  constructor(path: string, layer: string) {
    super('E_NO_SUCH_PATH', `${path}: not in the union as of ${layer === 'upper' ? 'the writable layer' : layer.slice(0, 12)}`, { path, layer });
  }
}
