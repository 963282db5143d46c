/**
 * The ttrpc client transport: connect-es's `Transport` over one unix
 * socket, so that `createClient(Streaming, transport)` works as it does
 * with the gRPC transport.
 */
import { debuglog } from "node:util";
import type {
  DescMessage,
  DescMethodStreaming,
  DescMethodUnary,
  MessageInitShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextValues,
  type Interceptor,
  type StreamResponse,
  type UnaryResponse,
} from "@connectrpc/connect";
import { runStreamingCall, runUnaryCall } from "@connectrpc/connect/protocol";
import type { ClientTransport } from "../transport/index.js";
import { unixPath } from "../transport/socket-path.js";
import { ClientConnection } from "./client-connection.js";
import type { RequestEnvelope } from "./client-request.js";
import { callStream } from "./client-stream.js";
import { callUnary } from "./client-unary.js";
import { type ConnectionLimits, positive, resolveLimits } from "./limits.js";
import { type HeadersInit, repeatedValues } from "./metadata.js";

const debug = debuglog("ttrpc");

/** Options of {@link createTtrpcTransport}. */
export interface TtrpcTransportOptions {
  /** Path of the server's unix socket; a `unix://` prefix is accepted. */
  path: string;
  /**
   * Maximum data length in bytes of a frame sent or received: an encoded
   * Request, Response or stream message. Default 4 MiB, the fixed limit
   * of Go ttrpc; a larger value works only between two ends of ours.
   */
  maxMessageBytes?: number;
  /**
   * Time limit in ms for connecting the socket; the waiting calls fail
   * with Unavailable after it. Default 10 000.
   */
  connectTimeoutMs?: number;
  /**
   * Number of received messages a stream buffers for its reader before
   * the connection stops reading the socket. Default 256 (Go ttrpc: 64).
   */
  streamBufferMessages?: number;
  /**
   * Bytes a streaming call buffers before the connection stops reading
   * the socket. Default 16 MiB.
   */
  streamBufferBytes?: number;
  /**
   * Time in ms that a full stream buffer may stop the connection's
   * reading. A stream whose reader takes no message for that long fails
   * with ResourceExhausted, and reading resumes for the other streams.
   * Default 1000, as in Go ttrpc.
   */
  streamBufferTimeoutMs?: number;
  /** Closes the transport when aborted, as {@link ClientTransport.close}. */
  signal?: AbortSignal;
  /** connect-es interceptors applied to every call. */
  interceptors?: Interceptor[];
}

const defaultConnectTimeoutMs = 10_000;

/**
 * Creates a ttrpc transport to a unix socket. It connects on the first
 * call and again on the first call after the connection dropped. Every
 * failure is a connect-es `ConnectError`: a socket that cannot be reached,
 * a dropped connection and a closed transport give Unavailable, and an
 * error Response gives its status code and message.
 */
export function createTtrpcTransport(
  options: TtrpcTransportOptions,
): ClientTransport {
  return new TtrpcTransport(options);
}

class TtrpcTransport implements ClientTransport {
  readonly protocol = "ttrpc";
  readonly #path: string;
  readonly #limits: ConnectionLimits;
  readonly #connectTimeoutMs: number;
  readonly #interceptors: Interceptor[];
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = () => void this.close();
  #connecting: Promise<ClientConnection> | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: TtrpcTransportOptions) {
    this.#path = unixPath(options.path);
    this.#limits = resolveLimits(options);
    this.#connectTimeoutMs = positive(
      "connectTimeoutMs",
      options.connectTimeoutMs ?? defaultConnectTimeoutMs,
    );
    this.#interceptors = options.interceptors ?? [];
    this.#signal = options.signal;
    if (this.#signal?.aborted) {
      void this.close();
    }
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    input: MessageInitShape<I>,
    contextValues?: ContextValues,
  ): Promise<UnaryResponse<I, O>> {
    const timeout =
      timeoutMs !== undefined && timeoutMs > 0 ? timeoutMs : undefined;
    const deadline = deadlineOf(timeout);
    return runUnaryCall<I, O>({
      interceptors: this.#interceptors,
      signal,
      timeoutMs: timeout,
      req: {
        ...this.#requestCommon(method, header, contextValues),
        stream: false,
        method,
        message: input,
      },
      next: async (req) => {
        const connection = await this.#connection(req.signal);
        const envelope = this.#envelope(method, req.header, header, deadline);
        const message = await callUnary(
          connection,
          method,
          envelope,
          req.message,
          req.signal,
        );
        return {
          stream: false,
          service: method.parent,
          method,
          header: new Headers(),
          message,
          trailer: new Headers(),
        };
      },
    });
  }

  stream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodStreaming<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    input: AsyncIterable<MessageInitShape<I>>,
    contextValues?: ContextValues,
  ): Promise<StreamResponse<I, O>> {
    const timeout =
      timeoutMs !== undefined && timeoutMs > 0 ? timeoutMs : undefined;
    const deadline = deadlineOf(timeout);
    return runStreamingCall<I, O>({
      interceptors: this.#interceptors,
      signal,
      timeoutMs: timeout,
      req: {
        ...this.#requestCommon(method, header, contextValues),
        stream: true,
        method,
        message: input,
      },
      next: async (req) => {
        const connection = await this.#connection(req.signal);
        const envelope = this.#envelope(method, req.header, header, deadline);
        const message = await callStream(
          connection,
          method,
          envelope,
          req.message,
          req.signal,
        );
        return {
          stream: true,
          service: method.parent,
          method,
          header: new Headers(),
          message,
          trailer: new Headers(),
        };
      },
    });
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#signal?.removeEventListener("abort", this.#onAbort);
    const connecting = this.#connecting;
    this.#connecting = undefined;
    const connection = await connecting?.catch(() => undefined);
    await connection?.close(
      new ConnectError(
        `ttrpc transport to ${this.#path} closed`,
        Code.Unavailable,
      ),
    );
    debug("transport to %s closed", this.#path);
  }

  #requestCommon(
    method: DescMethodUnary | DescMethodStreaming,
    header: HeadersInit | undefined,
    contextValues: ContextValues | undefined,
  ) {
    return {
      service: method.parent,
      requestMethod: "POST",
      url: `unix://${this.#path}/${method.parent.typeName}/${method.name}`,
      header: new Headers(header),
      contextValues: contextValues ?? createContextValues(),
    };
  }

  #envelope(
    method: DescMethodUnary | DescMethodStreaming,
    header: Headers,
    init: HeadersInit | undefined,
    deadline: number | undefined,
  ): RequestEnvelope {
    return {
      method,
      header,
      repeated: repeatedValues(init),
      deadline,
      maxMessageBytes: this.#limits.maxMessageBytes,
    };
  }

  /**
   * Returns the open connection, connecting first if there is none. Calls
   * that start while a connection is being made share it.
   */
  async #connection(signal: AbortSignal): Promise<ClientConnection> {
    for (;;) {
      if (this.#closing) {
        throw new ConnectError(
          `ttrpc transport to ${this.#path} is closed`,
          Code.Unavailable,
        );
      }
      const connecting = this.#connecting ?? this.#connect();
      this.#connecting = connecting;
      const connection = await abortable(connecting, signal);
      if (connection.usable) {
        return connection;
      }
      // It closed, or its stream ids are used up and it closes after its
      // last call: the next round connects anew.
      if (this.#connecting === connecting) {
        this.#connecting = undefined;
      }
    }
  }

  #connect(): Promise<ClientConnection> {
    const connecting = ClientConnection.open(
      this.#path,
      this.#limits,
      this.#connectTimeoutMs,
    );
    connecting.then(
      (connection) => {
        connection.onClosed = () => {
          if (this.#connecting === connecting) {
            this.#connecting = undefined;
          }
        };
      },
      (error: ConnectError) => {
        debug("%s", error.message);
        if (this.#connecting === connecting) {
          this.#connecting = undefined;
        }
      },
    );
    return connecting;
  }
}

function deadlineOf(timeoutMs: number | undefined): number | undefined {
  return timeoutMs === undefined ? undefined : performance.now() + timeoutMs;
}

/** Waits for `promise`, or rejects with the signal's reason first. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    return Promise.reject(signal.reason);
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => {
      signal.removeEventListener("abort", onAbort);
    });
  });
}
