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
