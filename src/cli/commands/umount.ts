import { Command, Option } from 'clipanion';
import { umount } from '../../api/umount.js';
import { GlayerCommand } from '../base.js';

export class UmountCommand extends GlayerCommand {
  static paths = [['umount']];
  static usage = Command.Usage({
    description: 'unmount the live view',
    details: `
      Unmounts the live view made by \`glayer mount-view --live\`. Changes not committed stay in the writable layer
      (\`upper/\`, in the \`.wh.\` form again); \`glayer mount-view\` makes a copied view, \`--live\` mounts it again.
    `,
    examples: [
      ['Unmount the live view', '$0 umount'],
      ['Unmount the live view at /mnt/rootfs', '$0 umount /mnt/rootfs'],
    ],
  });

  target = Option.String({ required: false, name: 'TARGET' });

  async run(): Promise<number> {
    const r = await umount({ cwd: this.cwd, target: this.target });
    this.warn(r.warnings);
    if (this.json) this.printJson(r);
    else this.out(`Unmounted ${r.view}\n`);
    return 0;
  }
}
