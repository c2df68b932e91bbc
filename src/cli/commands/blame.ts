import { Command, Option } from 'clipanion';
import { blame } from '../../api/blame.js';
import { GlayerCommand } from '../base.js';
import { formatBytes, table } from '../format.js';

export class BlameCommand extends GlayerCommand {
  static paths = [['blame']];
  static usage = Command.Usage({
    description: 'list the layers that added, changed or deleted a path',
    details: `
      Every layer of the stack that added (A), changed (C) or deleted (D) PATH or anything under it, top first:
      the layer id, its date, the change, the path's kind and size after the layer (a directory's size is the
      total of its files), how many files under PATH the layer added (+), changed (~) and deleted (-), and the
      layer's message. A whiteout shows as the deletion it causes. PATH is a path in the view (relative to the
      current directory when you are inside the view). The writable layer is not listed: see \`glayer diff\`.
    `,
    examples: [
      ['Which layers touched etc/passwd', '$0 blame etc/passwd'],
      ['Which layers changed anything under usr/lib', '$0 blame usr/lib'],
      ['As JSON: {path, entries: [{id, date, message, change, kind, size, files}]}', '$0 blame --json etc'],
    ],
  });

  target = Option.String({ name: 'PATH' });

  async run(): Promise<number> {
    const r = await blame({ cwd: this.cwd, path: this.target });
    if (this.json) { this.printJson(r); return 0; }
    if (r.entries.length === 0) {
      this.context.stderr.write(`glayer: no layer of the stack added, changed or deleted ${r.path === '' ? '/' : r.path}\n`);
      return 0;
    }
    const rows = [['LAYER', 'CREATED', 'CHANGE', 'KIND', 'SIZE', 'FILES', 'MESSAGE']];
    for (const e of r.entries) {
      rows.push([
        e.id.slice(0, 12),
        e.date.replace('T', ' ').slice(0, 19),
        e.change,
        e.kind,
        e.size === null ? '-' : formatBytes(e.size),
        `+${e.files.added} ~${e.files.changed} -${e.files.deleted}`,
        e.message.split('\n')[0],
      ]);
    }
    this.out(table(rows));
    return 0;
  }
}
