import { Command, Option } from 'clipanion';
import { remoteAdd, remoteList, remoteRemove } from '../../api/remote.js';
import { GlayerCommand } from '../base.js';
import { table } from '../format.js';

export class RemoteAddCommand extends GlayerCommand {
  static paths = [['remote', 'add']];
  static usage = Command.Usage({
    category: 'Sharing',
    description: 'name a remote repository',
    details: `
      Records NAME -> URL in the store's git config, as git does (\`[remote "NAME"]\` with \`url\` and \`fetch\`), so
      native git sees it too. URL is an http(s) URL, an ssh URL or \`host:path\`, a \`file://\` URL or a path to a git
      repository or a glayer workspace (a relative path is made absolute). Credentials may be written into an
      https URL; \`remote list\` never shows the password.
    `,
    examples: [
      ['A bare repository on this machine', '$0 remote add origin /srv/layers.git'],
      ['A git host over https', '$0 remote add origin https://git.example.com/team/base.git'],
    ],
  });

  name = Option.String({ name: 'NAME' });
  url = Option.String({ name: 'URL' });

  async run(): Promise<number> {
    const r = await remoteAdd({ cwd: this.cwd, name: this.name, url: this.url });
    if (this.json) this.printJson(r);
    else this.out(`Added remote ${r.name} -> ${r.url}\n`);
    return 0;
  }
}

export class RemoteRemoveCommand extends GlayerCommand {
  static paths = [['remote', 'remove'], ['remote', 'rm']];
  static usage = Command.Usage({
    category: 'Sharing',
    description: 'forget a remote and its remote-tracking stacks',
    details: `
      Removes the remote from the store's config and deletes its remote-tracking refs (\`refs/remotes/NAME/*\`).
      Layers already fetched stay in the store.
    `,
    examples: [['Forget origin', '$0 remote remove origin']],
  });

  name = Option.String({ name: 'NAME' });

  async run(): Promise<number> {
    const r = await remoteRemove({ cwd: this.cwd, name: this.name });
    if (this.json) this.printJson(r);
    else this.out(`Removed remote ${r.name}\n`);
    return 0;
  }
}

export class RemoteListCommand extends GlayerCommand {
  static paths = [['remote', 'list'], ['remote']];
  static usage = Command.Usage({
    category: 'Sharing',
    description: 'list the remotes',
    details: `One line per remote: its name and URL (passwords shown as \`***\`).`,
    examples: [['List the remotes', '$0 remote list'], ['As JSON', '$0 remote list --json']],
  });

  async run(): Promise<number> {
    const list = await remoteList({ cwd: this.cwd });
    if (this.json) this.printJson(list);
    else if (list.length) this.out(table(list.map((r) => [r.name, r.url])));
    return 0;
  }
}
