/**
 * Streaming calls of the gRPC client, written on Node.js's HTTP/2 stream
 * rather than through connect-node.
 *
 * connect-node encodes each message, copies it into its envelope and
 * writes one envelope at a time, waiting for each write's callback. For a
 * byte stream of 1 MiB Data messages that is three copies of every
 * payload and an idle socket between messages. Here a message recorded
 * with its encoding (see `packData`) goes out as a 5-byte prefix and its
 * parts, without a copy, and the next message is written as soon as the
 * stream's buffer has drained. Unary calls stay with connect-node.
 */
import * as http2 from "node:http2";
import {
  type DescMessage,
  type DescMethodStreaming,
  fromBinary,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type StreamRequest,
  type StreamResponse,
} from "@connectrpc/connect";
import { getAbortSignalReason } from "@connectrpc/connect/protocol";
import {
  validateResponse,
  validateTrailer,
} from "@connectrpc/connect/protocol-grpc";
import {
  encodeMessageParts,
  partsLength,
  takeWrittenCallback,
} from "../any/index.js";
import { checkMessageSize, EnvelopeReader, writeEnvelope } from "./envelope.js";
import { MessageQueue } from "./message-queue.js";
import type { UnixSessionManager } from "./unix-session.js";

const {
  NGHTTP2_CANCEL,
  NGHTTP2_ENHANCE_YOUR_CALM,
  NGHTTP2_INADEQUATE_SECURITY,
  NGHTTP2_REFUSED_STREAM,
} = http2.constants;

/** Message limits of one call, in bytes. */
export interface StreamLimits {
  readMaxBytes: number;
  writeMaxBytes: number;
}

/**
 * Runs one streaming call: opens the HTTP/2 stream, writes the request
 * messages as they come and resolves with the response once its headers
 * arrived. `request.header` must already hold the gRPC request headers.
 * Errors are ConnectErrors; a stream that fails is reset.
 */
export async function callGrpcStream<
  I extends DescMessage,
  O extends DescMessage,
>(
  sessions: UnixSessionManager,
  request: StreamRequest<I, O>,
  limits: StreamLimits,
): Promise<StreamResponse<I, O>> {
  const { method, signal } = request;
  if (signal.aborted) {
    throw ConnectError.from(getAbortSignalReason(signal));
  }
  const headers: http2.OutgoingHttpHeaders = {};
  request.header.forEach((value, key) => {
    headers[key] = value;
  });
  const path = `/${method.parent.typeName}/${method.name}`;
  const httpStream = await sessions.request("POST", path, headers, {});
  const call = new GrpcStreamCall(sessions, httpStream, method, limits, signal);
  void call.pump(request.message);
  const responseHeader = await call.responseHeader();
  return {
    stream: true,
    service: method.parent,
    method,
    header: responseHeader,
    trailer: call.trailer,
    message: call,
  };
}

class GrpcStreamCall<I extends DescMessage, O extends DescMessage>
  implements AsyncIterable<MessageShape<O>>
{
  readonly trailer = new Headers();
  readonly #sessions: UnixSessionManager;
  readonly #httpStream: http2.ClientHttp2Stream;
  readonly #method: DescMethodStreaming<I, O>;
  readonly #limits: StreamLimits;
  readonly #signal: AbortSignal;
  readonly #messages: MessageQueue<MessageShape<O>>;
  #header: Headers | undefined;
  #headerWaiter: (() => void) | undefined;
  #failure: ConnectError | undefined;
  #ended = false;
  readonly #envelopes: EnvelopeReader;
  readonly #onAbort = () =>
    this.#fail(ConnectError.from(getAbortSignalReason(this.#signal)));

  constructor(
    sessions: UnixSessionManager,
    httpStream: http2.ClientHttp2Stream,
    method: DescMethodStreaming<I, O>,
    limits: StreamLimits,
    signal: AbortSignal,
  ) {
    this.#sessions = sessions;
    this.#httpStream = httpStream;
    this.#method = method;
    this.#limits = limits;
    this.#signal = signal;
    this.#messages = new MessageQueue(httpStream);
    this.#envelopes = new EnvelopeReader(
      limits.readMaxBytes,
      "response message",
    );
    signal.addEventListener("abort", this.#onAbort, { once: true });

    httpStream.on("response", (headers) => this.#onResponse(headers));
    httpStream.on("data", (chunk: Buffer) => this.#onData(chunk));
    httpStream.on("trailers", (headers) => copyHeaders(headers, this.trailer));
    httpStream.on("end", () => this.#onEnd());
    httpStream.on("error", (error) => this.#fail(this.#streamError(error)));
    httpStream.on("close", () => this.#onClose());
  }

  /** Resolves with the response headers; rejects if the call fails first. */
  async responseHeader(): Promise<Headers> {
    while (this.#header === undefined && this.#failure === undefined) {
      await new Promise<void>((resolve) => {
        this.#headerWaiter = resolve;
      });
    }
    if (this.#failure) {
      throw this.#failure;
    }
    return this.#header!;
  }

  /**
   * Writes each request message, then ends the request. A message waits
   * until the stream's buffer has drained. Once the call has failed or
   * ended, or the stream can take no more writes, the next input message
   * is dropped and the input is returned.
   */
  async pump(input: AsyncIterable<MessageShape<I>>): Promise<void> {
    const inputs = input[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await inputs.next();
        // Node.js ends the writable side itself when the server resets the
        // stream after its status, as grpc-go does to a client that has not
        // half-closed. The response's end can still be unread then, and a
        // write would fail the call with "write after end".
        if (
          this.#done ||
          this.#httpStream.writableEnded ||
          this.#httpStream.destroyed
        ) {
          break;
        }
        if (next.done) {
          this.#httpStream.end();
          return;
        }
        const parts = encodeMessageParts(this.#method.input, next.value);
        const length = partsLength(parts);
        checkMessageSize(length, this.#limits.writeMaxBytes, "request message");
        const drained = writeEnvelope(
          this.#httpStream,
          length,
          parts,
          takeWrittenCallback(next.value),
        );
        if (!drained) {
          await this.#drain();
        }
      }
    } catch (error) {
      this.#fail(ConnectError.from(error, Code.Internal));
    }
    inputs.return?.().catch(() => {});
  }

  async *[Symbol.asyncIterator](): AsyncIterator<MessageShape<O>> {
    try {
      yield* this.#messages;
    } finally {
      // A reader that calls return() before the end cancels the call.
      // connect-es's call wrappers do not pass return() on, so callers of
      // createClient cancel with their AbortSignal.
      if (!this.#done) {
        this.#fail(
          new ConnectError(
            "the reader stopped before the end of the stream",
            Code.Canceled,
          ),
        );
      }
    }
  }

  get #done(): boolean {
    return this.#ended || this.#failure !== undefined;
  }

  #drain(): Promise<void> {
    return new Promise((resolve) => {
      const settle = () => {
        this.#httpStream.off("drain", settle);
        this.#httpStream.off("close", settle);
        resolve();
      };
      this.#httpStream.on("drain", settle);
      this.#httpStream.on("close", settle);
    });
  }

  #onResponse(
    headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader,
  ): void {
    const header = new Headers();
    copyHeaders(headers, header);
    try {
      const { foundStatus, headerError } = validateResponse(
        headers[":status"] ?? 0,
        header,
      );
      if (headerError) {
        throw headerError;
      }
      if (foundStatus) {
        // A trailers-only response: its headers carry the status.
        copyHeaders(headers, this.trailer);
      }
    } catch (error) {
      this.#fail(ConnectError.from(error, Code.Internal));
      return;
    }
    this.#header = header;
    this.#wakeHeaderWaiter();
  }

  #onData(chunk: Buffer): void {
    this.#sessions.notifyResponseByteRead(this.#httpStream);
    if (this.#done) {
      return;
    }
    this.#envelopes.push(chunk);
    try {
      for (;;) {
        const bytes = this.#envelopes.next();
        if (bytes === undefined) {
          break;
        }
        this.#messages.push(
          fromBinary(this.#method.output, bytes),
          bytes.length,
        );
      }
    } catch (error) {
      this.#fail(ConnectError.from(error, Code.Internal));
    }
  }

  #onEnd(): void {
    if (this.#done) {
      return;
    }
    try {
      const left = this.#envelopes.pendingBytes;
      if (left > 0) {
        throw new ConnectError(
          `the response ended inside a message (${left} bytes left over)`,
          Code.Internal,
        );
      }
      validateTrailer(this.trailer, this.#header ?? new Headers());
    } catch (error) {
      this.#fail(ConnectError.from(error, Code.Internal));
      return;
    }
    this.#ended = true;
    this.#messages.end();
    this.#release();
    // A server may send its status while the request is still open. The
    // call is over, so the stream is reset rather than left open.
    if (!this.#httpStream.writableEnded) {
      this.#reset(NGHTTP2_CANCEL);
    }
    this.#wakeHeaderWaiter();
  }

  #onClose(): void {
    if (this.#done) {
      return;
    }
    const code = this.#httpStream.rstCode ?? NGHTTP2_CANCEL;
    this.#fail(resetError(code));
  }

  /** Fails the call once: resets the stream and wakes every waiter. */
  #fail(error: ConnectError): void {
    if (this.#done) {
      return;
    }
    this.#failure = error;
    // A failed call delivers no more messages, even queued ones.
    this.#messages.abort(error);
    this.#release();
    this.#reset(NGHTTP2_CANCEL);
    this.#wakeHeaderWaiter();
  }

  /**
   * Resets the stream with `code` on the next turn of the event loop.
   * Node.js 20.20 can call this class from inside its frame parsing, for
   * example with the response headers. A reset made there frees the
   * stream while the parser still reads it (a use after free that
   * valgrind reported and that crashed test runs).
   */
  #reset(code: number): void {
    setImmediate(() => {
      if (!this.#httpStream.closed) {
        this.#httpStream.close(code);
      }
    });
  }

  /**
   * Returns the error for an "error" event. A stream that the server
   * reset gets the code of its reset: Node.js emits "error" before
   * "close".
   */
  #streamError(error: Error): ConnectError {
    if (error instanceof ConnectError) {
      return error;
    }
    const code = this.#httpStream.rstCode;
    if (
      (error as NodeJS.ErrnoException).code === "ERR_HTTP2_STREAM_ERROR" &&
      code !== undefined
    ) {
      return resetError(code);
    }
    return new ConnectError(
      error.message,
      Code.Internal,
      undefined,
      undefined,
      error,
    );
  }

  #release(): void {
    this.#signal.removeEventListener("abort", this.#onAbort);
  }

  #wakeHeaderWaiter(): void {
    const header = this.#headerWaiter;
    this.#headerWaiter = undefined;
    header?.();
  }
}

/** Copies HTTP/2 headers, without the pseudo-headers, into `target`. */
function copyHeaders(source: http2.IncomingHttpHeaders, target: Headers): void {
  for (const [key, value] of Object.entries(source)) {
    if (key.startsWith(":") || value === undefined) {
      continue;
    }
    for (const item of Array.isArray(value) ? value : [value]) {
      target.append(key, item);
    }
  }
}

/**
 * Returns the error for a stream that the server reset with HTTP/2 error
 * `code`, with the gRPC code that the gRPC HTTP/2 protocol assigns to it.
 */
function resetError(code: number): ConnectError {
  const message = `stream reset by the server with HTTP/2 code ${code}`;
  switch (code) {
    case NGHTTP2_REFUSED_STREAM:
      return new ConnectError(message, Code.Unavailable);
    case NGHTTP2_CANCEL:
      return new ConnectError(message, Code.Canceled);
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return new ConnectError(message, Code.ResourceExhausted);
    case NGHTTP2_INADEQUATE_SECURITY:
      return new ConnectError(message, Code.PermissionDenied);
    default:
      return new ConnectError(message, Code.Internal);
  }
}
