/**
 * The receiving side of a flow-controlled byte stream. It grants the first
 * window before any Data can arrive and grants again whenever half of the
 * window or less is outstanding. Credit counts bytes the sink has taken, so a slow
 * sink slows the sender instead of filling memory.
 */
import { Code, orAbort, TransferError } from "../errors/index.js";
import { integerOption } from "../util/options.js";
import { releaseReceivedMemory } from "../util/received-memory.js";
import { packWindowUpdate, unpackData } from "./data.js";
import {
  type ByteSink,
  sinkError,
  watchedError,
  watchStream,
  writeSink,
} from "./io.js";
import type { Stream } from "./stream.js";
import { goWindowBytes, maxCredit } from "./window.js";

/**
 * Largest window a receiver grants: half of the largest credit, rounded
 * down, so that a top-up of half a window never overflows the credit.
 */
export const maxWindowBytes = Math.floor(maxCredit / 2);

/**
 * Returns the window of `options`. Throws InvalidArgument for a window
 * that is not an integer from 1 to {@link maxWindowBytes}.
 */
export function checkReceiveOptions(options: { windowBytes?: number }): number {
  return integerOption(
    "windowBytes",
    options.windowBytes,
    goWindowBytes,
    1,
    maxWindowBytes,
  );
}

export interface ReceiveBytesOptions {
  /** Aborts the receive; the stream and the sink are aborted too. */
  signal?: AbortSignal;
  /**
   * Bytes granted at a time. Default 64 KiB, what containerd's Go
   * receivers grant; a larger window lets a sender of this package send
   * larger chunks.
   */
  windowBytes?: number;
  /** Whether to end the sink after the last byte. Default true. */
  endSink?: boolean;
  /** Called after each Data message with the total bytes received. */
  onBytes?: (totalBytes: number) => void;
  /**
   * Called with each payload after it was written. Returning true ends the
   * receive as complete without waiting for the sender's half-close: for
   * payloads that mark their own end, such as a tar archive from a server
   * that never ends the stream.
   */
  isComplete?: (chunk: Uint8Array) => boolean;
  /**
   * Declares that the sink, a Node Writable, keeps no reference to a chunk
   * once it has called that chunk's write callback. The transport may then
   * reuse the chunk's memory for a later message, which saves an
   * allocation per message. Default false, because a sink such as a
   * PassThrough passes chunks on before their bytes are used.
   */
  reuseChunks?: boolean;
}

/**
 * Receives bytes from `stream` into `sink` until the sender half-closes the
 * stream (or `isComplete` returns true), then ends the sink. Resolves with
 * the number of bytes received. Rejects, after aborting the stream and the
 * sink, when the stream fails, the sender breaks the protocol, the sink
 * fails, or the signal aborts.
 */
export async function receiveBytes(
  stream: Stream,
  sink: ByteSink,
  options: ReceiveBytesOptions = {},
): Promise<number> {
  watchStream(sink);
  const window = checkReceiveOptions(options);
  const writer = writeSink(sink, { end: options.endSink });
  const { signal } = options;
  let granted = 0;
  let received = 0;

  // Once half of the window is used, the grant tops the sender's credit up
  // to a whole window again. That is one WindowUpdate per half window, not
  // one per Data message, and the sender never has more than a window of credit.
  const grant = async () => {
    const outstanding = granted - received;
    if (outstanding <= window / 2) {
      const update = window - outstanding;
      await orAbort(stream.send(packWindowUpdate(update)), signal);
      granted += update;
    }
  };
  // A sender that has sent its last byte may end the call while its Data
  // is still queued here, and a ttrpc client then rejects further sends.
  // So after the first grant, a grant that cannot be sent stops the grants
  // but not the receive: the queued Data and the end still arrive, and a
  // stream that broke fails the next receive.
  let grantsStopped = false;
  const grantMore = async () => {
    if (grantsStopped) {
      return;
    }
    try {
      await grant();
    } catch (error) {
      if (signal?.aborted) {
        throw error;
      }
      grantsStopped = true;
    }
  };

  try {
    // A sink that failed before the first byte fails the receive before
    // the sender is granted anything.
    const early = watchedError(sink);
    if (early !== undefined) {
      throw sinkError(early);
    }
    await grant();
    for (;;) {
      const message = await orAbort(stream.receive(), signal);
      if (message === undefined) {
        break;
      }
      const data = unpackData(message);
      if (received + data.length > granted) {
        throw new TransferError(
          `the sender exceeded its window on stream ${stream.id}: ` +
            `${received + data.length} bytes received, ${granted} granted`,
          Code.InvalidArgument,
        );
      }
      // A released chunk is reused only when a later message is decoded,
      // which happens after the checks below have read it.
      await orAbort(
        writer.write(
          data,
          options.reuseChunks ? () => releaseReceivedMemory(data) : undefined,
        ),
        signal,
      );
      received += data.length;
      options.onBytes?.(received);
      if (options.isComplete?.(data)) {
        break;
      }
      await grantMore();
    }
    await orAbort(writer.end(), signal);
    await stream.closeSend();
    return received;
  } catch (error) {
    const failure = TransferError.from(error);
    stream.abort(failure);
    writer.abort(failure);
    throw failure;
  }
}
