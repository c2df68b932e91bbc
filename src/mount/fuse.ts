/**
 * fuse-overlayfs (Debian and Fedora package it): a user-space overlay, for when the process may not mount the
 * kernel's. Its lower directories can keep glayer's `.wh.` markers as they are; as root it writes the same
 * whiteouts in the upper directory as the kernel does (0/0 character devices, and for an opaque directory the
 * xattr plus a `.wh..wh..opq` file). Unmounted with fusermount3 (or fusermount).
 */
import * as fs from '../sys/fs.js';
import { type Backend, checkOptionPath, onPath, run } from './backend.js';

const fusermount = (): string => (onPath('fusermount3') ? 'fusermount3' : 'fusermount');

export const fuseBackend: Backend = {
  name: 'fuse',
  form: 'f',
  unavailable() {
    if (process.platform !== 'linux') return `fuse-overlayfs needs Linux (this is ${process.platform})`;
    if (!onPath('fuse-overlayfs')) return "fuse-overlayfs is not installed (apt-get install fuse-overlayfs)";
    if (!onPath('fusermount3') && !onPath('fusermount')) return 'fusermount3 is not installed (apt-get install fuse3)';
    if (!fs.existsSync('/dev/fuse')) return '/dev/fuse is missing (no FUSE in this kernel or container)';
    return null;
  },
  mount(spec) {
    for (const p of [spec.upper, spec.work, spec.target]) checkOptionPath(p);
    // The daemon detaches once the mount is in place, so the mount exists, complete, when this returns.
    run('fuse-overlayfs', ['-o', `lowerdir=${spec.lowers.join(':')},upperdir=${spec.upper},workdir=${spec.work}`, spec.target], spec.cwd);
  },
  umount(target, lazy) {
    run(fusermount(), lazy ? ['-u', '-z', target] : ['-u', target]);
  },
  owns(fstype) { return fstype === 'fuse.fuse-overlayfs'; },
};
