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
    super('E_IO', `${brief(path)}: ${ERRNO_TEXT[cause.code ?? ''] ?? (cause.code ? cause.code.toLowerCase() : cause.message)}`, { path: display(path), errno: cause.code }, systemExitCode(cause.code) ?? 2);
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
  ENFILE: 'too many open files in the system', EFBIG: 'file too large', EBUSY: 'device or resource busy',
  EXDEV: 'cross-device link', EMLINK: 'too many links', ENOMEM: 'out of memory', ESTALE: 'stale file handle',
  ETXTBSY: 'text file busy', ENXIO: 'no such device or address', EOVERFLOW: 'value too large', ENODEV: 'no such device',
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

/** Exit statuses of the operating system's refusals (sysexits.h): no space, I/O, limits; permission. */
export const EXIT_IO = 74;
export const EXIT_PERMISSION = 77;

const PERMISSION_ERRNOS = new Set(['EACCES', 'EPERM', 'EROFS']);
const IO_ERRNOS = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EMFILE', 'ENFILE', 'ENAMETOOLONG', 'ELOOP', 'EFBIG', 'ENOMEM', 'ENXIO', 'ESTALE', 'ETXTBSY', 'EBUSY', 'EXDEV', 'EMLINK', 'EOVERFLOW', 'ENODEV']);

/** The exit status for an errno the operating system gave (74 or 77), or null when it is not one of those. */
export function systemExitCode(errno: string | undefined): number | null {
  if (!errno) return null;
  if (PERMISSION_ERRNOS.has(errno)) return EXIT_PERMISSION;
  if (IO_ERRNOS.has(errno)) return EXIT_IO;
  return null;
}

/** Is `e` the operating system refusing (no space, read-only, permission, I/O error, a limit), not a bug? */
export function isSystemRefusal(e: unknown): boolean {
  if (e instanceof IoError || e instanceof SystemError) return systemExitCode(e.data.errno as string | undefined) !== null;
  if (e instanceof GlayerError) return false;
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && systemExitCode(code) !== null;
}

const VERBS: Record<string, string> = {
  open: 'opening', read: 'reading', write: 'writing', close: 'closing', fsync: 'syncing', fdatasync: 'syncing',
  mkdir: 'creating the directory', rmdir: 'removing', unlink: 'removing', rm: 'removing', rename: 'renaming',
  link: 'linking', symlink: 'creating the symlink', copyfile: 'copying to', copyFile: 'copying to',
  stat: 'reading', lstat: 'reading', fstat: 'reading', scandir: 'listing', readdir: 'listing', opendir: 'listing',
  readlink: 'reading', chmod: 'changing the mode of', fchmod: 'changing the mode of', utime: 'setting the times of',
  futime: 'setting the times of', lutime: 'setting the times of', chown: 'changing the owner of', lchown: 'changing the owner of',
  fchown: 'changing the owner of', ftruncate: 'truncating', truncate: 'truncating', spawn: 'starting',
};

/** What a path inside a workspace is, in words: "the store's pack", "the workspace lock", ... ('' if unknown). */
export function pathRole(path: string): string {
  const p = path.replace(/\\/g, '/');
  if (/\/\.glayer\/objects\/pack\//.test(p)) return "the store's pack";
  if (/\/\.glayer\/objects\//.test(p)) return "the store's objects";
  if (/\/\.glayer\/(refs\/|HEAD|packed-refs)/.test(p)) return "the stack's ref";
  if (/\/\.glayer\/glayer\/lock/.test(p)) return 'the workspace lock';
  if (/\/\.glayer\/glayer\/(index|unions)/.test(p)) return "glayer's caches";
  if (/\/\.glayer\/glayer\/state/.test(p)) return "the workspace's state";
  if (/\/\.glayer(\/|$)/.test(p)) return 'the store';
  if (/\/upper(\/|$)/.test(p)) return 'the writable layer';
  return '';
}

/**
 * The operating system refused a file-system call (no space left, a read-only file system, permission, an I/O
 * error, a limit): one line that says what happened, where, in words, exit 74 (I/O) or 77 (permission), as
 * sysexits.h has them. Never a bug report.
 */
export class SystemError extends GlayerError {
  constructor(cause: NodeJS.ErrnoException, fallbackPlace = '') {
    const errno = cause.code ?? 'EIO';
    const what = ERRNO_TEXT[errno] ?? errno.toLowerCase();
    const verb = VERBS[cause.syscall ?? ''] ?? (cause.syscall ? `${cause.syscall} on` : 'using');
    const path = typeof cause.path === 'string' ? cause.path : null;
    const role = path ? pathRole(path) : '';
    const where = path ? `${role ? role + ' ' : ''}${brief(path)}` : fallbackPlace || 'a file';
    super('E_SYSTEM', `${what} while ${verb} ${where}`, { errno, syscall: cause.syscall ?? null, path: path ? display(path) : null }, systemExitCode(errno) ?? EXIT_IO);
  }
}

/** Did a file-system call fail because the path is not there (as opposed to the system refusing or failing)? */
export function isAbsent(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** A system error from a call on a descriptor (write, fsync, close) names no path: give it the file's. */
export function withPath(e: unknown, path: string): unknown {
  const err = e as NodeJS.ErrnoException | null;
  if (err && typeof err === 'object' && typeof err.code === 'string' && err.path === undefined && !(err instanceof GlayerError)) err.path = path;
  return e;
}
