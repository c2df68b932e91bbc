import { Command, Option } from 'clipanion';
import { reset } from '../../api/reset.js';
import { GlayerCommand } from '../base.js';

export class ResetCommand extends GlayerCommand {
  static paths = [['reset']];
  static usage = Command.Usage({
    category: 'History',
    description: "move the stack's top to another layer of its history",
    details: `
      Moves the current stack's top to LAYER: a layer below it, or a top the stack held before (its reflog, so a
      reset, a squash or a pull can be undone). The writable layer is kept on top of the new top and the view
      follows. When the writable layer changes a path the move changes, nothing is done unless \`--hard\`, which
      empties the writable layer. The previous top is printed so the move can be undone.
    `,
    examples: [
      ['Drop the top layer from the stack', '$0 reset HEAD~1'],
      ['Undo that', '$0 reset 1a2b3c4d5e6f'],
      ['Go back to a tag and discard uncommitted changes', '$0 reset --hard v1.0'],
    ],
  });

  hard = Option.Boolean('--hard', false, { description: 'Discard the writable layer (and the view\'s edits)' });
  layer = Option.String({ name: 'LAYER' });

  async run(): Promise<number> {
    const r = await reset({ cwd: this.cwd, layer: this.layer, hard: this.hard, onProgress: this.progress });
    this.warn(r.warnings);
    if (this.json) { this.printJson(r); return 0; }
    this.out(`${r.id}\n`);
    if (r.previous && r.previous !== r.id) this.context.stderr.write(`previous top ${r.previous} (undo: glayer reset ${r.previous.slice(0, 12)})\n`);
    if (r.discarded.length) this.context.stderr.write(`discarded ${r.discarded.length} change${r.discarded.length === 1 ? '' : 's'} of the writable layer\n`);
    return 0;
  }
}
