/**
 * What to undo when the process must stop at once (a signal, or stdout's reader gone): remove our lock file and
 * our temporary files. Everything glayer writes is already crash-safe (a kill -9 at any moment leaves the old
 * state or the new one), so stopping at once is correct; these cleanups only spare the next command a stale lock
 * to take over and `glayer fsck` some temporary files. Each cleanup is synchronous and must not throw.
 */
const cleanups = new Set<() => void>();

/** Register `fn` to run if the process is stopped; call the returned function once it is no longer needed. */
export function onAbort(fn: () => void): () => void {
  cleanups.add(fn);
  return () => { cleanups.delete(fn); };
}

/** Run every registered cleanup, newest first (the lock last: it was taken first). */
export function runAbortCleanups(): void {
  const all = [...cleanups].reverse();
  cleanups.clear();
  for (const fn of all) { try { fn(); } catch { /* best effort: we are stopping */ } }
}
