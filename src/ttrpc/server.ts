/**
 * The ttrpc server: hosts connect-es service implementations, the same
 * objects that the gRPC server hosts, on a unix socket.
 */
import * as net from "node:net";
import { debuglog } from "node:util";
import type { DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createServiceImplSpec,
  type Interceptor,
  type ServiceImpl,
  type ServiceImplSpec,
} from "@connectrpc/connect";
import { listenOnPath } from "../transport/socket-path.js";
import { timerOption } from "../util/options.js";
import { type LimitOptions, positive, resolveLimits } from "./limits.js";
import { adoptWithOwnReadBuffer } from "./own-read-buffer.js";
import {
  type MethodTable,
  midFrameTimeoutMs,
  ServerConnection,
} from "./server-connection.js";

const debug = debuglog("ttrpc");

/**
 * A service to host: a `ServiceImplSpec` from connect-es's
 * `createServiceImplSpec()`, or a descriptor with its implementation.
 * Methods that the implementation leaves out fail with Unimplemented.
 */
export type TtrpcService =
  | ServiceImplSpec
  | readonly [service: DescService, implementation: object];

/** Options of {@link createTtrpcServer}. */
export interface TtrpcServerOptions extends LimitOptions {
  services: readonly TtrpcService[];
  /**
   * Maximum data length in bytes of a frame sent or received. A larger
   * frame from a client is discarded and its stream failed with
   * ResourceExhausted. Default 4 MiB, the fixed limit of Go ttrpc.
   */
  maxMessageBytes?: number;
  /**
   * Number of client messages a streaming call buffers for its handler
   * before the connection stops reading the socket. Default 256.
   */
  streamBufferMessages?: number;
  /**
   * Bytes a streaming call buffers before the connection stops reading
   * the socket. Default 16 MiB.
   */
  streamBufferBytes?: number;
  /**
   * Time in ms that a full buffer may stop the connection's reading. A
   * call whose handler takes no message for that long ends with
   * ResourceExhausted. Default 1000.
   */
  streamBufferTimeoutMs?: number;
  /**
   * Time in ms that {@link TtrpcServer.close} lets open calls finish
   * before it aborts their handlers. Default 1000.
   */
  closeGraceMs?: number;
  /**
   * Time in ms that a client may stay silent in the middle of a frame
   * before the server closes its connection. Default 30 000.
   */
  midFrameTimeoutMs?: number;
  /** connect-es interceptors applied to every call. */
  interceptors?: Interceptor[];
}

export interface TtrpcServer {
  /** The socket path the server listens on, once listen() resolved. */
  readonly address: string | undefined;
  /**
   * Starts listening on a unix socket. A stale socket file that no process
   * accepts on is replaced; a live one is an AlreadyExists error.
   */
  listen(path: string): Promise<void>;
  /**
   * Stops accepting connections and ends each connection once its calls
   * have finished. Requests that arrive meanwhile get Unavailable. After
   * `closeGraceMs` the handlers' signals abort and their calls end with
   * Unavailable; 100 ms later the remaining sockets are destroyed.
   * Resolves when every socket is closed and the socket file is removed.
   * Idempotent.
   */
  close(): Promise<void>;
}

const defaultCloseGraceMs = 1000;

// Time between aborting the handlers and destroying the sockets, so that
// handlers that honour their signal still get their status out.
const abortToDestroyMs = 100;

/** Creates a ttrpc server for the given services; see {@link TtrpcServer}. */
export function createTtrpcServer(options: TtrpcServerOptions): TtrpcServer {
  const settings = {
    methods: methodTable(options.services),
    limits: resolveLimits(options),
    interceptors: options.interceptors ?? [],
    debug: (message: string) => debug("%s", message),
    midFrameTimeoutMs: timerOption(
      "midFrameTimeoutMs",
      options.midFrameTimeoutMs,
      midFrameTimeoutMs,
    ),
  };
  const closeGraceMs = positive(
    "closeGraceMs",
    options.closeGraceMs ?? defaultCloseGraceMs,
  );

  const connections = new Set<ServerConnection>();
  let connectionCount = 0;
  const server = net.createServer({ pauseOnConnect: true }, (accepted) => {
    connectionCount += 1;
    // Bytes read before the connection exists are kept for it.
    const early: Buffer[] = [];
    let receive = (chunk: Buffer): void => {
      early.push(Buffer.from(chunk));
    };
    const socket = adoptWithOwnReadBuffer(accepted, (chunk) => receive(chunk));
    const connection = new ServerConnection(
      connectionCount,
      socket ?? accepted,
      settings,
      socket !== undefined,
    );
    receive = (chunk) => connection.receive(chunk);
    for (const chunk of early.splice(0)) {
      connection.receive(chunk);
    }
    if (socket === undefined) {
      accepted.resume();
    }
    connections.add(connection);
    void connection.closed.then(() => connections.delete(connection));
    connection.debug("accepted");
  });

  let address: string | undefined;
  let closing: Promise<void> | undefined;

  return {
    get address() {
      return address;
    },

    async listen(path) {
      if (address !== undefined || closing !== undefined) {
        throw new ConnectError(
          `ttrpc server cannot listen on ${path}: it is ` +
            (closing ? "closed" : `already listening on ${address}`),
          Code.FailedPrecondition,
        );
      }
      await listenOnPath(server, path);
      address = path;
      debug("listening on %s", path);
    },

    close() {
      closing ??= closeServer(server, connections, closeGraceMs);
      return closing;
    },
  };
}

/** Builds the lookup table by the service and method names on the wire. */
function methodTable(services: readonly TtrpcService[]): MethodTable {
  const table: MethodTable = new Map();
  for (const service of services) {
    const spec =
      "service" in service
        ? service
        : createServiceImplSpec(
            service[0],
            service[1] as Partial<ServiceImpl<DescService>>,
          );
    const methods = table.get(spec.service.typeName) ?? new Map();
    for (const method of Object.values(spec.methods)) {
      methods.set(method.method.name, method);
    }
    table.set(spec.service.typeName, methods);
  }
  return table;
}

async function closeServer(
  server: net.Server,
  connections: Set<ServerConnection>,
  graceMs: number,
): Promise<void> {
  const listenerClosed = new Promise<void>((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
  });
  for (const connection of connections) {
    connection.drain();
  }

  let destroyTimer: NodeJS.Timeout | undefined;
  const graceTimer = setTimeout(() => {
    debug(
      "closing: aborting the calls of %d connection(s) after %d ms",
      connections.size,
      graceMs,
    );
    const reason = new ConnectError(
      "ttrpc server is shutting down",
      Code.Unavailable,
    );
    for (const connection of connections) {
      connection.abortCalls(reason);
    }
    destroyTimer = setTimeout(() => {
      for (const connection of connections) {
        connection.destroy();
      }
    }, abortToDestroyMs);
  }, graceMs);

  await Promise.all([
    listenerClosed,
    ...[...connections].map((connection) => connection.closed),
  ]);
  clearTimeout(graceTimer);
  clearTimeout(destroyTimer);
  debug("closed");
}
