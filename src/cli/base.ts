import { resolve } from 'node:path';
import { Command, Option } from 'clipanion';
import type { GlayerContext } from './context.js';
import { progressReporter, reportError } from './format.js';

/**
 * Every command takes `-C DIR` (run as if started in DIR, like git) and `--json`. `run()` does the work and
 * returns an exit code; errors are printed here, one line on stderr, never a stack.
 */
export abstract class GlayerCommand extends Command<GlayerContext> {
  dir = Option.String('-C', { description: 'Run as if glayer was started in DIR' });
  json = Option.Boolean('--json', false, { description: 'Print machine-readable JSON' });

  abstract run(): Promise<number>;

  async execute(): Promise<number> {
    try {
      return await this.run();
    } catch (e) {
      return reportError(e, this.context.stderr, this.json, this.context.env, `a file under ${this.cwd}`);
    }
  }

  get cwd(): string {
    return resolve(this.context.cwd, this.dir ?? '.');
  }

  get progress() {
    return this.json ? undefined : progressReporter(this.context.stderr);
  }

  out(text: string): void {
    this.context.stdout.write(text);
  }

  printJson(value: unknown): void {
    this.context.stdout.write(JSON.stringify(value, null, 2) + '\n');
  }

  warn(lines: readonly string[]): void {
    for (const l of lines) this.context.stderr.write(`glayer: warning: ${l}\n`);
  }
}
