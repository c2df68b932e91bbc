import { Command, Option } from 'clipanion';
import { diff } from '../../api/diff.js';
import { UsageError } from '../../errors.js';
import { DiffOutputCommand } from '../diff-format.js';

export class DiffCommand extends DiffOutputCommand {
  static paths = [['diff']];
  static usage = Command.Usage({
    description: 'show changes between layers, or in the writable layer, as a git-style patch',
    details: `
      \`glayer diff [OPTIONS] [LAYER [LAYER]] [-- PATH...]\`

      With no LAYER: the writable layer (with edits made in the view) against the stack below it. With one
      LAYER: what that layer changed, against the union beneath it; with \`--view\`, the union at LAYER against
      the current working state. With two: the union at the first against the union at the second (\`A..B\`
      works too).

      A LAYER is a layer id or a unique prefix of one (4+ hex digits) in the current stack, a stack or tag name,
      \`HEAD\` (the stack top), followed by any \`~N\` (N layers down) or \`^\`. PATHs after \`--\` limit the
      output; they are paths in the view, relative to the current directory when you are inside the view.

      The patch is what \`git diff\` prints (and \`git apply\` accepts): deleted directories show every file they
      remove, whiteouts show as the deletions they cause, a rename is a deletion and an addition, a change of
      kind (file <-> symlink) is a deletion and an addition, symlink targets are diffed as text with mode 120000,
      and binary files (a NUL byte in the first 8,000 bytes) print \`Binary files a/X and b/X differ\`. A text
      file too large to diff (64 MiB) or too slow (5 s, or GLAYER_DIFF_TIMEOUT_MS) prints
      \`Files a/X and b/X differ\` instead of hunks.
    `,
    examples: [
      ['What the writable layer changes', '$0 diff'],
      ['What the top layer changed', '$0 diff HEAD'],
      ['Between two layers, only under etc/', '$0 diff HEAD~3 HEAD -- etc'],
      ['From a layer to the working state, as a diffstat', '$0 diff --view 1a2b3c4d --stat'],
      ['Paths and kinds of change only', '$0 diff --name-status main other-stack'],
      ['As JSON: [{path, change, old, new, binary, hunks, ...}]', '$0 diff HEAD --json'],
      ['Exit 1 when the writable layer has changes', '$0 diff --quiet'],
    ],
  });

  view = Option.Boolean('--view', false, { description: 'Compare with the current working state (the view: stack plus writable layer)' });
  exitCode = Option.Boolean('--exit-code', false, { description: 'Exit 1 when there are differences, 0 when there are none' });
  quiet = Option.Boolean('--quiet', false, { description: 'Print nothing; implies --exit-code' });
  args = Option.Rest({ name: 'LAYER... -- PATH' });

  async run(): Promise<number> {
    const { names, paths } = this.splitArgs(this.args);
    let layers = names;
    if (layers.length === 1 && layers[0].includes('..')) {
      const [x, y] = layers[0].split('..');
      layers = [x || 'HEAD', y || 'HEAD'];
    }
    if (layers.length > 2) throw new UsageError(`at most two layers to compare (got ${layers.length}); put paths after '--'`);
    const format = this.quiet ? 'quiet' : this.format;
    const context = this.contextLines;
    const progress = this.progress;
    let warnings: string[] = [];
    const count = await this.render(format, async (r) => {
      const res = await diff({
        cwd: this.cwd,
        from: layers[0],
        to: layers[1],
        view: this.view,
        paths,
        context,
        content: format !== 'name-only' && format !== 'name-status' && format !== 'quiet',
        ...(format === 'quiet' ? { renames: false } : this.renameOptions),
        timeoutMs: this.timeoutMs,
        onProgress: progress,
        onFile: (f) => r.file(f),
      });
      warnings = res.warnings;
    });
    this.warn(warnings);
    if (count === null) return 0;
    return (this.exitCode || this.quiet) && count > 0 ? 1 : 0;
  }
}
