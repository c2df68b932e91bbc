import { Command, Option } from 'clipanion';
import { push } from '../../api/push.js';
import { GlayerCommand } from '../base.js';

export class PushCommand extends GlayerCommand {
  static paths = [['push']];
  static usage = Command.Usage({
    category: 'Sharing',
    description: 'publish a stack\'s layers to a remote',
    details: `
      Sends the layers of STACK (default: the current stack) that REMOTE lacks and moves the remote branch of the
      same name to the stack's top. REMOTE is a remote's name, a URL or a path (default: the stack's upstream
      remote, else \`origin\`). Only a fast-forward is accepted: when the remote branch has layers the local stack
      does not build on, the push is refused (exit 1); run \`glayer pull --rebase\` first, or \`--force\` to replace
      it. Exit 3: the remote wants credentials glayer does not have (it never prompts).
    `,
    examples: [
      ['Push the current stack to origin', '$0 push'],
      ['Push the stack "app" to a bare repository', '$0 push /srv/layers.git app'],
    ],
  });

  remote = Option.String({ required: false, name: 'REMOTE' });
  stack = Option.String({ required: false, name: 'STACK' });
  force = Option.Boolean('--force,-f', false, { description: 'Replace the remote branch even if that drops layers' });

  async run(): Promise<number> {
    const r = await push({ cwd: this.cwd, remote: this.remote, stack: this.stack, force: this.force, onProgress: this.progress });
    if (this.json) this.printJson(r);
    else if (r.upToDate) this.out(`Everything up to date (${r.ref} at ${r.new.slice(0, 12)})\n`);
    else this.out(`${r.old ? r.old.slice(0, 12) : '(new)'}..${r.new.slice(0, 12)}  ${r.ref} -> ${r.remote ?? r.url}\n`);
    return 0;
  }
}
