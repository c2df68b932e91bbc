import { Command, Option } from 'clipanion';
import { imageConfig } from '../../api/image-config.js';
import { GlayerCommand } from '../base.js';

export class ImageConfigCommand extends GlayerCommand {
  static paths = [['image-config']];
  static usage = Command.Usage({
    description: "show or change the image config kept with a stack (command, environment, ports, ...)",
    details: `
      Prints the image config that \`glayer export\` writes for the stack (the one \`glayer import\` read, or the
      default: linux/amd64, no command). \`--set\` and \`--unset\` change it; each change is recorded as a commit on
      \`refs/glayer/config/STACK\`. Keys: \`env.NAME\`, \`label.KEY\`, \`port.PORT[/tcp|udp]\`, \`volume.PATH\`,
      \`cmd\` and \`entrypoint\` (a JSON array, or a shell line run with /bin/sh -c), \`workdir\`, \`user\`, \`os\`,
      \`architecture\`, \`variant\`.
    `,
    examples: [
      ['Show the current stack\'s config', '$0 image-config'],
      ['Set the command and an environment variable', '$0 image-config --set \'cmd=["nginx","-g","daemon off;"]\' --set env.MODE=prod'],
      ['Expose a port, drop a label', '$0 image-config --set port.8080/tcp --unset label.maintainer'],
    ],
  });

  stack = Option.String('--stack', { description: 'The stack (default: the current one)' });
  set = Option.Array('--set', [], { description: 'KEY=VALUE to set (repeatable)' });
  unset = Option.Array('--unset', [], { description: 'KEY to remove (repeatable)' });

  async run(): Promise<number> {
    const r = await imageConfig({ cwd: this.cwd, stack: this.stack, set: this.set, unset: this.unset });
    if (this.json) this.printJson(r);
    else this.out(JSON.stringify(r.config, null, 2) + '\n');
    return 0;
  }
}
