import { Command } from 'clipanion';
import { status } from '../../api/status.js';
import { GlayerCommand } from '../base.js';
import { ansi, useColor } from '../format.js';

export class StatusCommand extends GlayerCommand {
  static paths = [['status']];
  static usage = Command.Usage({
    description: "show the writable layer's changes against the stack",
    details: `
      Like \`docker diff\`: one line per change, \`A\` (added), \`C\` (changed: content, mode or kind), \`D\`
      (deleted) or \`M\` (metadata only: owner, permission bits, mtime, xattrs or a hardlink; see
      docs/metadata.md), and the path. A deleted directory is one \`D\` line; an added one lists everything in it. Edits
      made in the view are recorded in the writable layer first.
    `,
    examples: [
      ['Show the changes', '$0 status'],
      ['As JSON: [{"path": ..., "change": "A" | "C" | "D" | "M", "kind": ..., "fields": ["mode", ...]}]', '$0 status --json'],
    ],
  });

  async run(): Promise<number> {
    const r = await status({ cwd: this.cwd, onProgress: this.progress });
    this.warn(r.warnings);
    if (r.unrepresentable.length) this.warn(r.unrepresentable.map((p) => `${p}: names starting with '.wh.' cannot be stored in a layer; commit will refuse it`));
    if (this.json) {
      this.printJson(r.changes);
      return 0;
    }
    const color = useColor(this.context.stdout, this.context.env);
    const paint = { A: ansi.green, C: ansi.yellow, D: ansi.red, M: ansi.yellow };
    for (const c of r.changes) this.out(`${color ? paint[c.change](c.change) : c.change} ${c.path}\n`);
    return 0;
  }
}
