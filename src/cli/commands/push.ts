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
      it. Exit 3: the remote wants credentials glayer does not have (it never prompts). \`--tags\` pushes every tag
      the remote lacks instead (a tag the remote has is never moved); \`-u\` records the remote branch as the stack's
      upstream, for \`pull\` and \`push\` without arguments.

      The stack's image config (\`refs/glayer/config/STACK\`, see \`glayer image-config\`) goes with it: sent when
      the remote has none or an older one, replaced with \`--force\`. When the remote's config has diverged from
      the local one, the stack is pushed all the same and a warning says the config was not (take the remote's
      first with \`glayer pull\`, or \`--force\`).
    `,
    examples: [
      ['Push the current stack to origin', '$0 push'],
      ['Push the stack "app" to a bare repository', '$0 push /srv/layers.git app'],
      ['Publish the tags', '$0 push --tags'],
      ['Push and remember origin as the upstream', '$0 push -u origin'],
    ],
  });

  remote = Option.String({ required: false, name: 'REMOTE' });
  stack = Option.String({ required: false, name: 'STACK' });
  force = Option.Boolean('--force,-f', false, { description: 'Replace the remote branch (and image config) even if that drops layers' });
  tags = Option.Boolean('--tags', false, { description: 'Push every tag the remote lacks (instead of the stack)' });
  setUpstream = Option.Boolean('-u,--set-upstream', false, { description: 'Make the remote branch the stack\'s upstream (for pull and push)' });

  async run(): Promise<number> {
    const r = await push({ cwd: this.cwd, remote: this.remote, stack: this.stack, force: this.force, tags: this.tags, setUpstream: this.setUpstream, onProgress: this.progress });
    this.warn(r.warnings);
    if (this.json) this.printJson(r);
    else if (r.tags) {
      for (const t of r.tags) this.out(`[new tag] ${t} -> ${r.remote ?? r.url}\n`);
      for (const t of r.tagsRejected ?? []) this.context.stderr.write(`glayer: warning: tag ${t} is already on the remote with another layer; left as it is\n`);
      if (r.tags.length === 0 && !(r.tagsRejected ?? []).length) this.out('Everything up to date (tags)\n');
    }
    else {
      if (r.upToDate && r.config !== 'sent') this.out(`Everything up to date (${r.ref} at ${r.new.slice(0, 12)})\n`);
      else if (!r.upToDate) this.out(`${r.old ? r.old.slice(0, 12) : '(new)'}..${r.new.slice(0, 12)}  ${r.ref} -> ${r.remote ?? r.url}\n`);
      if (r.config === 'sent') this.out(`image config  refs/glayer/config/${r.ref.slice(11)} -> ${r.remote ?? r.url}\n`);
    }
    if (r.upstream) this.out(`stack ${r.ref.slice(11)} now tracks ${r.upstream}\n`);
    return 0;
  }
}
