/**
 * The kernel's overlayfs. Needs CAP_SYS_ADMIN (root), `mount`/`umount` (util-linux) and GNU tar (for the
 * whiteout devices and opaque xattrs of its lower directories, marks.ts). Options that keep the upper directory
 * in plain form, which is what glayer reads back: no redirects (a renamed lower directory is copied), no index,
 * no metacopy.
 */
import * as fs from '../sys/fs.js';
import { type Backend, checkOptionPath, onPath, run } from './backend.js';

/** CAP_SYS_ADMIN in the effective set (bit 21 of CapEff). */
function canMount(): boolean {
  if (process.platform !== 'linux') return false;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m !== null && (BigInt('0x' + m[1]) & (1n << 21n)) !== 0n;
  } catch {
    return false;
  }
}

export const kernelBackend: Backend = {
  name: 'kernel',
  form: 'k',
  unavailable() {
    if (process.platform !== 'linux') return `kernel overlayfs needs Linux (this is ${process.platform})`;
    if (!canMount()) return 'kernel overlayfs needs root (CAP_SYS_ADMIN)';
    for (const tool of ['mount', 'umount', 'tar', 'getfattr']) if (!onPath(tool)) return `kernel overlayfs needs '${tool}' (not found on PATH)`;
    let fsTypes = '';
    try { fsTypes = fs.readFileSync('/proc/filesystems', 'utf8'); } catch { /* unknown: try anyway */ }
    if (fsTypes && !/\toverlay$/m.test(fsTypes)) {
      // It may be a module not loaded yet; mount(8) loads it. Only refuse when modprobe is not possible either.
      if (!onPath('modprobe')) return 'the kernel has no overlay file system';
    }
    return null;
  },
  mount(spec) {
    for (const p of [spec.upper, spec.work, spec.target]) checkOptionPath(p);
    const opts = `lowerdir=${spec.lowers.join(':')},upperdir=${spec.upper},workdir=${spec.work},redirect_dir=off,index=off,metacopy=off`;
    if (opts.length > 4000) throw new Error(`internal error: overlay options too long (${opts.length} bytes)`);
    run('mount', ['-t', 'overlay', 'glayer', '-o', opts, spec.target], spec.cwd);
  },
  umount(target, lazy) {
    run('umount', lazy ? ['-l', target] : [target]);
  },
  owns(fstype) { return fstype === 'overlay'; },
};
