/**
 * One call on the server: it runs a connect-es method implementation and
 * writes its result. A unary or client-streaming call ends with a Response
 * that carries the output message; a server-streaming or bidirectional
 * call sends each output message as a Data frame and ends with Data flags
 * 0x05. Every error ends the call with a Response that carries the status.
 */
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createHandlerContext,
  type MethodImplSpec,
} from "@connectrpc/connect";
import {
  createAsyncIterable,
  invokeUnaryImplementation,
  transformInvokeImplementation,
} from "@connectrpc/connect/protocol";
import {
  concatParts,
  encodeMessageParts,
  partsLength,
  takeWrittenCallback,
} from "../any/index.js";
import { type Request, ResponseSchema } from "../gen/ttrpc/request_pb.js";
import { timerMs } from "../util/timer.js";
import {
  carriesData,
  closeFlags,
  Flag,
  type FrameHeader,
  MessageType,
} from "./frame.js";
import { checkMessageSize, queueLimits } from "./limits.js";
import { headersFromMetadata } from "./metadata.js";
import { ReceiveQueue } from "./receive-queue.js";
import type { ServerConnection } from "./server-connection.js";
import { decodeError, encodeStatusResponse } from "./status.js";

type HandlerContext = ReturnType<typeof createHandlerContext>;

export class ServerCall {
  readonly streamId: number;
  readonly #connection: ServerConnection;
  readonly #spec: MethodImplSpec;
  readonly #context: HandlerContext;
  readonly #requestSignal = new AbortController();
  // Client messages for client-streaming and bidirectional calls.
  readonly #queue: ReceiveQueue<Uint8Array> | undefined;
  #finished = false;

  /**
   * Prepares the call for a decoded Request. `flags` are the Request
   * frame's: with Flag.RemoteOpen and without Flag.RemoteClosed the client
   * sends Data frames; otherwise the payload is the only client message.
   */
  constructor(
    connection: ServerConnection,
    streamId: number,
    spec: MethodImplSpec,
    request: Request,
    flags: number,
  ) {
    this.streamId = streamId;
    this.#connection = connection;
    this.#spec = spec;

    const { headers, rejected } = headersFromMetadata(request.metadata);
    if (rejected.length > 0) {
      connection.debug(
        "stream %d: left out %d metadata entries that are not valid header fields",
        streamId,
        rejected.length,
      );
    }
    // No shutdownSignal: the server ends open calls through abortCalls() of
    // their connection. Node.js scans an AbortSignal's listeners on every
    // addEventListener, so one signal shared by all calls made each new call
    // cost time in proportion to the calls already open.
    this.#context = createHandlerContext({
      service: spec.method.parent,
      method: spec.method,
      protocolName: "ttrpc",
      requestMethod: "POST",
      url: `/${request.service}/${request.method}`,
      timeoutMs: timeoutMsOf(request.timeoutNano),
      requestSignal: this.#requestSignal.signal,
      requestHeader: headers,
    });

    const kind = spec.kind;
    if (kind === "client_streaming" || kind === "bidi_streaming") {
      this.#queue = new ReceiveQueue(queueLimits(connection.limits), () =>
        connection.gate.release(this),
      );
      if (request.payload.length > 0) {
        this.#queue.push(request.payload);
      }
      const inputOpen =
        (flags & Flag.RemoteOpen) !== 0 && (flags & Flag.RemoteClosed) === 0;
      if (!inputOpen) {
        this.#queue.end();
      }
    }
  }

  /** Runs the handler; settles when its result was written. */
  async run(payload: Uint8Array): Promise<void> {
    // A deadline, a server shutdown or a failure of this call ends it at
    // once, without waiting for the handler to notice its signal.
    this.#context.signal.addEventListener(
      "abort",
      () => this.#finishWithError(this.#context.signal.reason),
      { once: true },
    );
    try {
      if (this.#spec.kind === "unary") {
        await this.#runUnary(this.#spec, payload);
      } else {
        await this.#runStream(payload);
      }
    } catch (error) {
      this.#finishWithError(error);
    }
  }

  /** Takes a Data frame that the client sent on this call. */
  onData(header: FrameHeader, data: Buffer): void {
    if (!this.#queue) {
      this.#connection.debug(
        "stream %d: dropped Data on a call without client stream",
        this.streamId,
      );
      return;
    }
    if (carriesData(header.flags) && this.#queue.push(data)) {
      const { streamBufferTimeoutMs } = this.#connection.limits;
      const { length, bytes } = this.#queue;
      this.#connection.gate.hold(this, streamBufferTimeoutMs, () =>
        this.fail(
          new ConnectError(
            `receive buffer full: the handler did not read any of ` +
              `${length} queued messages (${bytes} bytes) within ` +
              `${streamBufferTimeoutMs} ms`,
            Code.ResourceExhausted,
          ),
        ),
      );
    }
    if (header.flags & Flag.RemoteClosed) {
      this.#queue.end();
    }
  }

  /** Ends the call with `error`: sends its status and aborts the handler. */
  fail(error: ConnectError): void {
    this.#finishWithError(error);
  }

  /** The connection closed: aborts the handler and sends nothing more. */
  onConnectionClose(error: ConnectError): void {
    if (this.#finished) {
      return;
    }
    this.#finished = true;
    this.#queue?.fail(error);
    this.#requestSignal.abort(error);
    this.#context.abort(error);
  }

  async #runUnary(
    spec: Extract<MethodImplSpec, { kind: "unary" }>,
    payload: Uint8Array,
  ): Promise<void> {
    const input = decodeInput(spec.method.input, payload);
    const output = await invokeUnaryImplementation(
      spec,
      this.#context,
      input,
      this.#connection.interceptors,
    );
    this.#finishWithResponse(toBinary(spec.method.output, output));
  }

  async #runStream(payload: Uint8Array): Promise<void> {
    const { method, kind } = this.#spec;
    const input =
      kind === "server_streaming"
        ? createAsyncIterable([decodeInput(method.input, payload)])
        : this.#inputMessages(method.input, this.#queue!);
    const outputs = transformInvokeImplementation(
      this.#spec,
      this.#context,
      this.#connection.interceptors,
    )(input);

    const { writer, limits } = this.#connection;
    let response: Uint8Array | undefined;
    for await (const output of outputs) {
      if (this.#finished) {
        return;
      }
      const parts = encodeMessageParts(
        method.output,
        output as MessageShape<DescMessage>,
      );
      if (kind === "client_streaming") {
        response = concatParts(parts);
        continue;
      }
      checkMessageSize(
        "response message",
        partsLength(parts),
        limits.maxMessageBytes,
      );
      await writer.whenWritable();
      if (this.#finished) {
        return;
      }
      writer.writeParts(
        this.streamId,
        MessageType.Data,
        0,
        parts,
        takeWrittenCallback(output),
      );
    }

    if (response) {
      this.#finishWithResponse(response);
    } else {
      this.#finish(() =>
        writer.write(this.streamId, MessageType.Data, closeFlags),
      );
    }
  }

  async *#inputMessages<I extends DescMessage>(
    schema: I,
    queue: ReceiveQueue<Uint8Array>,
  ): AsyncGenerator<MessageShape<I>> {
    try {
      for (;;) {
        const result = await queue.next();
        if (result.done) {
          return;
        }
        yield decodeInput(schema, result.value);
      }
    } finally {
      // A handler that stops reading early gets no more messages; later
      // Data frames are dropped instead of filling the buffer.
      queue.discard();
      this.#connection.gate.release(this);
    }
  }

  #finishWithResponse(payload: Uint8Array): void {
    const response = toBinary(
      ResponseSchema,
      create(ResponseSchema, { payload }),
    );
    try {
      checkMessageSize(
        "response",
        response.length,
        this.#connection.limits.maxMessageBytes,
      );
    } catch (error) {
      this.#finishWithError(error);
      return;
    }
    this.#finish(() =>
      this.#connection.writer.write(
        this.streamId,
        MessageType.Response,
        0,
        response,
      ),
    );
  }

  #finishWithError(reason: unknown): void {
    if (this.#finished) {
      return;
    }
    const response = encodeStatusResponse(reason);
    this.#finish(
      () =>
        this.#connection.writer.write(
          this.streamId,
          MessageType.Response,
          0,
          response,
        ),
      reason,
    );
  }

  /**
   * Writes the call's final frame once, stops tracking the call, and
   * aborts the handler's signal, with `reason` on failure.
   */
  #finish(writeFinalFrame: () => void, reason?: unknown): void {
    if (this.#finished) {
      return;
    }
    this.#finished = true;
    writeFinalFrame();
    this.#connection.callFinished(this);
    this.#connection.gate.release(this);
    if (reason !== undefined) {
      this.#queue?.fail(reason);
      this.#requestSignal.abort(reason);
    } else {
      this.#queue?.discard();
    }
    this.#context.abort(reason);
  }
}

function decodeInput<I extends DescMessage>(
  schema: I,
  data: Uint8Array,
): MessageShape<I> {
  try {
    return fromBinary(schema, data);
  } catch (error) {
    throw decodeError("request message", error, Code.InvalidArgument);
  }
}

/**
 * Converts `timeout_nano` to whole ms, rounded up. Zero means no deadline.
 * A deadline further away than a Node.js timer can wait (about 24.8 days)
 * also means none, because such a timer would fire at once.
 */
function timeoutMsOf(timeoutNano: bigint): number | undefined {
  if (timeoutNano <= 0n) {
    return undefined;
  }
  return timerMs(Number((timeoutNano + 999_999n) / 1_000_000n));
}
