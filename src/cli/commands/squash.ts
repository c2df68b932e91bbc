import { Command, Option } from 'clipanion';
import { squash } from '../../api/squash.js';
import { GlayerCommand } from '../base.js';

export class SquashCommand extends GlayerCommand {
  static paths = [['squash']];
  static usage = Command.Usage({
    category: 'History',
    description: 'squash the layers above BASE into one layer with the same union',
    details: `
      The layers above BASE (default: every layer of the stack) become one layer whose union is exactly the old
      top's. Whiteouts that hide nothing below BASE are dropped, and so is anything a later layer of the range hid
      or replaced. The writable layer and the view do not change. The old layers are not deleted: a tag or
      another stack that names them keeps them, and the previous top is printed (and kept in the stack's reflog)
      so \`glayer reset\` can undo the squash. BASE must be a layer below the top on the stack's straight line.
    `,
    examples: [
      ['Squash the whole stack into one layer', '$0 squash -m "release 1.0"'],
      ['Squash the layers above the tag "base"', '$0 squash base'],
      ['Squash the top three layers', '$0 squash HEAD~3'],
    ],
  });

  base = Option.String({ required: false, name: 'BASE' });
  message = Option.String('-m,--message', { description: 'The new layer\'s message (MSG; default: the squashed layers\' subjects)' });

  async run(): Promise<number> {
    const r = await squash({ cwd: this.cwd, base: this.base, message: this.message });
    if (this.json) { this.printJson(r); return 0; }
    this.out(`${r.id}\n`);
    this.context.stderr.write(`squashed ${r.squashed} layer${r.squashed === 1 ? '' : 's'} onto ${r.base ? r.base.slice(0, 12) : '(nothing)'}; previous top ${r.previous} (undo: glayer reset ${r.previous.slice(0, 12)})\n`);
    return 0;
  }
}
