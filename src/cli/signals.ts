/**
 * The command's handling of SIGINT, SIGTERM and SIGHUP. The first signal
 * aborts the running command, which then cleans up and exits with 130.
 * The same signal can arrive twice at once, because `timeout` and a
 * terminal send it both to the process and to its process group, so
 * another signal within {@link repeatedSignalMs} of the first is ignored. One after that
 * is a request to stop at once.
 */

/** How long after the first signal another one counts as the same. */
export const repeatedSignalMs = 1000;

// The description of what the running command may leave behind if it
// exits without cleaning up, or undefined for nothing.
let leftover: string | undefined;

/**
 * Records what the running command may leave behind, such as a partial
 * file, so that the message of an exit without cleaning up names it.
 * Undefined means that it would leave nothing.
 */
export function setLeftover(description: string | undefined): void {
  leftover = description;
}

/**
 * Returns the handler to call with the reason of each signal. `exit`
 * runs for a signal that arrives after the repeat window, with a message
 * to print that names what {@link setLeftover} recorded; it must end the
 * process.
 */
export function signalHandler(
  interrupt: AbortController,
  exit: (message: string) => void,
  now: () => number = () => performance.now(),
): (reason: string) => void {
  let firstAt = 0;
  return (reason) => {
    if (!interrupt.signal.aborted) {
      firstAt = now();
      interrupt.abort(new Error(reason));
      return;
    }
    if (now() - firstAt < repeatedSignalMs) {
      return;
    }
    const left = leftover === undefined ? "" : `; ${leftover}`;
    exit(`${reason} again: exiting without cleaning up${left}`);
  };
}
