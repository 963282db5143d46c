/**
 * The gRPC server: connect-es service implementations served with the gRPC
 * protocol only, over HTTP/2 without TLS on a unix socket.
 */
import { setMaxListeners } from "node:events";
import * as http2 from "node:http2";
import { debuglog } from "node:util";
import type { DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createConnectRouter,
  createServiceImplSpec,
  type Interceptor,
  type MethodImplSpec,
  type ServiceImpl,
  type ServiceImplSpec,
} from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { parseTimeout } from "@connectrpc/connect/protocol-grpc";
import {
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import { toConnectError } from "../errors/index.js";
import { listenOnPath } from "../transport/socket-path.js";
import { timerOption } from "../util/options.js";
import { timerMs } from "../util/timer.js";
import {
  defaultMaxMessageBytes,
  serverHttp2Settings,
  sessionMemoryMegabytes,
  widenConnectionWindow,
} from "./limits.js";
import {
  type BidiSpec,
  type StreamSettings,
  serveGrpcStream,
  servesDirectly,
} from "./server-stream.js";

const debug = debuglog("grpc");

/**
 * A service to host: a `ServiceImplSpec` (from {@link createServiceSpec} or
 * connect-es's `createServiceImplSpec()`), or a descriptor with its
 * implementation as `router.service()` takes them. Methods left out
 * return Unimplemented. The tuple form does not type-check the
 * implementation against the descriptor; {@link createServiceSpec} does.
 */
export type GrpcService =
  | ServiceImplSpec
  | readonly [service: DescService, implementation: object];

/** Options of {@link createGrpcServer}. */
export interface GrpcServerOptions {
  services: readonly GrpcService[];
  /**
   * Largest message in bytes accepted or sent. Default 16 MiB, which is
   * containerd's default in both directions.
   */
  maxMessageBytes?: number;
  /**
   * Time in milliseconds that {@link GrpcServer.close} lets open calls
   * finish before it aborts their handlers' signals, 0 to 2147483647.
   * Default 1000.
   */
  closeGraceMs?: number;
  /** connect-es interceptors applied to every call. */
  interceptors?: Interceptor[];
}

export interface GrpcServer {
  /**
   * Starts listening on a unix socket. A stale socket file that no
   * process accepts on is replaced; a live one is an AlreadyExists error.
   */
  listen(path: string): Promise<void>;
  /**
   * Stops accepting connections and sends GOAWAY, so clients start no new
   * call. Open calls get `closeGraceMs` to finish. Then the handlers'
   * signals abort with Unavailable, and 100 ms later the connections are
   * destroyed, which fails calls whose handler ignored the signal.
   * Resolves when every connection is closed and the socket file removed.
   * Idempotent.
   */
  close(): Promise<void>;
}

const defaultCloseGraceMs = 1000;
// Time between aborting the handlers and destroying the connections, so
// handlers that honour the signal can still send their status.
const abortToDestroyMs = 100;

/** Creates a gRPC server for the given services; see {@link GrpcServer}. */
export function createGrpcServer(options: GrpcServerOptions): GrpcServer {
  // Every running unary call adds an abort listener to this signal and
  // removes it when the call ends, so more than 10 concurrent calls are
  // normal. Streaming calls are ended through StreamSettings.openCalls.
  const shutdown = new AbortController();
  setMaxListeners(0, shutdown.signal);
  const maxMessageBytes = options.maxMessageBytes ?? defaultMaxMessageBytes;
  const closeGraceMs = timerOption(
    "closeGraceMs",
    options.closeGraceMs,
    defaultCloseGraceMs,
    0,
  );
  const router = createConnectRouter({
    grpc: true,
    grpcWeb: false,
    connect: false,
    acceptCompression: [],
    readMaxBytes: maxMessageBytes,
    writeMaxBytes: maxMessageBytes,
    shutdownSignal: shutdown.signal,
    interceptors: [statusFromErrors, ...(options.interceptors ?? [])],
  });
  for (const service of options.services) {
    addService(router, service);
  }

  const handlers = new Map<string, UniversalHandler>();
  for (const handler of router.handlers) {
    handlers.set(handler.requestPath, handler);
  }
  const streams = new Map<string, BidiSpec>();
  for (const service of options.services) {
    for (const spec of methodSpecs(service)) {
      if (servesDirectly(spec)) {
        streams.set(
          `/${spec.method.parent.typeName}/${spec.method.name}`,
          spec,
        );
      }
    }
  }
  const streamSettings: StreamSettings = {
    interceptors: [statusFromErrors, ...(options.interceptors ?? [])],
    openCalls: new Set(),
    maxMessageBytes,
  };

  const server = http2.createServer(
    {
      maxSessionMemory: sessionMemoryMegabytes(maxMessageBytes),
      settings: serverHttp2Settings,
    },
    (request, response) => {
      if (draining) {
        rejectDuringShutdown(response);
        return;
      }
      serveRequest(handlers, streams, streamSettings, request, response);
    },
  );
  // A server error with no listener, such as EMFILE on accept after
  // listen() succeeded, would crash the process, so it is logged.
  server.on("error", (error) => debug("server error: %s", error));
  const sessions = new Set<http2.ServerHttp2Session>();
  // Open streams of each session, so that a session is closed only once
  // it is idle (see closeServer).
  const openStreams = new Map<http2.Http2Session, number>();
  let draining = false;
  const closeIfIdle = (session: http2.Http2Session) => {
    if (draining && (openStreams.get(session) ?? 0) === 0) {
      setImmediate(() => session.close());
    }
  };
  server.on("stream", (stream: http2.ServerHttp2Stream) => {
    const session = stream.session;
    if (session === undefined) {
      return;
    }
    openStreams.set(session, (openStreams.get(session) ?? 0) + 1);
    stream.once("close", () => {
      openStreams.set(session, (openStreams.get(session) ?? 1) - 1);
      closeIfIdle(session);
    });
  });
  server.on("session", (session) => {
    sessions.add(session);
    widenConnectionWindow(session);
    session.on("close", () => {
      sessions.delete(session);
      openStreams.delete(session);
    });
    // An unhandled session error would crash the process; the calls on
    // that session already fail on their own.
    session.on("error", (error) => debug("session error: %s", error));
  });

  let listening: string | undefined;
  let closing: Promise<void> | undefined;

  return {
    async listen(path) {
      if (listening !== undefined || closing !== undefined) {
        throw new ConnectError(
          `gRPC server cannot listen on ${path}: it is already ` +
            (closing ? "closed" : `listening on ${listening}`),
          Code.FailedPrecondition,
        );
      }
      await listenOnPath(server, path);
      listening = path;
      debug("listening on %s", path);
    },

    close() {
      closing ??= closeServer(
        server,
        sessions,
        () => {
          draining = true;
          for (const session of sessions) {
            session.goaway();
            closeIfIdle(session);
          }
        },
        (reason) => {
          shutdown.abort(reason);
          for (const call of [...streamSettings.openCalls]) {
            call.fail(reason);
          }
        },
        closeGraceMs,
      );
      return closing;
    },
  };
}

/**
 * Sends the code and message of whatever a handler throws. connect-es
 * sends any error that is not a ConnectError as Internal "internal error",
 * which would lose a TransferError's code and a Node.js error's text.
 * `toConnectError` keeps both. Other errors become Unknown with their
 * text, as in grpc-go.
 */
const statusFromErrors: Interceptor = (next) => async (request) => {
  try {
    const response = await next(request);
    if (!response.stream) {
      return response;
    }
    return { ...response, message: convertErrors(response.message) };
  } catch (error) {
    throw toConnectError(error);
  }
};

async function* convertErrors<T>(messages: AsyncIterable<T>) {
  try {
    yield* messages;
  } catch (error) {
    throw toConnectError(error);
  }
}

/** Returns the method implementations of a service, missing ones included. */
function methodSpecs(service: GrpcService): MethodImplSpec[] {
  const spec =
    "service" in service
      ? service
      : createServiceImplSpec(
          service[0],
          service[1] as Partial<ServiceImpl<(typeof service)[0]>>,
        );
  return Object.values(spec.methods);
}

function addService(
  router: ReturnType<typeof createConnectRouter>,
  service: GrpcService,
): void {
  if ("service" in service) {
    for (const spec of Object.values(service.methods)) {
      router.rpc(spec.method, spec.impl);
    }
    return;
  }
  const [descriptor, implementation] = service;
  router.service(
    descriptor,
    implementation as Partial<ServiceImpl<typeof descriptor>>,
  );
}

/** Ends a call that arrives while the server closes with Unavailable. */
function rejectDuringShutdown(response: http2.Http2ServerResponse): void {
  response.writeHead(200, {
    "content-type": "application/grpc",
    "grpc-status": String(Code.Unavailable),
    "grpc-message": encodeURIComponent("server is shutting down"),
  });
  response.end();
}

function serveRequest(
  handlers: Map<string, UniversalHandler>,
  streams: Map<string, BidiSpec>,
  streamSettings: StreamSettings,
  request: http2.Http2ServerRequest,
  response: http2.Http2ServerResponse,
): void {
  const path = request.url.split("?", 1)[0] ?? "";
  const stream = streams.get(path);
  if (stream && request.method === "POST") {
    serveGrpcStream(stream, request, response, streamSettings).catch(
      (error: unknown) => debug("%s: call failed: %s", path, error),
    );
    return;
  }
  const handler = handlers.get(path);
  if (!handler) {
    // grpc-go responds the same way: HTTP 200 with the status in the headers.
    response.writeHead(200, {
      "content-type": "application/grpc",
      "grpc-status": String(Code.Unimplemented),
      "grpc-message": encodeURIComponent(`unknown method ${path}`),
    });
    response.end();
    return;
  }

  const universalRequest = universalRequestFromNodeRequest(
    request,
    response,
    undefined,
    undefined,
  );
  dropLongTimeout(universalRequest.header);
  universalRequest.body = readBody(
    universalRequest.body as AsyncIterable<Uint8Array>,
    universalRequest.signal,
  );
  failPendingWrite(response, universalRequest.signal);

  handler(universalRequest)
    .then((universalResponse) =>
      universalResponseToNodeResponse(universalResponse, response),
    )
    .catch((error: unknown) => {
      // The client went away or the connection was destroyed while the
      // response was written; the error can only be logged.
      debug("%s: response not delivered: %s", path, error);
    });
}

/**
 * Removes a `grpc-timeout` longer than a Node.js timer can wait (about
 * 24.8 days), so that the call has no deadline, as a bidirectional call
 * has. connect-es would otherwise set a timer that fires at once and fails
 * the call with DeadlineExceeded.
 */
function dropLongTimeout(header: Headers): void {
  const value = header.get("grpc-timeout");
  if (value === null) {
    return;
  }
  const { timeoutMs, error } = parseTimeout(value, Number.MAX_SAFE_INTEGER);
  if (error === undefined && timerMs(timeoutMs) === undefined) {
    header.delete("grpc-timeout");
  }
}

/**
 * Fails a response write that waits for "drain" when the stream closes.
 * A response stream that the client resets while its flow-control window
 * is full emits only "close" (Node.js 20.20): no "drain", no "error" and
 * no write callback. connect-node's response writer waits for one of
 * those, so without this the handler never resumes and its `finally`
 * blocks never run. connect-node listens for "error" only while a write is
 * pending, and so is the only listener this can reach.
 */
function failPendingWrite(
  response: http2.Http2ServerResponse,
  signal: AbortSignal,
): void {
  response.once("close", () => {
    if (response.writableFinished || response.listenerCount("error") === 0) {
      return;
    }
    const reason =
      signal.reason instanceof ConnectError
        ? signal.reason
        : new ConnectError("client closed the stream", Code.Canceled);
    response.emit("error", reason);
  });
}

/**
 * Reads a request body and reports a stream that the client reset as the
 * reason connect-node gives it, such as Canceled for RST_STREAM CANCEL,
 * instead of Node.js's "Premature close".
 */
async function* readBody(
  body: AsyncIterable<Uint8Array>,
  signal: AbortSignal,
): AsyncIterable<Uint8Array> {
  try {
    yield* body;
  } catch (error) {
    if (signal.aborted && signal.reason instanceof ConnectError) {
      throw signal.reason;
    }
    throw error;
  }
}

/**
 * Closes the server: it stops accepting connections, `drain` sends each
 * session a GOAWAY and closes it once its calls are over, and calls still
 * open after `graceMs` are aborted.
 *
 * Sessions are not closed with calls open. Node.js 20.20 resets a stream
 * that arrives on a closed session from inside its frame parsing, and
 * valgrind showed the parser then reading the freed stream. That crashed
 * test runs now and then. After the GOAWAY is sent, the parser ignores
 * new streams before they reach Node.js.
 */
async function closeServer(
  server: http2.Http2Server,
  sessions: Set<http2.ServerHttp2Session>,
  drain: () => void,
  abortCalls: (reason: ConnectError) => void,
  graceMs: number,
): Promise<void> {
  const closed = new Promise<void>((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
  });
  drain();

  let destroyTimer: NodeJS.Timeout | undefined;
  const graceTimer = setTimeout(() => {
    debug("aborting %d connection(s) after %d ms", sessions.size, graceMs);
    abortCalls(new ConnectError("server is shutting down", Code.Unavailable));
    destroyTimer = setTimeout(() => {
      for (const session of sessions) {
        session.destroy();
      }
    }, abortToDestroyMs);
  }, graceMs);

  await closed;
  clearTimeout(graceTimer);
  clearTimeout(destroyTimer);
  debug("closed");
}
