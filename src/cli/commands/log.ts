import { Command, Option } from 'clipanion';
import { log } from '../../api/log.js';
import { GlayerCommand } from '../base.js';
import { formatBytes, table } from '../format.js';

export class LogCommand extends GlayerCommand {
  static paths = [['log'], ['history']];
  static usage = Command.Usage({
    description: "list the stack's layers, top first",
    details: `
      Like \`docker history\`: each layer's id, date, what it adds (+), changes (~) and deletes (-), the bytes of
      its own files, and its message.
    `,
    examples: [
      ['List the layers', '$0 log'],
      ['The top three, as JSON', '$0 log -n 3 --json'],
    ],
  });

  limit = Option.String('-n,--max-count', { description: 'Show at most N layers' });

  async run(): Promise<number> {
    const limit = this.limit === undefined ? undefined : Number(this.limit);
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0)) {
      const { UsageError } = await import('../../errors.js');
      throw new UsageError(`-n takes a whole number, not '${this.limit}'`);
    }
    const layers = await log({ cwd: this.cwd, limit });
    if (this.json) { this.printJson(layers); return 0; }
    if (layers.length === 0) { this.out('The stack has no layers\n'); return 0; }
    const rows = [['LAYER', 'CREATED', 'ADDED', 'CHANGED', 'DELETED', 'SIZE', 'MESSAGE']];
    for (const l of layers) {
      rows.push([l.id.slice(0, 12), l.date.replace('T', ' ').slice(0, 19), `+${l.added}`, `~${l.changed}`, `-${l.deleted}`, formatBytes(l.bytes), l.message.split('\n')[0]]);
    }
    this.out(table(rows));
    return 0;
  }
}
