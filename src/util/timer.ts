/** Limits of Node.js timers. */

/** Maximum delay of a Node.js timer, in ms: about 24.8 days. */
export const maxTimerMs = 2 ** 31 - 1;

/**
 * Returns `timeoutMs` when a Node.js timer can wait that long, and
 * undefined, no deadline, for longer ones. A longer delay would make the
 * timer fire at once.
 */
export function timerMs(timeoutMs: number | undefined): number | undefined {
  return timeoutMs !== undefined && timeoutMs <= maxTimerMs
    ? timeoutMs
    : undefined;
}
