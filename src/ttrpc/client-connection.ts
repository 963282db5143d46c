/**
 * One client socket: stream id allocation, the table of open calls, and
 * frame routing to them. A dropped connection fails every open call at
 * once with Unavailable.
 */
import * as net from "node:net";
import { debuglog } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectHint } from "../transport/socket-path.js";
import {
  describeFrame,
  type FrameHeader,
  MessageType,
  streamIdMax,
} from "./frame.js";
import { FrameDecoder, type FrameSink } from "./frame-decoder.js";
import { FrameWriter } from "./frame-writer.js";
import type { ConnectionLimits } from "./limits.js";
import { ownReadBuffer } from "./own-read-buffer.js";
import { ReadGate } from "./read-gate.js";

const debug = debuglog("ttrpc");

/** The receiving end of one call on a client connection. */
export interface CallHandler {
  /** A frame with this call's stream id arrived. */
  onFrame(header: FrameHeader, data: Buffer): void;
  /** A frame with this call's stream id was over the limit and dropped. */
  onOversized(header: FrameHeader): void;
  /** The connection closed; the call must fail with `error`. */
  onClose(error: ConnectError): void;
}

export class ClientConnection implements FrameSink {
  readonly path: string;
  readonly limits: ConnectionLimits;
  readonly writer: FrameWriter;
  readonly gate: ReadGate;
  /** Called once when the connection has closed. */
  onClosed: (() => void) | undefined;
  readonly #socket: net.Socket;
  readonly #decoder: FrameDecoder;
  readonly #calls = new Map<number, CallHandler>();
  readonly #closed: Promise<void>;
  #nextStreamId = 1;
  #error: ConnectError | undefined;
  #retiring = false;
  #framesReceived = false;

  /**
   * Connects to the unix socket at `path`. Rejects with Unavailable when
   * the socket cannot be reached within `connectTimeoutMs`.
   */
  static open(
    path: string,
    limits: ConnectionLimits,
    connectTimeoutMs: number,
  ): Promise<ClientConnection> {
    return new Promise((resolve, reject) => {
      let decoder: FrameDecoder | undefined;
      // Bytes that come before the connection exists are kept rather
      // than lost, although a ttrpc server sends none.
      const early: Buffer[] = [];
      const socket = net.connect({
        path,
        onread: ownReadBuffer((chunk) => {
          if (decoder) {
            decoder.push(chunk);
          } else {
            early.push(Buffer.from(chunk));
          }
        }),
      });
      const fail = (error: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(
          new ConnectError(
            `failed to connect to ttrpc socket ${path}: ${error.message}: ` +
              connectHint(path, error),
            Code.Unavailable,
            undefined,
            undefined,
            error,
          ),
        );
      };
      const timer = setTimeout(
        () => fail(new Error(`timed out after ${connectTimeoutMs} ms`)),
        connectTimeoutMs,
      );
      socket.once("error", fail);
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.off("error", fail);
        const connection = new ClientConnection(path, socket, limits);
        decoder = connection.#decoder;
        for (const chunk of early.splice(0)) {
          decoder.push(chunk);
        }
        resolve(connection);
      });
    });
  }

  private constructor(
    path: string,
    socket: net.Socket,
    limits: ConnectionLimits,
  ) {
    this.path = path;
    this.limits = limits;
    this.#socket = socket;
    this.#decoder = new FrameDecoder(limits.maxMessageBytes, this, true);
    this.writer = new FrameWriter(socket);
    this.gate = new ReadGate(socket, this.#decoder);

    let cause: Error | undefined;
    socket.on("error", (error) => {
      cause = error;
    });
    this.#closed = new Promise((resolve) => {
      socket.once("close", () => {
        this.#onSocketClose(cause);
        resolve();
      });
    });
    debug("connected to %s", path);
  }

  /** Whether the connection is closed or no longer takes new calls. */
  get usable(): boolean {
    return this.#error === undefined && !this.#retiring;
  }

  /**
   * Registers `call` under the next stream id and writes its Request frame
   * in the same step, so that ids go out strictly increasing. Returns the
   * id. Throws Unavailable if the connection is closed.
   */
  open(call: CallHandler, flags: number, request: Uint8Array): number {
    if (this.#error) {
      throw this.#error;
    }
    const streamId = this.#nextStreamId;
    this.#nextStreamId += 2;
    if (this.#nextStreamId > streamIdMax) {
      // Calls already open finish; the transport opens a new connection.
      this.#retiring = true;
    }
    if (this.#calls.size === 0) {
      this.#socket.ref();
    }
    this.#calls.set(streamId, call);
    this.writer.write(streamId, MessageType.Request, flags, request);
    return streamId;
  }

  /**
   * Stops routing frames to the call with this id; later frames for it
   * are dropped.
   */
  forget(streamId: number): void {
    // An idle connection does not keep the process alive, as an idle
    // HTTP/2 session does not. So a program that does not close its client
    // still exits.
    if (this.#calls.delete(streamId) && this.#calls.size === 0) {
      this.#socket.unref();
    }
    if (this.#retiring && this.#calls.size === 0) {
      this.close(
        new ConnectError("ttrpc stream ids used up", Code.Unavailable),
      );
    }
  }

  /**
   * Destroys the socket and fails every open call with `error`. Resolves
   * when the socket is closed. Idempotent.
   */
  close(error: ConnectError): Promise<void> {
    this.#error ??= error;
    this.#socket.destroy();
    return this.#closed;
  }

  onFrame(header: FrameHeader, data: Buffer): void {
    this.#framesReceived = true;
    const call = this.#calls.get(header.streamId);
    if (!call) {
      debug(
        "%s: dropped %s for no open call",
        this.path,
        describeFrame(header),
      );
      return;
    }
    call.onFrame(header, data);
  }

  onOversized(header: FrameHeader): void {
    debug("%s: discarded oversized %s", this.path, describeFrame(header));
    this.#calls.get(header.streamId)?.onOversized(header);
  }

  #onSocketClose(cause: Error | undefined): void {
    this.gate.dispose();
    // A gRPC server replies to a ttrpc client with HTTP/2 frames and then
    // closes, which reads as a connection closed before its first frame
    // was whole.
    const midFrame = !this.#decoder.midFrame
      ? ""
      : this.#framesReceived
        ? " in the middle of a frame"
        : " in the middle of its first frame: is it a gRPC socket? Use the " +
          "gRPC protocol (--protocol grpc) for it";
    this.#error ??= new ConnectError(
      cause
        ? `ttrpc connection to ${this.path} failed: ${cause.message}`
        : `ttrpc connection to ${this.path} closed by the server${midFrame}`,
      Code.Unavailable,
      undefined,
      undefined,
      cause,
    );
    debug("%s: closed: %s", this.path, this.#error.rawMessage);

    const calls = [...this.#calls.values()];
    this.#calls.clear();
    for (const call of calls) {
      call.onClose(this.#error);
    }
    this.onClosed?.();
  }
}
