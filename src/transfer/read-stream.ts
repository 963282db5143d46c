import { type Any, packAny } from "../any/index.js";
import { ReadStreamSchema } from "../gen/containerd/types/transfer/streaming_pb.js";
import {
  type ByteSource,
  checkSendOptions,
  type SendBytesOptions,
  type Stream,
  sendBytes,
  watchStream,
} from "../streaming/index.js";
import { StreamEnd } from "./stream-end.js";

/** The media type of a tar archive, the one container copies accept. */
export const tarMediaType = "application/x-tar";

export interface SendingOptions {
  /** Called with the total bytes sent so far. */
  onBytes?: (totalBytes: number) => void;
  /** Largest Data payload towards a Go receiver, 1 byte to 1 MiB. Default 32 KiB. */
  maxChunkBytes?: SendBytesOptions["maxChunkBytes"];
}

/**
 * Bytes from the client to the server, such as a tar archive to extract in
 * a container. `wait()` resolves once every byte was sent and the stream
 * half-closed. An 'error' that a Node source emits from construction on
 * is kept and rejects `wait()` and the transfer.
 */
export class ReadStream extends StreamEnd {
  protected readonly purpose = "data";
  readonly mediaType: string;
  readonly #source: ByteSource;
  readonly #options: SendingOptions;

  constructor(
    source: ByteSource,
    mediaType = tarMediaType,
    options: SendingOptions = {},
  ) {
    super();
    watchStream(source);
    checkSendOptions(options);
    this.#source = source;
    this.mediaType = mediaType;
    this.#options = options;
  }

  protected describe(streamId: string): Any {
    return packAny(ReadStreamSchema, {
      stream: streamId,
      mediaType: this.mediaType,
    });
  }

  protected async pump(stream: Stream, signal: AbortSignal): Promise<void> {
    await sendBytes(stream, this.#source, { ...this.#options, signal });
  }
}
