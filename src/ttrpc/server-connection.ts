/**
 * One accepted connection on the server: it checks stream ids, routes
 * frames to calls, and responds with a status to Requests that open no call.
 */
import type { Socket } from "node:net";
import { format } from "node:util";
import { fromBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type Interceptor,
  type MethodImplSpec,
} from "@connectrpc/connect";
import { type Request, RequestSchema } from "../gen/ttrpc/request_pb.js";
import { describeFrame, type FrameHeader, MessageType } from "./frame.js";
import { FrameDecoder, type FrameSink } from "./frame-decoder.js";
import { FrameWriter } from "./frame-writer.js";
import { type ConnectionLimits, oversizedError } from "./limits.js";
import { ReadGate } from "./read-gate.js";
import { ServerCall } from "./server-call.js";
import { decodeError, encodeStatusResponse } from "./status.js";

/** Method implementations by service name, then by method name. */
export type MethodTable = Map<string, Map<string, MethodImplSpec>>;

/** What a connection takes from its server. */
export interface ServerSettings {
  methods: MethodTable;
  limits: ConnectionLimits;
  interceptors: Interceptor[];
  /** Writes a diagnostic line when NODE_DEBUG includes "ttrpc". */
  debug: (message: string) => void;
  /** Overrides {@link midFrameTimeoutMs}. */
  midFrameTimeoutMs?: number;
}

/**
 * How long a connection may stay silent in the middle of a frame before
 * the server closes it, in ms. The decoder keeps the frame's buffer, up to
 * the message limit, until the frame is complete, so a client that stops
 * there would keep that memory for as long as it stays connected.
 */
export const midFrameTimeoutMs = 30_000;

// The first 8 bytes of the HTTP/2 client preface, "PRI * HT", read as the
// length and stream id of a ttrpc frame header.
const http2PrefaceLength = 0x50524920;
const http2PrefaceStreamId = 0x2a204854;

export class ServerConnection implements FrameSink {
  readonly id: number;
  readonly writer: FrameWriter;
  readonly gate: ReadGate;
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;
  readonly #socket: Socket;
  readonly #settings: ServerSettings;
  readonly #calls = new Map<number, ServerCall>();
  readonly #decoder: FrameDecoder;
  #lastStreamId = 0;
  #draining = false;

  /**
   * With `ownReadBuffer`, the socket reads into a buffer of its own and
   * passes each read to {@link receive}; otherwise it emits `data`.
   */
  constructor(
    id: number,
    socket: Socket,
    settings: ServerSettings,
    ownReadBuffer = false,
  ) {
    this.id = id;
    this.#socket = socket;
    this.#settings = settings;
    this.#decoder = new FrameDecoder(
      settings.limits.maxMessageBytes,
      this,
      ownReadBuffer,
    );
    this.writer = new FrameWriter(socket);
    this.gate = new ReadGate(socket, this.#decoder);

    let cause: Error | undefined;
    socket.on("error", (error) => {
      cause = error;
    });
    // Node.js refreshes the idle timer on every read and write.
    socket.setTimeout(settings.midFrameTimeoutMs ?? midFrameTimeoutMs);
    socket.on("timeout", () => this.#onIdle());
    this.closed = new Promise((resolve) => {
      socket.once("close", () => {
        this.#onClose(cause);
        resolve();
      });
    });
  }

  get limits(): ConnectionLimits {
    return this.#settings.limits;
  }

  get interceptors(): Interceptor[] {
    return this.#settings.interceptors;
  }

  /** Decodes the bytes of one read, which the next read overwrites. */
  receive(chunk: Buffer): void {
    this.#decoder.push(chunk);
  }

  /** Writes a diagnostic line prefixed with the connection id. */
  debug(message: string, ...values: unknown[]): void {
    this.#settings.debug(
      `connection ${this.id}: ${format(message, ...values)}`,
    );
  }

  /**
   * Answers new Requests with Unavailable and ends the socket once no call
   * is left open.
   */
  drain(): void {
    this.#draining = true;
    this.#endIfIdle();
  }

  /**
   * Ends every open call with `reason` and aborts its handler, for a
   * server whose close grace period has ended.
   */
  abortCalls(reason: ConnectError): void {
    for (const call of [...this.#calls.values()]) {
      call.fail(reason);
    }
  }

  /** Closes the socket at once; open calls are aborted. */
  destroy(): void {
    this.#socket.destroy();
  }

  /** Stops routing frames to a call that sent its final frame. */
  callFinished(call: ServerCall): void {
    this.#calls.delete(call.streamId);
    this.#endIfIdle();
  }

  onFrame(header: FrameHeader, data: Buffer): void {
    this.#routeFrame(header, data);
    if (!this.writer.writable) {
      this.gate.waitForWrites(this.writer.whenWritable());
    }
  }

  #routeFrame(header: FrameHeader, data: Buffer): void {
    switch (header.type) {
      case MessageType.Request:
        this.#onRequest(header, data);
        return;
      case MessageType.Data: {
        const call = this.#calls.get(header.streamId);
        if (call) {
          call.onData(header, data);
        } else {
          // Usually a half-close that crossed the call's final frame.
          this.debug("dropped %s for no open call", describeFrame(header));
        }
        return;
      }
      default:
        this.debug(
          "dropped %s: clients send no such frame",
          describeFrame(header),
        );
    }
  }

  onOversized(header: FrameHeader): void {
    const { streamId } = header;
    if (
      this.#lastStreamId === 0 &&
      header.length === http2PrefaceLength &&
      streamId === http2PrefaceStreamId
    ) {
      // "PRI * HTTP/2.0" read as a frame header: a gRPC client. Closing at
      // once spares it from waiting for a response that never comes.
      this.debug("closed: the client speaks HTTP/2 (gRPC), not ttrpc");
      this.#socket.destroy();
      return;
    }
    const error = oversizedError(
      streamId,
      header.length,
      this.limits.maxMessageBytes,
    );
    this.debug("discarded oversized %s", describeFrame(header));

    const call = this.#calls.get(streamId);
    if (call) {
      call.fail(error);
      return;
    }
    if (
      header.type === MessageType.Request &&
      streamId % 2 === 1 &&
      streamId > this.#lastStreamId
    ) {
      this.#lastStreamId = streamId;
      this.#sendStatus(streamId, error);
    }
  }

  #onRequest(header: FrameHeader, data: Buffer): void {
    const { streamId } = header;
    const rejection = this.#checkStreamId(streamId);
    if (rejection) {
      this.#sendStatus(streamId, rejection);
      return;
    }
    this.#lastStreamId = streamId;
    if (this.#draining) {
      this.#sendStatus(
        streamId,
        new ConnectError("ttrpc server is shutting down", Code.Unavailable),
      );
      return;
    }

    let request: Request;
    try {
      request = fromBinary(RequestSchema, data);
    } catch (error) {
      this.#sendStatus(
        streamId,
        decodeError("ttrpc request", error, Code.InvalidArgument),
      );
      return;
    }
    const spec = this.#lookUp(request);
    if (spec instanceof ConnectError) {
      this.#sendStatus(streamId, spec);
      return;
    }

    const call = new ServerCall(this, streamId, spec, request, header.flags);
    this.#calls.set(streamId, call);
    void call.run(request.payload);
  }

  #checkStreamId(streamId: number): ConnectError | undefined {
    if (streamId % 2 === 0) {
      return new ConnectError(
        `invalid stream id ${streamId}: client streams must have odd ids`,
        Code.InvalidArgument,
      );
    }
    if (streamId <= this.#lastStreamId) {
      return new ConnectError(
        `invalid stream id ${streamId}: ids must increase, and the last ` +
          `was ${this.#lastStreamId}`,
        Code.InvalidArgument,
      );
    }
    return undefined;
  }

  /** Returns the method, or the Unimplemented error that Go ttrpc sends. */
  #lookUp(request: Request): MethodImplSpec | ConnectError {
    const methods = this.#settings.methods.get(request.service);
    if (!methods) {
      return new ConnectError(`service ${request.service}`, Code.Unimplemented);
    }
    const spec = methods.get(request.method);
    if (!spec) {
      return new ConnectError(`method ${request.method}`, Code.Unimplemented);
    }
    return spec;
  }

  #sendStatus(streamId: number, error: ConnectError): void {
    this.debug("stream %d: %s", streamId, error.message);
    this.writer.write(
      streamId,
      MessageType.Response,
      0,
      encodeStatusResponse(error),
    );
  }

  /**
   * Closes a connection that went silent in the middle of a frame, unless
   * the server itself stopped reading it.
   */
  #onIdle(): void {
    if (!this.#decoder.midFrame || this.gate.held) {
      return;
    }
    this.debug("closed: silent for %d ms inside a frame", this.#socket.timeout);
    this.#socket.destroy(
      new Error(
        `the client sent part of a frame and nothing more for ` +
          `${this.#socket.timeout} ms`,
      ),
    );
  }

  #endIfIdle(): void {
    if (this.#draining && this.#calls.size === 0) {
      this.#socket.end();
    }
  }

  #onClose(cause: Error | undefined): void {
    this.gate.dispose();
    const error = new ConnectError(
      cause
        ? `ttrpc connection failed: ${cause.message}`
        : "ttrpc connection closed",
      Code.Unavailable,
      undefined,
      undefined,
      cause,
    );
    this.debug("closed: %s", error.rawMessage);
    const calls = [...this.#calls.values()];
    this.#calls.clear();
    for (const call of calls) {
      call.onConnectionClose(error);
    }
  }
}
