/**
 * The client end of a Streaming.Stream call, over any connect-es transport.
 */

import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { type Any, packAny, typeNameOf } from "../any/index.js";
import {
  abortReason,
  Code,
  TransferError,
  throwIfAborted,
} from "../errors/index.js";
import {
  StreamInitSchema,
  Streaming,
} from "../gen/containerd/services/streaming/v1/streaming_pb.js";
import type { Transport } from "../transport/index.js";
import { Pushable } from "../util/pushable.js";
import type { Stream } from "./stream.js";

export interface OpenStreamOptions {
  /** Metadata for the call: the namespace and, over gRPC, a lease. */
  headers?: Record<string, string>;
  /** Aborts the handshake and, later, the whole stream. */
  signal?: AbortSignal;
}

/**
 * Opens a Streaming.Stream call, sends `StreamInit{id}` and waits for the
 * server's acknowledgement. The id may be referenced in a Transfer request
 * only after this resolves, because the server registers the stream before
 * it acknowledges.
 */
export async function openStream(
  transport: Transport,
  id: string,
  options: OpenStreamOptions = {},
): Promise<Stream> {
  throwIfAborted(options.signal);
  const stream = new ClientStream(transport, id, options);
  try {
    await stream.handshake();
  } catch (error) {
    stream.abort(error);
    throw stream.failure(error, `failed to create stream ${id}`);
  }
  return stream;
}

class ClientStream implements Stream {
  readonly id: string;
  readonly #outgoing = new Pushable<Any>(1);
  readonly #controller = new AbortController();
  readonly #incoming: AsyncIterator<Any>;
  readonly #signal?: AbortSignal;
  readonly #onAbort = () => this.abort(abortReason(this.#signal!));
  #abortReason?: TransferError;
  #ended = false;

  constructor(transport: Transport, id: string, options: OpenStreamOptions) {
    this.id = id;
    this.#signal = options.signal;
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    const client = createClient(Streaming, transport);
    const responses = client.stream(this.#outgoing, {
      signal: this.#controller.signal,
      headers: options.headers,
    });
    this.#incoming = responses[Symbol.asyncIterator]();
  }

  async handshake(): Promise<void> {
    const init = packAny(StreamInitSchema, { id: this.id });
    const [, ack] = await Promise.all([
      this.#outgoing.push(init),
      this.#incoming.next(),
    ]);
    if (ack.done) {
      throw new TransferError(
        "the server ended the stream before acknowledging it",
        Code.Unavailable,
      );
    }
    // Go clients ignore the acknowledgement's content; containerd and the
    // shims send google.protobuf.Empty.
    if (typeNameOf(ack.value) !== EmptySchema.typeName) {
      throw new TransferError(
        `unexpected acknowledgement of type "${ack.value.typeUrl}"`,
        Code.Internal,
      );
    }
  }

  send(message: Any): Promise<void> {
    if (this.#abortReason) {
      return Promise.reject(this.#abortReason);
    }
    return this.#outgoing.push(message).catch((error) => {
      throw this.failure(error, `failed to send on stream ${this.id}`);
    });
  }

  async receive(): Promise<Any | undefined> {
    if (this.#abortReason) {
      throw this.#abortReason;
    }
    if (this.#ended) {
      return undefined;
    }
    try {
      const result = await this.#incoming.next();
      if (result.done) {
        this.#ended = true;
        this.#release();
        return undefined;
      }
      return result.value;
    } catch (error) {
      throw this.failure(error, `stream ${this.id} failed`);
    }
  }

  async closeSend(): Promise<void> {
    this.#outgoing.end();
  }

  abort(reason?: unknown): void {
    if (this.#abortReason) {
      return;
    }
    this.#abortReason =
      reason === undefined
        ? new TransferError(`stream ${this.id} aborted`, Code.Canceled)
        : TransferError.from(reason, Code.Canceled);
    this.#outgoing.fail(this.#abortReason);
    this.#controller.abort(this.#abortReason);
    this.#release();
  }

  /** Returns the error to report: the abort reason if there is one. */
  failure(error: unknown, context: string): TransferError {
    if (this.#abortReason) {
      return this.#abortReason;
    }
    const cause = TransferError.from(error, Code.Unavailable);
    return new TransferError(
      `${context}: ${cause.rawMessage}`,
      cause.code,
      cause,
    );
  }

  #release(): void {
    this.#signal?.removeEventListener("abort", this.#onAbort);
  }
}
