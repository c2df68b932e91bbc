import { Command, Option } from 'clipanion';
import { deleteStack, listStacks, newStack, switchStack } from '../../api/stack.js';
import { GlayerCommand } from '../base.js';
import { table } from '../format.js';

export class StackListCommand extends GlayerCommand {
  static paths = [['stack'], ['stack', 'list']];
  static usage = Command.Usage({
    category: 'Stacks',
    description: 'list the stacks of this workspace',
    details: `
      The local stacks (branches), \`*\` marking the one checked out, with their layer count and top. The
      remote-aware listing, with remote-tracking stacks and the layers stacks share, is \`glayer stacks\`.
    `,
    examples: [['List the stacks', '$0 stack'], ['As JSON', '$0 stack --json']],
  });

  async run(): Promise<number> {
    const list = await listStacks({ cwd: this.cwd });
    if (this.json) { this.printJson(list); return 0; }
    this.out(table(list.map((s) => [s.current ? '*' : ' ', s.name, `${s.layers} layer${s.layers === 1 ? '' : 's'}`, s.top ? s.top.slice(0, 12) : '(no layers)'])));
    return 0;
  }
}

export class StackNewCommand extends GlayerCommand {
  static paths = [['stack', 'new']];
  static usage = Command.Usage({
    category: 'Stacks',
    description: 'start a new stack at a layer',
    details: `
      Creates the stack NAME whose top is LAYER (default: the current top). It shares every layer with the stack
      it starts from. The workspace stays on its current stack: \`glayer stack switch NAME\` moves to it.
    `,
    examples: [['A stack from the current top', '$0 stack new experiment'], ['A stack from a tag', '$0 stack new hotfix --from v1.0']],
  });

  from = Option.String('--from', { description: 'The new stack\'s top, a LAYER (default HEAD)' });
  name = Option.String({ name: 'NAME' });

  async run(): Promise<number> {
    const s = await newStack({ cwd: this.cwd, name: this.name, from: this.from });
    if (this.json) this.printJson(s);
    else this.out(`Created stack ${s.name} at ${s.top!.slice(0, 12)}\n`);
    return 0;
  }
}

export class StackSwitchCommand extends GlayerCommand {
  static paths = [['stack', 'switch']];
  static usage = Command.Usage({
    category: 'Stacks',
    description: 'check out another stack; the view follows',
    details: `
      Points the workspace at the stack NAME and refreshes the view to its union. Refused while the writable
      layer has changes, unless \`--carry\`, which keeps them on top of the new stack.
    `,
    examples: [['Switch', '$0 stack switch experiment'], ['Take uncommitted changes along', '$0 stack switch main --carry']],
  });

  carry = Option.Boolean('--carry', false, { description: 'Keep the writable layer\'s changes on top of the new stack' });
  name = Option.String({ name: 'NAME' });

  async run(): Promise<number> {
    const r = await switchStack({ cwd: this.cwd, name: this.name, carry: this.carry, onProgress: this.progress });
    this.warn(r.warnings);
    if (this.json) this.printJson(r);
    else this.out(`Switched to stack ${r.to} (${r.top.slice(0, 12)})${r.carried ? ', carrying the writable layer' : ''}\n`);
    return 0;
  }
}

export class StackDeleteCommand extends GlayerCommand {
  static paths = [['stack', 'delete']];
  static usage = Command.Usage({
    category: 'Stacks',
    description: 'delete a stack that is not checked out',
    details: `
      Removes the stack NAME. Its layers stay while a tag, another stack or a reflog names them; \`glayer gc\`
      removes them after the grace period otherwise.
    `,
    examples: [['Delete a stack', '$0 stack delete experiment']],
  });

  name = Option.String({ name: 'NAME' });

  async run(): Promise<number> {
    const r = await deleteStack({ cwd: this.cwd, name: this.name });
    if (this.json) this.printJson(r);
    else this.out(`Deleted stack ${r.name} (was ${r.top.slice(0, 12)})\n`);
    return 0;
  }
}
