/**
 * An HTTP/2 session manager that connects to a unix socket. It extends
 * connect-node's `Http2SessionManager`, which keeps one connection, pings
 * it and reconnects after a GOAWAY, and adds what a local daemon socket
 * needs: a connect timeout, connection errors that name the socket path
 * and come out as Unavailable, a closed state that rejects new calls, and
 * prompt failure of calls whose connection drops.
 */
import type * as http2 from "node:http2";
import * as net from "node:net";
import { debuglog } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  Http2SessionManager,
  type Http2SessionOptions,
} from "@connectrpc/connect-node";
import { connectHint } from "../transport/socket-path.js";
import {
  http2Settings,
  mayWidenClientWindow,
  widenConnectionWindow,
} from "./limits.js";
import { watchStream } from "./stream-watch.js";

const debug = debuglog("grpc");

/** Authority of every request; gRPC servers on unix sockets ignore it. */
export const unixAuthority = "http://localhost";

/** Advice of {@link UnixSessionManager} for a peer that speaks ttrpc. */
export const defaultTtrpcPeerHint =
  "Use the ttrpc protocol (--protocol ttrpc) for it";

export class UnixSessionManager extends Http2SessionManager {
  readonly path: string;
  #closedReason: ConnectError | undefined;
  // The error that destroyed the newest socket, if any.
  #socketError: Error | undefined;
  // Sessions that already have the listener that keeps their late errors
  // from ending the process.
  readonly #guarded = new WeakSet<http2.Http2Session>();

  /**
   * `maxSessionMemoryMegabytes` is Node.js's `maxSessionMemory`: past it,
   * Node.js rejects incoming response headers with ENHANCE_YOUR_CALM, so
   * it must exceed the bytes that messages being written can queue.
   */
  constructor(
    path: string,
    connectTimeoutMs: number,
    maxSessionMemoryMegabytes: number,
    pingOptions: Http2SessionOptions,
    ttrpcPeerHint = defaultTtrpcPeerHint,
  ) {
    super(unixAuthority, pingOptions, {
      createConnection: () => {
        this.#socketError = undefined;
        const socket = connectSocket(path, connectTimeoutMs, ttrpcPeerHint);
        socket.once("error", (error) => {
          this.#socketError = error;
        });
        socket.once("end", () => {
          if (socket.bytesRead === 0) {
            this.#socketError ??= new Error(
              `${path} closed the connection without an HTTP/2 response: is ` +
                `it a ttrpc socket? ${ttrpcPeerHint}`,
            );
          }
        });
        return socket;
      },
      maxSessionMemory: maxSessionMemoryMegabytes,
      settings: http2Settings,
    });
    this.path = path;
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closedReason !== undefined;
  }

  /**
   * Opens a stream for one call. Rejects at once after {@link close}, and
   * rejects with Unavailable, naming the socket, when the connection
   * cannot be made.
   */
  override async request(
    method: string,
    path: string,
    headers: http2.OutgoingHttpHeaders,
    options: Omit<http2.ClientSessionRequestOptions, "signal">,
  ): Promise<http2.ClientHttp2Stream> {
    if (this.#closedReason) {
      throw this.#closedReason;
    }

    let stream: http2.ClientHttp2Stream;
    try {
      stream = await super.request(method, path, headers, options);
    } catch (cause) {
      throw this.#closedReason ?? connectFailure(this.path, cause);
    }

    // connect-node stops listening for session errors when it leaves a
    // state, but Node.js can still emit one when the session closes, for
    // example after a peer that is not an HTTP/2 server. Unhandled, that
    // event would end the process. The calls learn of the failure from
    // their streams.
    const session = stream.session;
    if (session !== undefined && !this.#guarded.has(session)) {
      this.#guarded.add(session);
      session.on("error", (error) => {
        this.#socketError ??= error;
        debug("session error on %s: %s", this.path, error.message);
      });
      const widen = (payload: Buffer) => {
        if (session.destroyed || !mayWidenClientWindow(payload)) {
          return;
        }
        session.off("ping", widen);
        // A failure here would be thrown out of Node.js's frame handling;
        // the connection then keeps its 64 KiB window.
        try {
          widenConnectionWindow(session);
          debug("widened the connection window on %s", this.path);
        } catch (error) {
          debug(
            "failed to widen the connection window on %s: %s",
            this.path,
            error,
          );
        }
      };
      session.on("ping", widen);
    }
    watchStream(
      stream,
      `${path} on ${this.path}`,
      () => this.#closedReason,
      () => this.#socketError,
    );
    return stream;
  }

  /**
   * Ends the connection and every call on it with Unavailable, and makes
   * later calls fail the same way. Idempotent.
   */
  close(): void {
    if (this.#closedReason) {
      return;
    }
    this.#closedReason = new ConnectError(
      `gRPC transport to ${this.path} is closed`,
      Code.Unavailable,
    );
    this.abort(this.#closedReason);
    debug("closed transport to %s", this.path);
  }
}

/**
 * Connects to a unix socket and destroys the socket with ETIMEDOUT when it
 * is not connected within `timeoutMs`.
 */
function connectSocket(
  path: string,
  timeoutMs: number,
  ttrpcPeerHint: string,
): net.Socket {
  // NOTE: no test reaches this timer. On Linux a unix socket connect
  // completes or fails at once, even when the listener's backlog is full.
  const socket = net.connect(path);
  const timer = setTimeout(() => {
    const error: NodeJS.ErrnoException = new Error(
      `timed out after ${timeoutMs} ms connecting to ${path}`,
    );
    error.code = "ETIMEDOUT";
    socket.destroy(error);
  }, timeoutMs);
  timer.unref();

  const clear = () => clearTimeout(timer);
  socket.once("connect", () => {
    clear();
    // A gRPC server sends its HTTP/2 settings as soon as a client
    // connects. A peer that sends nothing, such as a ttrpc server reading
    // the client's preface as one oversized frame, would otherwise hold
    // every call until the keepalive ping times out.
    const silence = setTimeout(() => {
      if (socket.bytesRead === 0) {
        const error: NodeJS.ErrnoException = new Error(
          `no HTTP/2 response within ${timeoutMs} ms from ${path}: is it a ` +
            `ttrpc socket? ${ttrpcPeerHint}`,
        );
        error.code = "ETIMEDOUT";
        socket.destroy(error);
      }
    }, timeoutMs);
    silence.unref();
    socket.once("close", () => clearTimeout(silence));
  });
  socket.once("close", clear);
  return socket;
}

function connectFailure(path: string, cause: unknown): ConnectError {
  // A ConnectError's message starts with its code, such as "[internal]",
  // which adds nothing to the reason of a failed connect.
  const detail =
    cause instanceof ConnectError
      ? cause.rawMessage
      : cause instanceof Error
        ? cause.message
        : String(cause);
  debug("failed to connect to %s: %s", path, detail);
  return new ConnectError(
    `failed to connect to ${path}: ${detail}: ${connectHint(path, cause)}`,
    Code.Unavailable,
    undefined,
    undefined,
    cause,
  );
}
