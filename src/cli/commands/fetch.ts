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
      A bad layer is refused with one line naming the object and the path, and nothing local changes. The
      remote's tags come too (a local tag of the same name is never moved); \`--prune\` deletes remote-tracking
      stacks whose branch is gone from the remote. Each stack's image config comes too, into
      \`refs/glayer/remote-config/REMOTE/NAME\` (\`glayer pull\` takes it into the stack's own; \`--prune\` deletes
      those of stacks gone from the remote).
    `,
    examples: [['Fetch from origin', '$0 fetch'], ['Fetch from a path', '$0 fetch ../other-workspace']],
  });

  remote = Option.String({ required: false, name: 'REMOTE' });
  prune = Option.Boolean('--prune,-p', false, { description: 'Delete remote-tracking stacks whose branch the remote no longer has' });
  tags = Option.Boolean('--tags', true, { description: 'Bring the remote\'s tags (default; --no-tags: not); a local tag is never moved' });

  async run(): Promise<number> {
    const r = await fetch({ cwd: this.cwd, remote: this.remote, prune: this.prune, tags: this.tags, onProgress: this.progress });
    if (this.json) this.printJson(r);
    else {
      for (const u of r.updated) this.out(`${u.old ? u.old.slice(0, 12) : '(new)'}..${u.new.slice(0, 12)}  ${u.ref.replace(/^refs\/remotes\//, '')}\n`);
      if (!r.remote) for (const s of r.stacks) this.out(`${s.top.slice(0, 12)}  ${s.ref}\n`);
      for (const t of r.tags) this.out(`${t.new.slice(0, 12)}  [new tag] ${t.ref.slice(10)}\n`);
      for (const t of r.tagsRejected) this.context.stderr.write(`glayer: warning: tag ${t} differs from the remote's; kept the local one\n`);
      for (const p of r.pruned) this.out(`pruned ${p.replace(/^refs\/remotes\//, '')}\n`);
      for (const c of r.configs) this.out(`${c.old ? c.old.slice(0, 12) : '(new)'}..${c.new.slice(0, 12)}  image config of ${c.ref.replace(/^refs\/glayer\/remote-config\//, '')}\n`);
      for (const p of r.configsPruned) this.out(`pruned image config of ${p.replace(/^refs\/glayer\/remote-config\//, '')}\n`);
    }
    return 0;
  }
}
