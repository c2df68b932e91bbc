import { Command, Option } from 'clipanion';
import { fetch } from '../../api/fetch.js';
import { GlayerCommand } from '../base.js';

export class FetchCommand extends GlayerCommand {
  static paths = [['fetch']];
  static usage = Command.Usage({
    category: 'Sharing',
    description: 'download a remote\'s stacks into the store',
    details: `
      Fetches every branch of REMOTE (default: the stack's upstream remote, else \`origin\`) and checks each new
      layer (entry names, whiteout markers, submodules, missing objects) before it is used. Only then do the
      remote-tracking stacks \`REMOTE/NAME\` move; the local stacks, the writable layer and the view never change.
      A bad layer is refused with one line naming the object and the path, and nothing local changes.
    `,
    examples: [['Fetch from origin', '$0 fetch'], ['Fetch from a path', '$0 fetch ../other-workspace']],
  });

  remote = Option.String({ required: false, name: 'REMOTE' });

  async run(): Promise<number> {
    const r = await fetch({ cwd: this.cwd, remote: this.remote, onProgress: this.progress });
    if (this.json) this.printJson(r);
    else {
      for (const u of r.updated) this.out(`${u.old ? u.old.slice(0, 12) : '(new)'}..${u.new.slice(0, 12)}  ${u.ref.replace(/^refs\/remotes\//, '')}\n`);
      if (!r.remote) for (const s of r.stacks) this.out(`${s.top.slice(0, 12)}  ${s.ref}\n`);
    }
    return 0;
  }
}
