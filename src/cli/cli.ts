/**
 * The command line: builds the clipanion Cli, registers one class per verb, and runs it with the caller's
 * streams and working directory (so tests run it in-process). Parse errors go to stderr as one line.
 */
import { Builtins, Cli, Command } from 'clipanion';
import type { GlayerContext } from './context.js';
import { useColor } from './format.js';
import { InitCommand } from './commands/init.js';
import { MountViewCommand } from './commands/mount-view.js';
import { StatusCommand } from './commands/status.js';
import { CommitCommand } from './commands/commit.js';
import { LogCommand } from './commands/log.js';
import { InfoCommand } from './commands/info.js';
import { RemoteAddCommand, RemoteListCommand, RemoteRemoveCommand } from './commands/remote.js';
import { PushCommand } from './commands/push.js';
import { FetchCommand } from './commands/fetch.js';
import { PullCommand } from './commands/pull.js';
import { CloneCommand } from './commands/clone.js';
import { StacksCommand } from './commands/stacks.js';
import { DiffCommand } from './commands/diff.js';
import { ShowCommand } from './commands/show.js';
import { BlameCommand } from './commands/blame.js';
import { FsckCommand } from './commands/fsck.js';
import { SquashCommand } from './commands/squash.js';
import { TagCommand } from './commands/tag.js';
import { ResetCommand } from './commands/reset.js';
import { StackDeleteCommand, StackListCommand, StackNewCommand, StackSwitchCommand } from './commands/stack.js';
import { WorkspaceAddCommand, WorkspaceListCommand, WorkspaceRemoveCommand } from './commands/workspace.js';
import { EfficiencyCommand } from './commands/efficiency.js';
import { GcCommand } from './commands/gc.js';
import { ImportCommand } from './commands/import.js';
import { ExportCommand } from './commands/export.js';
import { ImageConfigCommand } from './commands/image-config.js';
import { UmountCommand } from './commands/umount.js';
import { ServeCommand } from './commands/serve.js';

export const VERSION = '0.1.0';

class DefaultCommand extends Command<GlayerContext> {
  static paths = [Command.Default];
  async execute(): Promise<number> {
    this.context.stdout.write(this.cli.usage(null));
    return 0;
  }
}

export const COMMANDS = [InitCommand, MountViewCommand, StatusCommand, CommitCommand, LogCommand, InfoCommand, FsckCommand, DiffCommand, ShowCommand, BlameCommand, RemoteAddCommand, RemoteRemoveCommand, RemoteListCommand, PushCommand, FetchCommand, PullCommand, CloneCommand, StacksCommand, SquashCommand, TagCommand, ResetCommand, StackListCommand, StackNewCommand, StackSwitchCommand, StackDeleteCommand, WorkspaceAddCommand, WorkspaceListCommand, WorkspaceRemoveCommand, EfficiencyCommand, GcCommand, ImportCommand, ExportCommand, ImageConfigCommand, UmountCommand, ServeCommand];

/**
 * The commands a command line can be running: those whose every path word is in argv. Building clipanion's
 * parser for all of them costs about 15 ms of every start, so a line that names a command gets a parser of
 * that command alone (more only when an argument happens to be another command's name). Help, and a line
 * that names none, get them all, for the listing and the suggestions.
 */
export function commandsFor(argv: readonly string[]): typeof COMMANDS {
  // `glayer --version` (clipanion's builtin) needs no command's parser.
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v')) return [];
  if (argv.includes('-h') || argv.includes('--help')) return COMMANDS;
  const words = new Set(argv);
  const named = COMMANDS.filter((c) => c.paths.some((p) => p.every((w) => words.has(w))));
  return named.length ? named : COMMANDS;
}

export function buildCli(color: boolean, commands: readonly (typeof COMMANDS)[number][] = COMMANDS): Cli<GlayerContext> {
  const cli = new Cli<GlayerContext>({ binaryLabel: 'glayer', binaryName: 'glayer', binaryVersion: VERSION, enableColors: color });
  // The default command first: clipanion lists every command when a documented one follows it.
  cli.register(DefaultCommand);
  for (const c of commands) cli.register(c);
  cli.register(Builtins.HelpCommand);
  cli.register(Builtins.VersionCommand);
  // clipanion shows an option's value as `#0`; show a word instead (`-C DIR`, `-m MSG`, `-n N`).
  const usage = cli.usage.bind(cli);
  cli.usage = ((...args: Parameters<typeof usage>) => withPlaceholders(usage(...args))) as typeof cli.usage;
  return cli;
}

export interface RunContext {
  cwd?: string;
  stdin?: NodeJS.ReadableStream;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
  env?: Record<string, string | undefined>;
}

export async function runCli(argv: string[], ctx: RunContext = {}): Promise<number> {
  const stdout = (ctx.stdout ?? process.stdout) as GlayerContext['stdout'];
  const stderr = (ctx.stderr ?? process.stderr) as GlayerContext['stderr'];
  const env = ctx.env ?? process.env;
  const context: GlayerContext = {
    cwd: ctx.cwd ?? process.cwd(),
    stdin: (ctx.stdin ?? process.stdin) as GlayerContext['stdin'],
    stdout,
    stderr,
    env,
    colorDepth: 1,
  };
  const cli = buildCli(useColor(stdout, env), commandsFor(argv));
  let command: Command<GlayerContext>;
  try {
    command = cli.process(argv, context);
    // diff and show need to know where `--` was (clipanion drops it).
    (command as Command<GlayerContext> & { rawArgv?: string[] }).rawArgv = argv;
  } catch (e) {
    const first = (String((e as Error).message ?? e).split('\n').find((l) => l.trim() !== '') ?? 'bad arguments').trim();
    const known = argv[0] !== undefined && COMMANDS.some((c) => c.paths.some((p) => p[0] === argv[0]));
    const message = `${first} (see 'glayer ${known ? argv[0] + ' ' : ''}--help')`;
    if (argv.includes('--json')) stderr.write(JSON.stringify({ error: { code: 'E_USAGE', message } }) + '\n');
    else stderr.write(`glayer: ${message}\n`);
    return 2;
  }
  return cli.run(command, context);
}

/** The word shown for an option's value in help, by option name (others: VALUE). */
const PLACEHOLDERS: Record<string, string> = {
  '-C': 'DIR', '-m': 'MSG', '--message': 'MSG', '-n': 'N', '--max-count': 'N', '--top': 'N', '-U': 'N', '--unified': 'N',
  '--template': 'NAME', '--stack': 'NAME', '--branch': 'NAME', '--from': 'LAYER', '--strategy': 'ours|theirs',
  '--prune': 'now|DATE', '--lowest-efficiency': 'R', '--highest-wasted-bytes': 'B', '--highest-user-wasted-percent': 'P',
  '--find-renames': 'N', '-M': 'N', '--find-copies': 'N',
};

export function withPlaceholders(text: string): string {
  // In the option list the description column is aligned: keep it so by taking spaces from after the word.
  return text.replace(/((?:-{1,2}[A-Za-z][\w-]*)(?:,-{1,2}[A-Za-z][\w-]*)*) #0( *)/g, (_m, names: string, pad: string) => {
    const word = names.split(',').map((n) => PLACEHOLDERS[n]).find((w) => w !== undefined) ?? 'VALUE';
    return `${names} ${word}${pad === '' ? '' : ' '.repeat(Math.max(1, pad.length - (word.length - 2)))}`;
  });
}
