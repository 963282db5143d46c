/**
 * The caller's callbacks of a copy, guarded so that an async callback's
 * rejected promise fails the copy instead of ending the process.
 */
import { Code, TransferError } from "../errors/index.js";

interface CallbackOptions {
  signal?: AbortSignal;
  onProgress?: (...args: never[]) => unknown;
  onWarning?: (...args: never[]) => unknown;
}

/**
 * Runs `copy` with `options` whose `onProgress` and `onWarning` are
 * watched: when one throws, or returns a promise that rejects before the
 * copy settles, the copy is stopped and rejects with Unknown "the NAME
 * callback threw". A rejection after that is ignored.
 */
export async function withGuardedCallbacks<O extends CallbackOptions, R>(
  options: O,
  copy: (guarded: O) => Promise<R>,
): Promise<R> {
  const stop = new AbortController();
  let failure: TransferError | undefined;
  let settled = false;
  const guard = <F extends ((...args: never[]) => unknown) | undefined>(
    name: string,
    callback: F,
  ): F => {
    if (callback === undefined) {
      return callback;
    }
    const fail = (error: unknown) => {
      if (settled || failure !== undefined) {
        return;
      }
      failure = new TransferError(
        `the ${name} callback threw: ` +
          (error instanceof Error ? error.message : String(error)),
        Code.Unknown,
        error,
      );
      stop.abort(failure);
    };
    return ((...args: never[]) => {
      let result: unknown;
      try {
        result = callback(...args);
      } catch (error) {
        // The copy fails with this error too; the failure names the
        // callback, whichever part of the copy called it.
        fail(error);
        throw error;
      }
      if (isPromiseLike(result)) {
        result.then(undefined, fail);
      }
      return result;
    }) as F;
  };

  const guarded: O = {
    ...options,
    signal: options.signal
      ? AbortSignal.any([options.signal, stop.signal])
      : stop.signal,
    onProgress: guard("onProgress", options.onProgress),
    onWarning: guard("onWarning", options.onWarning),
  };
  try {
    const result = await copy(guarded);
    if (failure !== undefined) {
      throw failure;
    }
    return result;
  } catch (error) {
    // The caller's own abort wins over a callback's failure.
    throw failure !== undefined && !options.signal?.aborted ? failure : error;
  } finally {
    settled = true;
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}
