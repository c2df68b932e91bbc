import { Command, Option } from 'clipanion';
import { init, listTemplates } from '../../api/init.js';
import { GlayerCommand } from '../base.js';
import { table } from '../format.js';

export class InitCommand extends GlayerCommand {
  static paths = [['init']];
  static usage = Command.Usage({
    description: 'create a workspace: a layer store, an empty writable layer and a stack',
    details: `
      Creates DIR (default: the current directory) with \`.glayer/\` (the layer store, a bare git repository),
      \`upper/\` (the writable layer) and a stack named \`main\`. With \`--template NAME\` the stack starts with one
      base layer holding the template's files; without it the stack is empty. Run \`glayer mount-view\` next to
      get the union view in \`view/\`.
    `,
    examples: [
      ['Start the aufs experiment (one file `test` containing `test1`)', '$0 init demo --template aufs-demo'],
      ['A workspace with an /etc-like base layer', '$0 init cfg --template etc'],
      ['List the templates', '$0 init --list-templates'],
      ['A stack on a base someone publishes (its layers are shared, never rewritten)', '$0 init app --from https://git.example.com/team/base.git#v1 --stack app'],
      ['A workspace from an image that podman saved', '$0 init app --from docker-archive:app.tar'],
    ],
  });

  target = Option.String({ required: false, name: 'DIR' });
  template = Option.String('--template,-t', { description: 'Base layer from templates/NAME (see --list-templates)' });
  stack = Option.String('--stack', { description: 'Name of the stack (a branch of the store; default main)' });
  list = Option.Boolean('--list-templates', false, { description: 'List the templates and exit' });
  from = Option.String('--from', { description: 'Start on another stack: SOURCE#REF (SOURCE a URL, a path or a remote name; it becomes origin), or from an image: oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE, tar:FILE' });
  platform = Option.String('--platform', { description: 'With --from IMAGE: OS/ARCH[/VARIANT] to pick from a multi-platform index' });

  async run(): Promise<number> {
    if (this.list) {
      const templates = listTemplates();
      if (this.json) this.printJson(templates);
      else this.out(table(templates.map((t) => [t.name, `${t.files} files`, t.description])));
      return 0;
    }
    const r = await init({ cwd: this.cwd, dir: this.target, template: this.template, stack: this.stack, from: this.from, platform: this.platform, onProgress: this.progress });
    if (this.json) this.printJson(r);
    else {
      this.out(`Initialized glayer workspace in ${r.root}\n`);
      if (r.from && /^(oci|oci-archive|docker-archive|tar):/.test(r.from)) this.out(`Stack ${r.ref} holds the image ${r.from} (top layer ${r.head?.slice(0, 12)})\n`);
      else if (r.from) this.out(r.head ? `Stack ${r.ref} starts on ${r.head.slice(0, 12)} from ${r.from} (remote origin)\n` : `Stack ${r.ref} is empty (${r.from} has no stacks yet)\n`);
      else this.out(r.head ? `Stack ${r.ref} has one layer ${r.head.slice(0, 12)} (template ${r.template})\n` : `Stack ${r.ref} is empty\n`);
      this.out(`Next: glayer -C ${r.root} mount-view\n`);
    }
    return 0;
  }
}
