import { Command, Option } from 'clipanion';
import { deleteTag, listTags, tag } from '../../api/tag.js';
import { UsageError } from '../../errors.js';
import { GlayerCommand } from '../base.js';
import { table } from '../format.js';

export class TagCommand extends GlayerCommand {
  static paths = [['tag']];
  static usage = Command.Usage({
    category: 'History',
    description: 'name a layer with a tag, list tags, delete one',
    details: `
      Tags are git tags (\`refs/tags/NAME\`): with \`-m\` an annotated tag (tagger, date, message), else a
      lightweight one. LAYER defaults to HEAD. A tag that exists is refused unless \`-f\`. \`glayer push --tags\`
      publishes them and \`glayer fetch\` brings them; every LAYER argument accepts a tag name (\`v1.0~2\` too).
    `,
    examples: [
      ['Tag the top layer', '$0 tag v1.0'],
      ['An annotated tag on an older layer', '$0 tag -m "first release" v0.9 HEAD~2'],
      ['List the tags', '$0 tag -l'],
      ['Delete a tag (the layers stay)', '$0 tag -d v0.9'],
    ],
  });

  list = Option.Boolean('-l,--list', false, { description: 'List the tags' });
  del = Option.Boolean('-d,--delete', false, { description: 'Delete the tag NAME' });
  force = Option.Boolean('-f,--force', false, { description: 'Move a tag that exists' });
  message = Option.String('-m,--message', { description: 'Make an annotated tag with message MSG' });
  name = Option.String({ required: false, name: 'NAME' });
  layer = Option.String({ required: false, name: 'LAYER' });

  async run(): Promise<number> {
    if (this.list || this.name === undefined) {
      if (this.del || this.layer !== undefined) throw new UsageError('tag -l takes no NAME or LAYER');
      const tags = await listTags({ cwd: this.cwd });
      if (this.json) this.printJson(tags);
      else if (tags.length) this.out(table(tags.map((t) => [t.name, t.layer.slice(0, 12), t.message?.split('\n')[0] ?? ''])));
      return 0;
    }
    if (this.del) {
      if (this.layer !== undefined || this.message !== undefined) throw new UsageError('tag -d takes only NAME');
      const t = await deleteTag({ cwd: this.cwd, name: this.name });
      if (this.json) this.printJson(t);
      else this.out(`Deleted tag ${t.name} (was ${t.layer.slice(0, 12)})\n`);
      return 0;
    }
    const t = await tag({ cwd: this.cwd, name: this.name, layer: this.layer, message: this.message, force: this.force });
    if (this.json) this.printJson(t);
    else this.out(`${t.previous ? 'Moved' : 'Tagged'} ${t.layer.slice(0, 12)} as ${t.name}${t.previous ? ` (was ${t.previous.slice(0, 12)})` : ''}\n`);
    return 0;
  }
}
