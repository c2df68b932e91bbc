// Stopping worker threads that run zlib (src/sys/workers.ts). node 20 aborts the whole process when a worker is
// terminated between a zlib handle's creation and its initialisation: with worker.terminate() the loop below dies
// after 30 to 250 terminations here ("close before init"), and the test suite runs in one process. Each round
// starts workers that deflate small buffers as fast as they can and stops them a random moment later: the child
// must come through every round, and every worker must have ended by leaving its loop (a terminate() cuts it off).
import { test } from 'uvu';
import { STOPPABLE, startWorker, stopWorker } from '../../src/sys/workers.js';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const WORKERS = fileURLToPath(new URL('../../src/sys/workers.ts', import.meta.url));

const child = (stop: 'stopWorker' | 'terminate', rounds: number) => `
import { STOPPABLE, startWorker, stopWorker } from ${JSON.stringify(WORKERS)};
const source = STOPPABLE + \`
const { parentPort } = require('node:worker_threads');
const zlib = require('node:zlib');
const b = Buffer.alloc(3000, 'glayer ');
parentPort.on('message', (m) => {
  if (m === null) return;
  while (!stopped()) zlib.deflateSync(b, { level: 1 });
  parentPort.postMessage('left the loop');
});
parentPort.postMessage('ready');
\`;
let clean = 0;
for (let round = 0; round < ${rounds}; round++) {
  const ws = Array.from({ length: 4 }, () => startWorker(source));
  await Promise.all(ws.map((w) => new Promise((r) => w.once('message', r))));
  for (const w of ws) { w.on('message', (m) => { if (m === 'left the loop') clean++; }); w.postMessage('go'); }
  await new Promise((r) => setTimeout(r, Math.random() * 4));
  await Promise.all(ws.map((w) => ${stop === 'stopWorker' ? 'stopWorker(w)' : 'w.terminate()'}));
}
console.log(\`\${clean} of \${4 * ${rounds}} workers left their loop\`);
`;

test('stopWorker ends busy zlib workers without aborting the process, round after round', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child('stopWorker', 25)], { encoding: 'utf8', timeout: 120_000 });
  assert.is(r.stderr.includes('Assertion failed'), false, r.stderr.slice(0, 400));
  assert.is(r.status, 0, r.stderr.slice(0, 400));
  // Each worker was asked, and finished the item it was on: none was cut off.
  assert.is(r.stdout.trim(), '100 of 100 workers left their loop');
});

// A writer whose thread died (an error) or was stopped already is stopped again on every cleanup path: that must
// not wait for an exit that has happened.
test('stopWorker of a worker that has ended, or is stopped twice, resolves', async () => {
  const failing = startWorker(STOPPABLE + "throw new Error('broken');");
  await new Promise((r) => failing.once('error', r));
  await new Promise((r) => setTimeout(r, 50));
  const idle = startWorker(STOPPABLE);
  await Promise.race([
    Promise.all([stopWorker(failing), stopWorker(idle), stopWorker(idle)]),
    new Promise((_, reject) => setTimeout(() => reject(new Error('stopWorker waited for an exit that had happened')), 10_000)),
  ]);
});

test.run();
