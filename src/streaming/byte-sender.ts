/**
 * The sending side of a flow-controlled byte stream. The receiver speaks
 * first with a WindowUpdate; Data is sent only within the granted credit,
 * and the end of data is the half-close of the stream.
 */
import { Code, orAbort, TransferError } from "../errors/index.js";
import { integerOption } from "../util/options.js";
import { packData, unpackWindowUpdate } from "./data.js";
import {
  type ByteSource,
  readSource,
  takeReuseCallback,
  watchStream,
} from "./io.js";
import type { Stream } from "./stream.js";
import {
  Credit,
  chunkBytesFor,
  goMaxChunkBytes,
  goWindowBytes,
  largeChunkMaxBytes,
} from "./window.js";

export interface SendBytesOptions {
  /** Aborts the send; the stream is aborted too. */
  signal?: AbortSignal;
  /**
   * Largest Data payload while the receiver grants Go-sized windows
   * (64 KiB at a time), 1 byte to 1 MiB. Default 32 KiB, what
   * containerd's Go receivers expect.
   */
  maxChunkBytes?: number;
  /**
   * Largest Data payload once the receiver has granted more than 64 KiB in
   * one update, which only a receiver of this package does. By default a
   * quarter of the largest grant, between 256 KiB and 1 MiB: 1 MiB for the
   * 4 MiB window of this package's server. At most 1 MiB.
   */
  largeChunkBytes?: number;
  /** Called after each Data message with the total bytes sent so far. */
  onBytes?: (totalBytes: number) => void;
}

/**
 * Checks the chunk sizes of `options`. Throws InvalidArgument for a size
 * that is not an integer from 1 byte to 1 MiB.
 */
export function checkSendOptions(options: SendBytesOptions): void {
  integerOption(
    "maxChunkBytes",
    options.maxChunkBytes,
    goMaxChunkBytes,
    1,
    largeChunkMaxBytes,
  );
  integerOption(
    "largeChunkBytes",
    options.largeChunkBytes,
    largeChunkMaxBytes,
    1,
    largeChunkMaxBytes,
  );
}

/**
 * Sends every byte of `source` on `stream`, then half-closes it. Resolves
 * with the number of bytes sent. Rejects, after aborting the stream, when
 * the source throws, the stream fails, the receiver ends the stream before
 * all bytes were sent, or the signal aborts.
 *
 * The stream's receive side keeps being read in the background after this
 * resolves; the stream's owner tears it down when the transfer is over.
 *
 * Over ttrpc, pieces of `source` larger than 64 KiB are written to the
 * socket without being copied, possibly after this resolves, so the
 * source must not change a chunk after yielding it (see {@link ByteSource}).
 */
export async function sendBytes(
  stream: Stream,
  source: ByteSource,
  options: SendBytesOptions = {},
): Promise<number> {
  watchStream(source);
  try {
    checkSendOptions(options);
  } catch (error) {
    stream.abort(error);
    throw error;
  }
  const maxChunk = options.maxChunkBytes ?? goMaxChunkBytes;
  const credit = new Credit();
  let largestGrant = 0;
  let total = 0;
  let finished = false;

  const readGrants = async () => {
    for (;;) {
      const message = await stream.receive();
      if (message === undefined) {
        // The receiver chose to stop, as stat does after the first header:
        // a cancel by the other end, not a fault of the sender.
        throw new TransferError(
          `the receiver ended stream ${stream.id} after ${total} bytes, ` +
            "before the sender finished",
          Code.Canceled,
        );
      }
      const update = unpackWindowUpdate(message);
      largestGrant = Math.max(largestGrant, update);
      credit.add(update);
    }
  };
  readGrants().catch((error) => {
    credit.fail(error);
    if (!finished) {
      stream.abort(error);
    }
  });

  const { signal } = options;
  const chunks = readSource(source);
  try {
    for (;;) {
      const next = await orAbort(chunks.next(), signal);
      if (next.done) {
        break;
      }
      const chunk = next.value;
      // One count for each piece not yet written, and one for this loop.
      const reuse = takeReuseCallback(chunk);
      let holders = 1;
      const release =
        reuse &&
        (() => {
          holders--;
          if (holders === 0) {
            reuse();
          }
        });
      for (let offset = 0; offset < chunk.length; ) {
        const limit =
          largestGrant <= goWindowBytes
            ? maxChunk
            : (options.largeChunkBytes ?? chunkBytesFor(largestGrant));
        const wanted = Math.min(limit, chunk.length - offset);
        const size = await orAbort(credit.take(wanted), signal);
        if (release) {
          holders++;
        }
        await orAbort(
          stream.send(packData(chunk.subarray(offset, offset + size), release)),
          signal,
        );
        offset += size;
        total += size;
        options.onBytes?.(total);
      }
      release?.();
    }
    finished = true;
    await stream.closeSend();
    return total;
  } catch (error) {
    finished = true;
    const failure = TransferError.from(error);
    stream.abort(failure);
    // A source stuck in a read finishes its return only after that read,
    // which may never come, so the failure does not wait for it.
    chunks.return(undefined).catch(() => {});
    throw failure;
  }
}
