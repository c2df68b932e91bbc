/**
 * Worker threads that run zlib are stopped by asking them, never with terminate(): node 20 aborts the whole
 * process (node_zlib.cc, `Assertion failed: init_done_ && "close before init"`, in the worker's cleanup) when a
 * worker is terminated between a zlib handle's creation and its initialisation, which a terminate() while the
 * thread is in deflateSync or inflateSync can hit. It did, in the import test whose corrupt layer stops the
 * deflate threads halfway.
 *
 * A stoppable worker's source starts with STOPPABLE, which defines `stopped()` (true once stopWorker was called:
 * a flag shared with the thread) and ends the thread when the port receives `null`. Its message handler returns
 * at once for a message that arrives after the stop and checks `stopped()` between items, so a stop waits for at
 * most one item. stopWorker() sets the flag, sends the null, and keeps the process alive until the thread has
 * ended (an exiting process would terminate it).
 */
import { Worker } from 'node:worker_threads';

export const STOPPABLE = `
const { parentPort: stopPort, workerData: { stopFlag } } = require('node:worker_threads');
const stopped = () => Atomics.load(stopFlag, 0) === 1;
stopPort.on('message', (m) => { if (m === null) stopPort.close(); });
`;

const flags = new WeakMap<Worker, Int32Array>();
/** Workers whose thread has ended (an error, or a stop): stopping one again has nothing to wait for. */
const ended = new WeakSet<Worker>();

/** A worker running `source` (which starts with STOPPABLE). */
export function startWorker(source: string): Worker {
  const stopFlag = new Int32Array(new SharedArrayBuffer(4));
  // Plain CommonJS, whatever flags started the process (--input-type=module would make `require` undefined).
  const w = new Worker(source, { eval: true, workerData: { stopFlag }, execArgv: [] });
  flags.set(w, stopFlag);
  w.once('exit', () => ended.add(w));
  return w;
}

/** Ask a worker made by startWorker to end after the item it is on; resolves when it has ended. */
export function stopWorker(w: Worker): Promise<void> {
  Atomics.store(flags.get(w)!, 0, 1);
  if (ended.has(w)) return Promise.resolve();
  const exit = new Promise<void>((resolve) => w.once('exit', () => resolve()));
  w.ref();
  try { w.postMessage(null); } catch { /* already gone */ }
  return exit;
}
