import { runCli } from './cli.js';

runCli(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e) => { process.stderr.write(`glayer: internal error: ${(e as Error)?.message ?? e} (please report this bug)\n`); process.exitCode = 70; },
);
