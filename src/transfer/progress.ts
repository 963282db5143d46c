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
