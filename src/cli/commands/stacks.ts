import { Command } from 'clipanion';
import { stacks } from '../../api/stacks.js';
import { GlayerCommand } from '../base.js';
import { table } from '../format.js';

export class StacksCommand extends GlayerCommand {
  static paths = [['stacks']];
  static usage = Command.Usage({
    category: 'Sharing',
    description: 'list the stacks of the store and the layers they share',
    details: `
      One line per stack: local stacks (branches; \`*\` marks the current one) and remote-tracking stacks
      (\`origin/main\`), with the number of layers, the top layer and the upstream. Then, for each pair of stacks
      that share layers, how many and up to which layer (like images sharing base layers).
    `,
    examples: [['List the stacks', '$0 stacks'], ['As JSON', '$0 stacks --json']],
  });

  async run(): Promise<number> {
    const list = await stacks({ cwd: this.cwd });
    if (this.json) { this.printJson(list); return 0; }
    this.out(table(list.map((s) => [s.current ? '*' : ' ', s.name, `${s.layers} layer${s.layers === 1 ? '' : 's'}`, s.top.slice(0, 12), s.upstream ? `upstream ${s.upstream}` : ''])));
    const pairs: string[][] = [];
    for (const s of list) for (const sh of s.shares) if (s.name < sh.with) pairs.push([`${s.name} + ${sh.with}`, `share ${sh.layers} layer${sh.layers === 1 ? '' : 's'}`, `up to ${sh.top.slice(0, 12)}`]);
    if (pairs.length) this.out('\n' + table(pairs));
    return 0;
  }
}
