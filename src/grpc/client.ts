/**
 * The gRPC client transport: connect-es's gRPC protocol over one HTTP/2
 * connection to a unix socket, such as containerd's
 * `/run/containerd/containerd.sock`.
 */
import type {
  DescMessage,
  DescMethodStreaming,
  MessageInitShape,
} from "@bufbuild/protobuf";
import {
  type ContextValues,
  createContextValues,
  type Interceptor,
  type StreamResponse,
} from "@connectrpc/connect";
import { runStreamingCall } from "@connectrpc/connect/protocol";
import { requestHeader } from "@connectrpc/connect/protocol-grpc";
import { createGrpcTransport as createConnectGrpcTransport } from "@connectrpc/connect-node";
import type { ClientTransport } from "../transport/index.js";
import { unixPath } from "../transport/socket-path.js";
import { timerMs } from "../util/timer.js";
import { callGrpcStream } from "./client-stream.js";
import { connectionErrors } from "./connection-errors.js";
import { defaultMaxMessageBytes, sessionMemoryMegabytes } from "./limits.js";
import { UnixSessionManager, unixAuthority } from "./unix-session.js";

/** Options of {@link createGrpcTransport}. */
export interface GrpcTransportOptions {
  /** Path of the server's unix socket; a `unix://` prefix is accepted. */
  path: string;
  /**
   * Time limit in milliseconds for the socket connection; the call fails
   * with Unavailable after it. Default 10 000.
   */
  connectTimeoutMs?: number;
  /**
   * Deadline in milliseconds for calls that set no `timeoutMs` of their
   * own. Default none.
   */
  defaultTimeoutMs?: number;
  /**
   * Largest message in bytes sent or accepted, like grpc-go's
   * MaxCallSendMsgSize and MaxCallRecvMsgSize. Default 16 MiB, which is
   * containerd's default limit in both directions.
   */
  maxMessageBytes?: number;
  /**
   * Interval in milliseconds between HTTP/2 PINGs while calls are open
   * and no response bytes arrive. A PING not acknowledged within
   * `pingTimeoutMs` ends the connection and its calls with Unavailable.
   * Default 360 000 (6 minutes), because grpc-go servers, containerd
   * 1.7 included, count a strike for every PING that comes within 5
   * minutes of the previous one with no response data in between, and
   * close the connection at the third strike (GOAWAY ENHANCE_YOUR_CALM
   * "too_many_pings"). A closed socket fails calls at once without any
   * PING.
   */
  pingIntervalMs?: number;
  /** Time in milliseconds to wait for a PING acknowledgement. Default 20 000. */
  pingTimeoutMs?: number;
  /**
   * Time in milliseconds after which a connection with no open call is
   * closed; the next call connects again. Default 900 000 (15 minutes).
   */
  idleConnectionTimeoutMs?: number;
  /** connect-es interceptors applied to every call. */
  interceptors?: Interceptor[];
  /**
   * Advice that ends the error of a socket that behaves like a ttrpc
   * server. Default: use the ttrpc protocol (`--protocol ttrpc`) for it.
   */
  ttrpcPeerHint?: string;
}

const defaultConnectTimeoutMs = 10_000;
const defaultPingIntervalMs = 6 * 60_000;
const defaultPingTimeoutMs = 20_000;
const defaultIdleConnectionTimeoutMs = 15 * 60_000;

/**
 * Creates a gRPC transport to a unix socket. It connects on the first
 * call, sends `application/grpc+proto` messages without compression and
 * reports failures as connect-es `ConnectError`s: a socket that cannot be
 * reached, a connection that drops and a closed transport all give
 * Unavailable.
 */
export function createGrpcTransport(
  options: GrpcTransportOptions,
): ClientTransport {
  const path = unixPath(options.path);
  const maxMessageBytes = options.maxMessageBytes ?? defaultMaxMessageBytes;
  const sessionManager = new UnixSessionManager(
    path,
    options.connectTimeoutMs ?? defaultConnectTimeoutMs,
    sessionMemoryMegabytes(maxMessageBytes),
    {
      pingIntervalMs: options.pingIntervalMs ?? defaultPingIntervalMs,
      pingTimeoutMs: options.pingTimeoutMs ?? defaultPingTimeoutMs,
      idleConnectionTimeoutMs:
        options.idleConnectionTimeoutMs ?? defaultIdleConnectionTimeoutMs,
    },
    options.ttrpcPeerHint,
  );

  const interceptors = [
    connectionErrors(path),
    ...(options.interceptors ?? []),
  ];
  const transport = createConnectGrpcTransport({
    baseUrl: unixAuthority,
    sessionManager,
    readMaxBytes: maxMessageBytes,
    writeMaxBytes: maxMessageBytes,
    // Advertising no compression keeps responses uncompressed. On a local
    // socket gzip costs more CPU than it saves.
    acceptCompression: [],
    defaultTimeoutMs: timerMs(options.defaultTimeoutMs),
    interceptors,
  });
  const limits = {
    readMaxBytes: maxMessageBytes,
    writeMaxBytes: maxMessageBytes,
  };

  return {
    protocol: "grpc",
    // A deadline longer than a Node.js timer can wait counts as none, which
    // connect-es takes as 0.
    unary: (method, signal, timeoutMs, ...rest) =>
      transport.unary(
        method,
        signal,
        timeoutMs === undefined ? undefined : (timerMs(timeoutMs) ?? 0),
        ...rest,
      ),
    stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: ConstructorParameters<typeof Headers>[0],
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      const timeout = timerMs(
        timeoutMs === undefined
          ? options.defaultTimeoutMs
          : timeoutMs > 0
            ? timeoutMs
            : undefined,
      );
      return runStreamingCall<I, O>({
        interceptors,
        signal,
        timeoutMs: timeout,
        req: {
          stream: true,
          service: method.parent,
          method,
          requestMethod: "POST",
          url: `${unixAuthority}/${method.parent.typeName}/${method.name}`,
          header: requestHeader(true, timeout, header),
          contextValues: contextValues ?? createContextValues(),
          message: input,
        },
        next: (req) => callGrpcStream(sessionManager, req, limits),
      });
    },
    async close() {
      sessionManager.close();
    },
  };
}
