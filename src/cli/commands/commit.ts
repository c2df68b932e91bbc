import { Command, Option } from 'clipanion';
import { commit } from '../../api/commit.js';
import { GlayerCommand } from '../base.js';

export class CommitCommand extends GlayerCommand {
  static paths = [['commit']];
  static usage = Command.Usage({
    description: 'freeze the writable layer into a new read-only layer',
    details: `
      Records the writable layer (and the view's edits) as a new layer on top of the stack, then empties the
      writable layer; the view does not change. Prints the new layer's id. Exits 1 when there is nothing to
      commit. Files named \`.wh.*\` in the view cannot be stored and are refused.
    `,
    examples: [
      ['Commit with a message', '$0 commit -m "add nginx config"'],
      ['Print {"id": ...}', '$0 commit -m "tune" --json'],
    ],
  });

  message = Option.String('-m,--message', { description: 'The layer message (required)' });

  async run(): Promise<number> {
    const r = await commit({ cwd: this.cwd, message: this.message ?? '', onProgress: this.progress });
    this.warn(r.warnings);
    if (this.json) this.printJson({ id: r.id, parent: r.parent });
    else this.out(`${r.id}\n`);
    return 0;
  }
}
