import { unpackAny } from "../any/index.js";
import {
  type Progress,
  ProgressSchema,
} from "../gen/containerd/types/transfer/progress_pb.js";
import type { Stream } from "../streaming/index.js";

export type { Progress };

/**
 * Reads Progress events from a progress stream until the server ends it,
 * handing each to `onProgress`. Resolves at the end of the stream; rejects
 * when the stream fails or carries another message type.
 */
export async function readProgress(
  stream: Stream,
  onProgress: (event: Progress) => void,
): Promise<void> {
  for (;;) {
    const message = await stream.receive();
    if (message === undefined) {
      return;
    }
    onProgress(unpackAny(message, ProgressSchema));
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
