import { runCli } from './cli.js';
import { runAbortCleanups } from '../sys/abort.js';
import { injectFault } from '../sys/fs.js';

// The test seam (src/sys/fs.ts): GLAYER_TEST_FAULT=ENOSPC@17 makes the 17th file-system call fail with ENOSPC.
const fault = process.env.GLAYER_TEST_FAULT && /^([A-Z][A-Z0-9]*)@(\d+)$/.exec(process.env.GLAYER_TEST_FAULT);
if (fault) injectFault({ errno: fault[1], nth: Number(fault[2]) });

// Signals: clean up what can be (our lock, our temporary files) and stop with the shell's status for the
// signal, 128 + its number. What was written so far is crash-safe by design (the old state or the new one).
// A second signal while the first is handled stops at once.
let stopping = false;
for (const [signal, n] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]] as const) {
  process.on(signal, () => {
    if (!stopping) { stopping = true; runAbortCleanups(); }
    process.exit(128 + n);
  });
}

// The reader of our output went away (`glayer status | head -1`): stop quietly, as git does when SIGPIPE kills it
// (status 141 = 128 + SIGPIPE). node ignores SIGPIPE, so the write fails with EPIPE instead.
const onStreamError = (e: NodeJS.ErrnoException): void => {
  if (e.code === 'EPIPE') { runAbortCleanups(); process.exit(141); }
  process.exitCode = 74;
};
process.stdout.on('error', onStreamError);
process.stderr.on('error', onStreamError);

runCli(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e) => { process.stderr.write(`glayer: internal error: ${(e as Error)?.message ?? e} (please report this bug)\n`); process.exitCode = 70; },
);
