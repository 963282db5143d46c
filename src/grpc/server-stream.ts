/**
 * Bidirectional streaming calls of the gRPC server, served on Node.js's
 * HTTP/2 stream rather than through connect-node.
 *
 * connect-node encodes each response message, copies it into its envelope
 * and waits for the stream to drain after every write. It also copies
 * each request message out of the received chunks. Here a response
 * message recorded with its encoding goes out as a 5-byte prefix and its
 * parts, and a request message that lies inside one chunk is decoded from
 * that chunk. connect-es still runs the implementation and the
 * interceptors, and builds the status trailers. Other calls stay with
 * connect-node.
 */
import * as http2 from "node:http2";
import { debuglog } from "node:util";
import {
  type DescMessage,
  fromBinary,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createHandlerContext,
  type Interceptor,
  type MethodImplSpec,
} from "@connectrpc/connect";
import { transformInvokeImplementation } from "@connectrpc/connect/protocol";
import {
  parseTimeout,
  setTrailerStatus,
} from "@connectrpc/connect/protocol-grpc";
import {
  encodeMessageParts,
  partsLength,
  takeWrittenCallback,
} from "../any/index.js";
import { toConnectError } from "../errors/index.js";
import { timerMs } from "../util/timer.js";
import { checkMessageSize, EnvelopeReader, writeEnvelope } from "./envelope.js";
import { MessageQueue } from "./message-queue.js";

const debug = debuglog("grpc");

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR } = http2.constants;

/**
 * Time in ms that the status of a failed call may wait behind response
 * messages that the client does not read before the stream is reset.
 */
const statusGraceMs = 500;

/** A streaming call that the server can end when it shuts down. */
export interface OpenCall {
  /** Ends the call with `reason` and aborts its handler. */
  fail(reason: ConnectError): void;
}

/** Settings that every call of one server shares. */
export interface StreamSettings {
  interceptors: Interceptor[];
  /**
   * The calls running now. The server ends them through this set rather
   * than one shared AbortSignal: Node.js scans a signal's listeners on
   * every addEventListener, so a shared signal makes each new call cost
   * time in proportion to the calls already open.
   */
  openCalls: Set<OpenCall>;
  maxMessageBytes: number;
}

export type BidiSpec = Extract<MethodImplSpec, { kind: "bidi_streaming" }>;
type HandlerContext = ReturnType<typeof createHandlerContext>;

/** Returns whether calls of `spec` are served by {@link serveGrpcStream}. */
export function servesDirectly(spec: MethodImplSpec): spec is BidiSpec {
  return spec.kind === "bidi_streaming";
}

/**
 * Serves one bidirectional streaming call. Settles when the call has
 * ended; every error ends the call with a status in its trailers.
 */
export async function serveGrpcStream(
  spec: BidiSpec,
  request: http2.Http2ServerRequest,
  response: http2.Http2ServerResponse,
  settings: StreamSettings,
): Promise<void> {
  const contentType = request.headers["content-type"] ?? "";
  if (!/^application\/grpc(\+proto)?(;|$)/i.test(contentType)) {
    response.writeHead(415, { "content-type": "text/plain" });
    response.end(
      `unsupported content type "${contentType}": use application/grpc+proto`,
    );
    return;
  }
  await new ServerStreamCall(spec, request, response, settings).run();
}

class ServerStreamCall implements OpenCall {
  readonly #spec: BidiSpec;
  readonly #request: http2.Http2ServerRequest;
  readonly #response: http2.Http2ServerResponse;
  readonly #stream: http2.ServerHttp2Stream;
  readonly #settings: StreamSettings;
  readonly #requestSignal = new AbortController();
  readonly #envelopes: EnvelopeReader;
  readonly #messages: MessageQueue<MessageShape<DescMessage>>;
  #context: HandlerContext | undefined;
  #drainWaiter: (() => void) | undefined;
  // The client ended the request cleanly.
  #inputEnded = false;
  #finished = false;

  constructor(
    spec: BidiSpec,
    request: http2.Http2ServerRequest,
    response: http2.Http2ServerResponse,
    settings: StreamSettings,
  ) {
    this.#spec = spec;
    this.#request = request;
    this.#response = response;
    this.#stream = request.stream;
    this.#settings = settings;
    this.#messages = new MessageQueue(request.stream);
    this.#envelopes = new EnvelopeReader(
      settings.maxMessageBytes,
      "request message",
    );
  }

  async run(): Promise<void> {
    const stream = this.#stream;
    stream.on("data", (chunk: Buffer) => this.#onData(chunk));
    stream.on("end", () => this.#onInputEnd());
    stream.on("drain", () => this.#wakeWriter());
    stream.on("close", () => this.#onClose());
    // Without a listener, an error such as a write after a reset would end
    // the process. The call learns of the failure from "close".
    stream.on("error", (error) =>
      debug("%s: stream error: %s", this.#request.url, error.message),
    );

    const { headers } = this.#request;
    const requestHeader = new Headers();
    for (const [key, value] of Object.entries(headers)) {
      if (key.startsWith(":") || value === undefined) {
        continue;
      }
      for (const item of Array.isArray(value) ? value : [value]) {
        requestHeader.append(key, item);
      }
    }
    const timeout = parseTimeout(
      requestHeader.get("grpc-timeout"),
      Number.MAX_SAFE_INTEGER,
    );
    const { method } = this.#spec;
    const context = createHandlerContext({
      service: method.parent,
      method,
      protocolName: "grpc",
      requestMethod: "POST",
      url: this.#request.url,
      timeoutMs: timerMs(timeout.timeoutMs),
      requestSignal: this.#requestSignal.signal,
      requestHeader,
    });
    this.#context = context;
    if (!this.#finished) {
      this.#settings.openCalls.add(this);
    }
    if (timeout.error) {
      this.#finishWithError(timeout.error);
      return;
    }
    const encoding = requestHeader.get("grpc-encoding");
    if (encoding !== null && encoding !== "identity") {
      this.#finishWithError(
        new ConnectError(
          `unsupported compression "${encoding}": send uncompressed messages`,
          Code.Unimplemented,
        ),
      );
      return;
    }

    // A deadline, a server shutdown or a failure of this call ends it at
    // once, without waiting for the handler to notice its signal.
    context.signal.addEventListener(
      "abort",
      () => this.#finishWithError(context.signal.reason),
      { once: true },
    );
    try {
      await this.#writeOutputs(context);
    } catch (error) {
      this.#finishWithError(error);
    }
  }

  async #writeOutputs(context: HandlerContext): Promise<void> {
    const outputs = transformInvokeImplementation(
      this.#spec,
      context,
      this.#settings.interceptors,
    )(this.#messages);
    for await (const output of outputs) {
      if (this.#finished) {
        return;
      }
      const parts = encodeMessageParts(
        this.#spec.method.output,
        output as MessageShape<DescMessage>,
      );
      const length = partsLength(parts);
      checkMessageSize(
        length,
        this.#settings.maxMessageBytes,
        "response message",
      );
      this.#sendHeaders();
      const drained = writeEnvelope(
        this.#stream,
        length,
        parts,
        takeWrittenCallback(output as object),
      );
      if (!drained) {
        await new Promise<void>((resolve) => {
          this.#drainWaiter = resolve;
        });
      }
    }
    this.#finish(undefined);
  }

  #onData(chunk: Buffer): void {
    if (this.#finished || this.#messages.closed) {
      // Later bytes are read and dropped, so that a client still writing
      // is not held by flow control.
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
          fromBinary(this.#spec.method.input, bytes),
          bytes.length,
        );
      }
    } catch (error) {
      this.#failInput(
        error instanceof ConnectError
          ? error
          : new ConnectError(
              `invalid request message: ${(error as Error).message}`,
              Code.InvalidArgument,
            ),
      );
    }
  }

  #onInputEnd(): void {
    // Node.js also emits "end", before "close", for a stream that the
    // client reset, even between two messages. Only a reset has closed
    // the stream by then, because the response is still open.
    if (this.#stream.closed) {
      this.#onClose();
      return;
    }
    const left = this.#envelopes.pendingBytes;
    if (left > 0) {
      this.#failInput(
        new ConnectError(
          `the request ended inside a message (${left} bytes left over)`,
          Code.InvalidArgument,
        ),
      );
      return;
    }
    this.#inputEnded = true;
    this.#messages.end();
  }

  /**
   * Makes the handler's next read of the input throw `error`, after the
   * messages already decoded. The handler's failure then ends the call.
   */
  #failInput(error: ConnectError): void {
    if (this.#messages.closed) {
      return;
    }
    debug("%s: %s", this.#request.url, error.message);
    this.#messages.fail(error);
  }

  /** The stream closed: a client that reset it, or the end of the call. */
  #onClose(): void {
    if (this.#finished) {
      return;
    }
    this.#finished = true;
    const reason = new ConnectError(
      "the client closed the stream",
      Code.Canceled,
    );
    debug("%s: %s", this.#request.url, reason.message);
    this.#abortHandler(reason);
  }

  /**
   * Sends the response headers once, with the handler's. A handler's
   * header that HTTP/2 forbids is left out and logged.
   */
  #sendHeaders(): void {
    if (this.#response.headersSent) {
      return;
    }
    const headers = nodeHeaders(
      this.#context?.responseHeader,
      this.#request.url,
    );
    headers["content-type"] = "application/grpc+proto";
    this.#response.writeHead(200, headers);
  }

  fail(reason: ConnectError): void {
    this.#finishWithError(reason);
  }

  #finishWithError(reason: unknown): void {
    if (this.#finished) {
      return;
    }
    const error = toConnectError(reason);
    debug("%s failed: %s", this.#request.url, error.message);
    this.#finish(error);
  }

  /**
   * Sends the status once, in trailers after the response headers, and
   * aborts the handler's signal, with `error` on failure.
   */
  #finish(error: ConnectError | undefined): void {
    if (this.#finished) {
      return;
    }
    this.#finished = true;
    if (!this.#stream.destroyed) {
      this.#sendHeaders();
      const trailer = setTrailerStatus(
        new Headers(this.#context?.responseTrailer),
        error,
      );
      this.#response.addTrailers(nodeHeaders(trailer, this.#request.url));
      this.#response.end();
      this.#stream.resume();
      this.#closeAfterStatus(error !== undefined);
    }
    this.#abortHandler(error);
  }

  /**
   * Resets the stream once the status is out when the client has not
   * ended its side, as grpc-go servers do, so that the stream does not
   * stay open while the client keeps writing. A failed call whose status
   * is still queued after {@link statusGraceMs}, behind messages that the
   * client does not read, is reset without it: the client then sees a
   * cancelled stream.
   */
  #closeAfterStatus(failed: boolean): void {
    const stream = this.#stream;
    // The reset waits for the next turn of the event loop: a reset made
    // while Node.js parses frames can free the stream under its parser.
    const reset = (code: number) =>
      setImmediate(() => {
        if (!stream.closed) {
          stream.close(code);
        }
      });
    // Node.js sends the trailers from its own "wantTrailers" listener,
    // which runs before this one.
    stream.once("wantTrailers", () => {
      if (!this.#inputEnded) {
        reset(NGHTTP2_NO_ERROR);
      }
    });
    if (failed) {
      setTimeout(() => reset(NGHTTP2_CANCEL), statusGraceMs).unref();
    }
  }

  #abortHandler(reason: ConnectError | undefined): void {
    this.#settings.openCalls.delete(this);
    if (reason !== undefined) {
      // An aborted call passes on no more messages, even queued ones.
      this.#messages.abort(reason);
      this.#requestSignal.abort(reason);
    }
    this.#context?.abort(reason);
    this.#wakeWriter();
  }

  #wakeWriter(): void {
    const waiter = this.#drainWaiter;
    this.#drainWaiter = undefined;
    waiter?.();
  }
}

// Header fields that HTTP/2 forbids; Node.js throws for them.
const connectionHeaders = new Set([
  "connection",
  "http2-settings",
  "keep-alive",
  "proxy-connection",
  "te",
  "transfer-encoding",
  "upgrade",
]);

/**
 * Converts a handler's headers or trailers for Node.js, leaving out, and
 * logging, the fields that HTTP/2 forbids.
 */
function nodeHeaders(
  headers: Headers | undefined,
  url: string,
): http2.OutgoingHttpHeaders {
  const result: http2.OutgoingHttpHeaders = {};
  headers?.forEach((value, key) => {
    if (connectionHeaders.has(key)) {
      debug("%s: left out header %s, which HTTP/2 forbids", url, key);
      return;
    }
    result[key] = value;
  });
  return result;
}
