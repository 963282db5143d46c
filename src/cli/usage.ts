/**
 * Usage errors: a command-line argument or option that the command
 * rejects before it sends any request. The command exits with 2 for
 * these, and with 1 for every failure of the operation itself, including
 * an InvalidArgument that the server returns.
 */
import { Code, TransferError } from "../errors/index.js";

const usageErrors = new WeakSet<Error>();

/** Returns an InvalidArgument error that the command reports as misuse. */
export function usageError(message: string, cause?: unknown): TransferError {
  const error = new TransferError(message, Code.InvalidArgument, cause);
  usageErrors.add(error);
  return error;
}

/** Returns whether `error` came from {@link usageError}. */
export function isUsageError(error: unknown): boolean {
  return error instanceof Error && usageErrors.has(error);
}
