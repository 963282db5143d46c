/**
 * A streaming call (client, server or bidirectional streaming) on the
 * client side. It sends the Request, pumps input messages as Data frames
 * at the socket's pace, and queues received Data frames for the reader.
 */
import {
  type DescMessage,
  type DescMethodStreaming,
  fromBinary,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  encodeMessageParts,
  partsLength,
  takeWrittenCallback,
} from "../any/index.js";
import { ResponseSchema } from "../gen/ttrpc/request_pb.js";
import type { CallHandler, ClientConnection } from "./client-connection.js";
import { encodeRequest, type RequestEnvelope } from "./client-request.js";
import {
  carriesData,
  closeFlags,
  Flag,
  type FrameHeader,
  MessageType,
} from "./frame.js";
import { checkMessageSize, oversizedError, queueLimits } from "./limits.js";
import { ReceiveQueue } from "./receive-queue.js";
import { decodeError, errorFromStatus } from "./status.js";

/**
 * Opens a streaming call and returns its response messages once the
 * Request frame is written. For server streaming, the single input message
 * travels in the Request and the client's side starts closed.
 */
export async function callStream<I extends DescMessage, O extends DescMessage>(
  connection: ClientConnection,
  method: DescMethodStreaming<I, O>,
  envelope: RequestEnvelope,
  input: AsyncIterable<MessageShape<I>>,
  signal: AbortSignal,
): Promise<AsyncIterable<MessageShape<O>>> {
  const call = new ClientStreamCall(connection, method);
  await call.start(envelope, input, signal);
  return call.messages();
}

class ClientStreamCall<I extends DescMessage, O extends DescMessage>
  implements CallHandler
{
  readonly #connection: ClientConnection;
  readonly #method: DescMethodStreaming<I, O>;
  readonly #queue: ReceiveQueue<Uint8Array>;
  #streamId = 0;
  #signal: AbortSignal | undefined;
  // CloseSend was sent, or the client side started closed.
  #sendClosed = false;
  // The call is no longer tracked: the server sent its final frame, or
  // the call failed or was abandoned. Nothing more is sent.
  #finished = false;
  readonly #onAbort = () => this.abort(ConnectError.from(this.#signal?.reason));

  constructor(connection: ClientConnection, method: DescMethodStreaming<I, O>) {
    this.#connection = connection;
    this.#method = method;
    this.#queue = new ReceiveQueue(queueLimits(connection.limits), () =>
      connection.gate.release(this),
    );
  }

  async start(
    envelope: RequestEnvelope,
    input: AsyncIterable<MessageShape<I>>,
    signal: AbortSignal,
  ): Promise<void> {
    const inputs = input[Symbol.asyncIterator]();
    let payload = new Uint8Array(0);
    let flags: number = Flag.RemoteOpen;
    if (this.#method.methodKind === "server_streaming") {
      const first = await inputs.next();
      if (first.done) {
        throw new ConnectError(
          "missing request message for a server-streaming call",
          Code.Internal,
        );
      }
      payload = toBinary(this.#method.input, first.value);
      flags = Flag.RemoteClosed;
      this.#sendClosed = true;
    }
    const request = encodeRequest(envelope, payload);

    signal.throwIfAborted();
    this.#streamId = this.#connection.open(this, flags, request);
    this.#signal = signal;
    signal.addEventListener("abort", this.#onAbort, { once: true });
    if (!this.#sendClosed) {
      void this.#pump(inputs);
    }
  }

  messages(): AsyncIterable<MessageShape<O>> {
    const next = async (): Promise<IteratorResult<MessageShape<O>>> => {
      const result = await this.#queue.next();
      if (result.done) {
        return result;
      }
      try {
        return {
          value: fromBinary(this.#method.output, result.value),
          done: false,
        };
      } catch (error) {
        const failure = decodeError("ttrpc stream message", error);
        this.abort(failure);
        throw failure;
      }
    };
    const abandon = async (): Promise<IteratorResult<MessageShape<O>>> => {
      this.abort(new ConnectError("response stream abandoned", Code.Canceled));
      this.#queue.discard();
      return { value: undefined, done: true };
    };
    return {
      [Symbol.asyncIterator]: () => ({ next, return: abandon }),
    };
  }

  /**
   * Ends the call on the client side: sends CloseSend unless the client
   * side is closed already, stops tracking the stream id and fails the
   * reader with `error`. ttrpc has no cancel frame, so the server sees an
   * ordinary half-close. Does nothing once the call finished.
   */
  abort(error: ConnectError): void {
    if (this.#finished) {
      return;
    }
    if (!this.#sendClosed) {
      this.#sendClosed = true;
      this.#connection.writer.write(
        this.#streamId,
        MessageType.Data,
        closeFlags,
      );
    }
    this.#finish();
    this.#queue.fail(error);
  }

  onFrame(header: FrameHeader, data: Buffer): void {
    if (header.type === MessageType.Data) {
      this.#onData(header, data);
    } else if (header.type === MessageType.Response) {
      this.#onResponse(data);
    }
  }

  onOversized(header: FrameHeader): void {
    const { maxMessageBytes } = this.#connection.limits;
    this.abort(oversizedError(header.streamId, header.length, maxMessageBytes));
  }

  onClose(error: ConnectError): void {
    this.#finish();
    this.#queue.fail(error);
  }

  #onData(header: FrameHeader, data: Buffer): void {
    if (carriesData(header.flags) && this.#queue.push(data)) {
      const { streamBufferTimeoutMs } = this.#connection.limits;
      const { length, bytes } = this.#queue;
      this.#connection.gate.hold(this, streamBufferTimeoutMs, () =>
        this.abort(
          new ConnectError(
            `ttrpc stream ${this.#streamId}: receive buffer full: ` +
              `${length} messages (${bytes} bytes) not read within ` +
              `${streamBufferTimeoutMs} ms; read every open stream`,
            Code.ResourceExhausted,
          ),
        ),
      );
    }
    if (header.flags & Flag.RemoteClosed) {
      this.#finish();
      this.#queue.end();
    }
  }

  #onResponse(data: Buffer): void {
    this.#finish();
    let response: ReturnType<typeof fromBinary<typeof ResponseSchema>>;
    try {
      response = fromBinary(ResponseSchema, data);
    } catch (error) {
      this.#queue.fail(decodeError("ttrpc response", error));
      return;
    }
    if (response.status && response.status.code !== 0) {
      this.#queue.end(errorFromStatus(response.status));
      return;
    }
    // A client-streaming call returns its one message in the Response;
    // for other kinds an OK Response only ends the stream.
    if (this.#method.methodKind === "client_streaming") {
      this.#queue.push(response.payload);
    }
    this.#queue.end();
  }

  /** Stops tracking the call; the pump sends nothing after this. */
  #finish(): void {
    if (this.#finished) {
      return;
    }
    this.#finished = true;
    this.#connection.forget(this.#streamId);
    this.#connection.gate.release(this);
    this.#signal?.removeEventListener("abort", this.#onAbort);
  }

  async #pump(inputs: AsyncIterator<MessageShape<I>>): Promise<void> {
    const { writer, limits } = this.#connection;
    try {
      for (;;) {
        await writer.whenWritable();
        if (this.#finished) {
          break;
        }
        const result = await inputs.next();
        if (this.#finished) {
          break;
        }
        if (result.done) {
          this.#sendClosed = true;
          writer.write(this.#streamId, MessageType.Data, closeFlags);
          return;
        }
        const parts = encodeMessageParts(this.#method.input, result.value);
        checkMessageSize(
          "request message",
          partsLength(parts),
          limits.maxMessageBytes,
        );
        writer.writeParts(
          this.#streamId,
          MessageType.Data,
          0,
          parts,
          takeWrittenCallback(result.value),
        );
      }
    } catch (error) {
      this.abort(ConnectError.from(error));
      return;
    }
    // The call finished while input was left: let the input clean up.
    inputs.return?.().catch(() => {});
  }
}
