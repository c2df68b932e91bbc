import { Command, Option } from 'clipanion';
import { mountView } from '../../api/mount-view.js';
import { GlayerCommand } from '../base.js';
import { UsageError } from '../../errors.js';

export class MountViewCommand extends GlayerCommand {
  static paths = [['mount-view']];
  static usage = Command.Usage({
    description: 'materialize the union of the stack and the writable layer',
    details: `
      Writes the union view into TARGET (default: the workspace's view, \`view/\` at first). Run again, it refreshes
      the view in place, writing only the paths that changed; edits made in the view are first recorded in the
      writable layer. A new TARGET is built beside it and renamed into place. A non-empty directory that is not
      the workspace's view is refused unless \`--force\`, which replaces its contents.

      With \`--live\` the union is mounted instead of copied: the kernel's overlayfs when the process may mount
      (root), else fuse-overlayfs. Each layer is extracted once into the store's layer cache and shared by every
      view; the writable layer is the mount's upper directory, so \`status\`, \`diff\` and \`commit\` read only
      the changes. Run again, it remounts (picking up direct edits to \`upper/\`). \`glayer umount\` removes it.
    `,
    examples: [
      ['Mount the view at view/ in the workspace', '$0 mount-view'],
      ['Mount it somewhere else (the old view stays as a plain copy)', '$0 mount-view /tmp/rootfs'],
      ['Replace the contents of an existing directory', '$0 mount-view --force ./out'],
      ['Mount the union live (overlayfs) at view/', '$0 mount-view --live'],
      ['Mount it live with fuse-overlayfs somewhere else', '$0 mount-view --live --backend fuse /mnt/rootfs'],
    ],
  });

  target = Option.String({ required: false, name: 'TARGET' });
  force = Option.Boolean('--force,-f', false, { description: 'Replace the contents of a non-empty TARGET' });
  live = Option.Boolean('--live', false, { description: 'Mount the union (overlayfs) instead of copying it' });
  backend = Option.String('--backend', { description: 'With --live: kernel or fuse (default: kernel when allowed, else fuse)' });

  async run(): Promise<number> {
    if (this.backend !== undefined && this.backend !== 'kernel' && this.backend !== 'fuse') throw new UsageError(`unknown backend '${this.backend}' (kernel or fuse)`);
    if (this.backend !== undefined && !this.live) throw new UsageError('--backend needs --live');
    const r = await mountView({ cwd: this.cwd, target: this.target, force: this.force, live: this.live, backend: this.backend, onProgress: this.progress });
    this.warn(r.warnings);
    if (this.json) this.printJson(r);
    else {
      if (r.live) this.out(`Live view mounted at ${r.view} (${r.live.backend}, ${r.live.lowers} lower ${r.live.lowers === 1 ? 'directory' : 'directories'}, ${r.live.extracted} extracted into the layer cache)\n`);
      else this.out(r.refreshed ? `View refreshed at ${r.view} (${r.written} entries written)\n` : `View mounted at ${r.view} (${r.written} entries written)\n`);
      if (r.detached) this.out(`The previous view ${r.detached} is no longer tracked\n`);
    }
    return 0;
  }
}
