import { type Any, packAny } from "../any/index.js";
import { Code, TransferError } from "../errors/index.js";
import { WriteStreamSchema } from "../gen/containerd/types/transfer/streaming_pb.js";
import {
  type ByteSink,
  checkReceiveOptions,
  receiveBytes,
  type Stream,
  watchStream,
} from "../streaming/index.js";
import { tarMediaType } from "./read-stream.js";
import { StreamEnd } from "./stream-end.js";
import { TarTrailerDetector } from "./tar-trailer.js";

export interface ReceivingOptions {
  /** Called with the total bytes received so far. */
  onBytes?: (totalBytes: number) => void;
  /**
   * Bytes granted to the sender at a time, 1 to 1073741823. Default 64 KiB.
   */
  windowBytes?: number;
  /** Whether to end the sink after the last byte. Default true. */
  endSink?: boolean;
  /**
   * Declares that the sink, a Node Writable, keeps no reference to a chunk
   * once it has called that chunk's write callback, so the transport may
   * reuse the chunk's memory. Default false.
   */
  reuseChunks?: boolean;
  /**
   * Rejects with DataLoss when the stream ends before a tar end-of-archive
   * marker, so that a server that ends a tar stream early cannot pass a
   * truncated archive as whole. Default false.
   */
  requireTarEnd?: boolean;
}

/**
 * Bytes from the server to the client, such as a tar archive of a container
 * path. `wait()` resolves once the server ended the stream and the sink has
 * flushed every byte. An 'error' that a Node sink emits from construction
 * on is kept and rejects `wait()` and the transfer.
 */
export class WriteStream extends StreamEnd {
  protected readonly purpose = "data";
  readonly mediaType: string;
  readonly #sink: ByteSink;
  readonly #options: ReceivingOptions;

  constructor(
    sink: ByteSink,
    mediaType = tarMediaType,
    options: ReceivingOptions = {},
  ) {
    super();
    watchStream(sink);
    checkReceiveOptions(options);
    this.#sink = sink;
    this.mediaType = mediaType;
    this.#options = options;
  }

  protected describe(streamId: string): Any {
    return packAny(WriteStreamSchema, {
      stream: streamId,
      mediaType: this.mediaType,
    });
  }

  protected async pump(stream: Stream, signal: AbortSignal): Promise<void> {
    if (!this.#options.requireTarEnd) {
      await receiveBytes(stream, this.#sink, { ...this.#options, signal });
      return;
    }
    const detector = new TarTrailerDetector();
    const received = await receiveBytes(stream, this.#sink, {
      ...this.#options,
      signal,
      // Bytes after the marker are passed on too: the stream ends when the
      // server ends it.
      isComplete: (chunk) => {
        detector.push(chunk);
        return false;
      },
    });
    if (!detector.complete) {
      throw new TransferError(
        `tar archive truncated: the stream ended after ${received} bytes ` +
          "without the end-of-archive marker",
        Code.DataLoss,
      );
    }
  }
}
