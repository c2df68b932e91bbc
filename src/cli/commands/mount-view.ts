import { Command, Option } from 'clipanion';
import { mountView } from '../../api/mount-view.js';
import { GlayerCommand } from '../base.js';

export class MountViewCommand extends GlayerCommand {
  static paths = [['mount-view']];
  static usage = Command.Usage({
    description: 'materialize the union of the stack and the writable layer',
    details: `
      Writes the union view into TARGET (default: the workspace's view, \`view/\` at first). Run again, it refreshes
      the view in place, writing only the paths that changed; edits made in the view are first recorded in the
      writable layer. A new TARGET is built beside it and renamed into place. A non-empty directory that is not
      the workspace's view is refused unless \`--force\`, which replaces its contents.
    `,
    examples: [
      ['Mount the view at view/ in the workspace', '$0 mount-view'],
      ['Mount it somewhere else (the old view stays as a plain copy)', '$0 mount-view /tmp/rootfs'],
      ['Replace the contents of an existing directory', '$0 mount-view --force ./out'],
    ],
  });

  target = Option.String({ required: false, name: 'TARGET' });
  force = Option.Boolean('--force,-f', false, { description: 'Replace the contents of a non-empty TARGET' });

  async run(): Promise<number> {
    const r = await mountView({ cwd: this.cwd, target: this.target, force: this.force, onProgress: this.progress });
    this.warn(r.warnings);
    if (this.json) this.printJson(r);
    else {
      this.out(r.refreshed ? `View refreshed at ${r.view} (${r.written} entries written)\n` : `View mounted at ${r.view} (${r.written} entries written)\n`);
      if (r.detached) this.out(`The previous view ${r.detached} is no longer tracked\n`);
    }
    return 0;
  }
}
