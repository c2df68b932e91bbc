import { Command, Option } from 'clipanion';
import { spawn } from 'node:child_process';
import { UsageError } from '../../errors.js';
import { GlayerCommand } from '../base.js';

export class ServeCommand extends GlayerCommand {
  static paths = [['serve']];
  static usage = Command.Usage({
    description: 'browse and review the layers in a web browser (read-only, local)',
    details: `
      Serves a read-only web page over the workspace's store: every stack with its layers and tags, the
      writable layer's pending changes, each layer's file tree with its own changes marked (dive-style), a file's
      content, diff and blame as of a layer, and a comparison of any two layers. Every view has its own URL.

      It prints the URL to open, with a random token (as Jupyter does), and serves until interrupted. It binds
      127.0.0.1 unless \`--host\` says otherwise; it never writes to the workspace.
    `,
    examples: [
      ['Serve the workspace here on a free port', '$0 serve'],
      ['On port 8080, and open a browser', '$0 serve --port 8080 --open'],
      ['Another workspace', '$0 serve -C ~/layers/base'],
    ],
  });

  port = Option.String('--port,-p', { description: 'Port to listen on (default: any free port)' });
  host = Option.String('--host', { description: 'Address to bind (default 127.0.0.1; another address serves file contents to the network)' });
  open = Option.Boolean('--open', false, { description: 'Open the page in the default browser (xdg-open or open)' });

  async run(): Promise<number> {
    const port = this.port === undefined ? 0 : Number(this.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port takes a port number 0..65535, not '${this.port}'`);
    const { serve, isLoopback } = await import('../../serve/server.js');
    const host = this.host ?? '127.0.0.1';
    if (!isLoopback(host)) {
      this.warn([`serving on ${host}: anyone who can reach this address and has the token can read every file of every layer`]);
    }
    let s;
    try {
      s = await serve({ cwd: this.cwd, host, port });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'EADDRINUSE') throw new UsageError(`port ${port} on ${host} is already in use (omit --port to take a free one)`);
      if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') throw new UsageError(`cannot bind ${host}: not an address of this machine`);
      if (err.code === 'EACCES') throw new UsageError(`port ${port}: permission denied`);
      throw e;
    }
    if (this.json) this.printJson({ url: s.openUrl, port: s.port, host: s.host, root: s.root });
    else this.out(`glayer serve: ${s.root}\n\n    ${s.openUrl}\n\nOpen that URL in a browser (it carries the access token). Press Ctrl-C to stop.\n`);
    if (this.open) {
      const opener = process.platform === 'darwin' ? 'open' : 'xdg-open';
      const child = spawn(opener, [s.openUrl], { stdio: 'ignore', detached: true });
      child.on('error', () => this.warn([`could not run ${opener}; open the URL above yourself`]));
      child.unref();
    }
    await new Promise<void>((resolve) => {
      const stop = (): void => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolve(); };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    await s.close();
    return 0;
  }
}
