import { Command, Option } from 'clipanion';
import { pull, type Strategy } from '../../api/pull.js';
import { UsageError } from '../../errors.js';
import { GlayerCommand } from '../base.js';

export class PullCommand extends GlayerCommand {
  static paths = [['pull']];
  static usage = Command.Usage({
    category: 'Sharing',
    description: 'move the stack to its upstream\'s new layers',
    details: `
      Fetches STACK from REMOTE (default: the stack's upstream, e.g. \`origin/main\`), checks it, and fast-forwards
      the current stack to it. When both sides have new layers, \`--rebase\` re-parents the local layers onto the new
      upstream top: a layer is a delta, so its tree is kept and only its parent changes. A local layer that touches
      a path the upstream changed is a conflict: the paths are listed and nothing changes (exit 1), unless
      \`--strategy ours\` (the local layers win) or \`--strategy theirs\` (the upstream wins). The writable layer and
      the view follow; uncommitted edits are kept.
    `,
    examples: [
      ['Fast-forward to origin', '$0 pull'],
      ['Move local layers onto a new base', '$0 pull --rebase'],
      ['Rebase, letting the base win on conflicts', '$0 pull --rebase --strategy theirs'],
    ],
  });

  remote = Option.String({ required: false, name: 'REMOTE' });
  stack = Option.String({ required: false, name: 'STACK' });
  rebase = Option.Boolean('--rebase,-r', false, { description: 'Re-parent local layers onto the new upstream top' });
  strategy = Option.String('--strategy,-s', { description: 'On conflicts during --rebase: ours or theirs' });

  async run(): Promise<number> {
    if (this.strategy !== undefined && this.strategy !== 'ours' && this.strategy !== 'theirs') throw new UsageError(`unknown strategy '${this.strategy}' (ours or theirs)`);
    const r = await pull({ cwd: this.cwd, remote: this.remote, stack: this.stack, rebase: this.rebase, strategy: this.strategy as Strategy | undefined, onProgress: this.progress });
    this.warn(r.warnings);
    if (this.json) this.printJson(r);
    else if (r.mode === 'up-to-date') this.out('Already up to date\n');
    else if (r.mode === 'fast-forward') this.out(`Fast-forward ${r.old ? r.old.slice(0, 12) : '(empty)'}..${r.new!.slice(0, 12)}\n`);
    else {
      this.out(`Rebased ${r.rebased.length} layer${r.rebased.length === 1 ? '' : 's'} onto ${r.upstreamTop.slice(0, 12)}; top is now ${r.new!.slice(0, 12)}\n`);
      if (r.conflicts.length) this.out(`Resolved ${r.conflicts.length} conflicting path${r.conflicts.length === 1 ? '' : 's'} (${this.strategy}): ${r.conflicts.join(', ')}\n`);
    }
    if (!this.json && r.config === 'fast-forward') this.out('Image config updated to the upstream\'s\n');
    return 0;
  }
}
