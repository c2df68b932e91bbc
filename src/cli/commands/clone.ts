import { Command, Option } from 'clipanion';
import { clone } from '../../api/clone.js';
import { GlayerCommand } from '../base.js';

export class CloneCommand extends GlayerCommand {
  static paths = [['clone']];
  static usage = Command.Usage({
    category: 'Sharing',
    description: 'make a workspace from a remote stack, with its view mounted',
    details: `
      Creates DIR (default: the last part of URL) as a workspace whose stack is the remote's HEAD branch (or
      \`--branch\`), every layer checked before use, records URL as the remote \`origin\` and the stack's upstream,
      and mounts the view in \`DIR/view\`. The stack's image config (Env, Cmd, ...) comes with it, so \`export\`
      writes the same config as on the remote's side. URL: http(s), ssh, \`file://\`, or a path to a repository or workspace.
      Credentials come from the URL, GLAYER_USERNAME/GLAYER_PASSWORD or git's credential helpers; glayer never
      prompts (exit 3 when the remote wants credentials it does not have).
    `,
    examples: [
      ['Clone over https', '$0 clone https://git.example.com/team/base.git'],
      ['Clone a branch of a local repository into ws2', '$0 clone /srv/layers.git ws2 --branch v2'],
    ],
  });

  url = Option.String({ name: 'URL' });
  target = Option.String({ required: false, name: 'DIR' });
  branch = Option.String('--branch,-b', { description: 'The remote branch or tag to start from (default: its HEAD)' });
  stack = Option.String('--stack', { description: 'Name of the local stack (default: the remote branch\'s name)' });

  async run(): Promise<number> {
    const r = await clone({ cwd: this.cwd, url: this.url, dir: this.target, branch: this.branch, stack: this.stack, onProgress: this.progress });
    if (this.json) this.printJson(r);
    else {
      this.out(`Cloned ${r.url} into ${r.root}\n`);
      this.out(r.head ? `Stack ${r.ref} at ${r.head.slice(0, 12)}; view at ${r.view}\n` : `The remote has no stacks yet; stack ${r.ref} is empty\n`);
    }
    return 0;
  }
}
