import { Command, Option } from 'clipanion';
import { addWorkspace, listWorkspaces, removeWorkspace } from '../../api/workspace.js';
import { GlayerCommand } from '../base.js';
import { table } from '../format.js';

export class WorkspaceAddCommand extends GlayerCommand {
  static paths = [['workspace', 'add']];
  static usage = Command.Usage({
    category: 'Stacks',
    description: 'make another workspace on this store (as git worktree add)',
    details: `
      Creates the workspace PATH (absent or an empty directory) on the stack NAME (default: this workspace's).
      It has its own writable layer, view and stack pointer, and shares everything else with this workspace:
      layers, stacks, tags, remotes, and the layer cache, so ten live views of a stack keep one copy of its
      layers on disk. Several workspaces may be on one stack: a commit in one moves it, and the others' views
      follow at their next command.
    `,
    examples: [
      ['A second workspace on the current stack, with its own live view', '$0 workspace add ../ws2 && glayer mount-view --live -C ../ws2'],
      ['A workspace on another stack', '$0 workspace add ../hotfix --stack hotfix'],
    ],
  });

  stack = Option.String('--stack', { description: 'The stack of the new workspace (default: the current one)' });
  target = Option.String({ name: 'PATH' });

  async run(): Promise<number> {
    const w = await addWorkspace({ cwd: this.cwd, path: this.target, stack: this.stack });
    if (this.json) this.printJson(w);
    else this.out(`Created workspace ${w.root} on stack ${w.stack} (glayer mount-view [--live] -C ${w.root} makes its view)\n`);
    return 0;
  }
}

export class WorkspaceListCommand extends GlayerCommand {
  static paths = [['workspace'], ['workspace', 'list']];
  static usage = Command.Usage({
    category: 'Stacks',
    description: 'list the workspaces of this store',
    details: `
      The store's first workspace and every linked one (\`glayer workspace add\`), \`*\` marking this one, with the
      stack each is on and its view (\`live\` when it is a mount).
    `,
    examples: [['List them', '$0 workspace'], ['As JSON', '$0 workspace list --json']],
  });

  async run(): Promise<number> {
    const list = await listWorkspaces({ cwd: this.cwd });
    if (this.json) { this.printJson(list); return 0; }
    this.out(table(list.map((w) => [w.current ? '*' : ' ', w.root, w.stack, w.view ? `${w.live ? 'live ' : ''}view ${w.view}` : '(no view)'])));
    return 0;
  }
}

export class WorkspaceRemoveCommand extends GlayerCommand {
  static paths = [['workspace', 'remove']];
  static usage = Command.Usage({
    category: 'Stacks',
    description: 'remove a linked workspace',
    details: `
      Removes the linked workspace PATH: its \`.glayer\` file, its writable layer and its private state. A copied
      view stays as plain files. Refused while its view is a live mount (unmount it first), and while its writable
      layer holds changes unless \`--force\`. Its layers stay in the store.
    `,
    examples: [['Remove one', '$0 workspace remove ../ws2']],
  });

  force = Option.Boolean('--force', false, { description: 'Remove it even with uncommitted changes' });
  target = Option.String({ name: 'PATH' });

  async run(): Promise<number> {
    const w = await removeWorkspace({ cwd: this.cwd, path: this.target, force: this.force });
    if (this.json) this.printJson(w);
    else this.out(`Removed workspace ${w.root}\n`);
    return 0;
  }
}
