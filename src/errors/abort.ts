import { Code, TransferError } from "./transfer-error.js";

/**
 * Returns the TransferError for an aborted signal: Canceled, or
 * DeadlineExceeded when the signal's reason is a TimeoutError. The signal's
 * reason stays as the cause.
 */
export function abortReason(signal: AbortSignal): TransferError {
  const reason: unknown = signal.reason;
  if (reason instanceof TransferError) {
    return reason;
  }
  const timedOut = reason instanceof Error && reason.name === "TimeoutError";
  const message = reason instanceof Error ? reason.message : String(reason);
  return new TransferError(
    timedOut ? `timed out: ${message}` : `canceled: ${message}`,
    timedOut ? Code.DeadlineExceeded : Code.Canceled,
    reason,
  );
}

/** Throws {@link abortReason} if the signal is already aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw abortReason(signal);
  }
}

/**
 * Returns `promise`, or a rejection with the abort reason if `signal`
 * aborts first. The abort listener is removed as soon as `promise`
 * settles, so a loop that calls this once per chunk keeps no reference
 * to earlier chunks.
 */
export function orAbort<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
): Promise<T> {
  if (!signal) {
    return promise;
  }
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(abortReason(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
