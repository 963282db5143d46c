import { unpackAny } from "../any/index.js";
import {
  type Progress,
  ProgressSchema,
} from "../gen/containerd/types/transfer/progress_pb.js";
import type { Stream } from "../streaming/index.js";

export type { Progress };

/**
 * The error that a caller's callback threw while it handled a progress
 * event. `callback` names the option that the caller passed, such as
 * `onProgress` or `onWarning`.
 */
export class ProgressCallbackError extends Error {
  constructor(
    readonly thrown: unknown,
    readonly callback = "onProgress",
  ) {
    super(`the ${callback} callback threw`, { cause: thrown });
    this.name = "ProgressCallbackError";
  }
}

/**
 * Reads Progress events from a progress stream until the server ends it,
 * handing each to `onProgress`. Resolves at the end of the stream; rejects
 * when the stream fails or carries another message type. Once
 * `onProgress` throws, the rest of the stream is read without it, so that
 * the server is never left waiting to send, and the promise rejects with
 * a {@link ProgressCallbackError} at the end.
 */
export async function readProgress(
  stream: Stream,
  onProgress: (event: Progress) => void,
): Promise<void> {
  let callbackError: ProgressCallbackError | undefined;
  for (;;) {
    const message = await stream.receive();
    if (message === undefined) {
      break;
    }
    const event = unpackAny(message, ProgressSchema);
    if (callbackError === undefined) {
      try {
        const result: unknown = onProgress(event);
        // An async callback's rejection counts as a throw, rather than
        // ending the process as an unhandled rejection.
        if (result instanceof Promise) {
          result.catch((error: unknown) => {
            callbackError ??= new ProgressCallbackError(error);
          });
        }
      } catch (error) {
        callbackError =
          error instanceof ProgressCallbackError
            ? error
            : new ProgressCallbackError(error);
      }
    }
  }
  if (callbackError !== undefined) {
    throw callbackError;
  }
}

/**
 * Progress event with which this package's server reports a warning of a
 * copy, such as an entry it skipped: `name` is the container path and
 * `parents` contains the warning's code and its message.
 */
export const warningEvent = "warning";

/** A warning carried by a Progress event. */
export interface ProgressWarning {
  code: string;
  message: string;
  path: string;
}

/** Returns the warning that `event` carries, or undefined for other events. */
export function progressWarning(event: Progress): ProgressWarning | undefined {
  const [code, message] = event.parents;
  if (event.event !== warningEvent || code === undefined) {
    return undefined;
  }
  return { code, message: message ?? code, path: event.name };
}
