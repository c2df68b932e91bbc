import { Command } from 'clipanion';
import { info } from '../../api/info.js';
import { GlayerCommand } from '../base.js';
import { table } from '../format.js';

export class InfoCommand extends GlayerCommand {
  static paths = [['info']];
  static usage = Command.Usage({
    description: 'show where the store, the stack, the writable layer and the view are',
    examples: [
      ['Show the workspace', '$0 info'],
      ['As JSON: {store, ref, head, upper, view}', '$0 info --json'],
    ],
  });

  async run(): Promise<number> {
    const r = await info({ cwd: this.cwd });
    if (this.json) { this.printJson(r); return 0; }
    this.out(table([
      ['workspace', r.root],
      ['store', r.store],
      ['stack', r.ref],
      ['head', r.head ?? '(no layers)'],
      ['layers', String(r.layers)],
      ['upper', r.upper],
      ['view', r.view ?? '(not mounted)'],
      ['live', r.live ? `${r.live.backend}${r.live.mounted ? '' : ' (not mounted now)'}` : 'no (a copied view)'],
    ]));
    return 0;
  }
}
