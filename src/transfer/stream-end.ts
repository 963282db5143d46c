/**
 * Shared pump management of the streaming transfer ends: opening the stream
 * during marshal, running one pump, and the wait/abort contract.
 */
import type { Any } from "../any/index.js";
import { Code, TransferError } from "../errors/index.js";
import type { Stream, StreamCreator } from "../streaming/index.js";
import type {
  MarshalOptions,
  StreamingTransferObject,
} from "./transfer-object.js";

export abstract class StreamEnd implements StreamingTransferObject {
  #stream?: Stream;
  /** Set when marshalAny starts, before its first wait. */
  #claimed = false;
  #pump?: Promise<void>;
  #settled = false;
  #controller = new AbortController();

  /** Prefix of the stream id, such as `data` or `import`. */
  protected abstract readonly purpose: string;

  /** Returns the Any that names the stream. */
  protected abstract describe(streamId: string): Any;

  /** Moves the bytes; rejects when they did not arrive whole. */
  protected abstract pump(stream: Stream, signal: AbortSignal): Promise<void>;

  async marshalAny(
    creator: StreamCreator,
    options: MarshalOptions = {},
  ): Promise<Any> {
    if (this.#claimed) {
      throw new TransferError(
        `this ${this.constructor.name} was already used in a transfer: ` +
          "create a new one for each transfer",
        Code.FailedPrecondition,
      );
    }
    this.#claimed = true;
    const signal = options.signal
      ? AbortSignal.any([options.signal, this.#controller.signal])
      : this.#controller.signal;
    let stream: Stream;
    try {
      if (this.#controller.signal.aborted) {
        throw this.#controller.signal.reason;
      }
      stream = await creator.create(this.purpose, { signal });
    } catch (error) {
      // wait() then reports why no stream was opened.
      this.#pump = Promise.reject(error);
      this.#pump.catch(() => {});
      this.#settled = true;
      throw error;
    }
    this.#stream = stream;
    this.#pump = this.pump(stream, signal).finally(() => {
      this.#settled = true;
    });
    this.#pump.catch(() => {});
    return this.describe(stream.id);
  }

  wait(): Promise<void> {
    if (this.#pump === undefined && this.#controller.signal.aborted) {
      return Promise.reject(this.#controller.signal.reason);
    }
    return (
      this.#pump ??
      Promise.reject(
        new TransferError(
          `${this.constructor.name}.wait() called before marshalAny()`,
          Code.FailedPrecondition,
        ),
      )
    );
  }

  transferReturned(): void {}

  /** Whether the pump has finished, with or without an error. */
  protected get settled(): boolean {
    return this.#settled;
  }

  abort(reason?: unknown): void {
    const error =
      reason === undefined
        ? new TransferError("transfer aborted", Code.Canceled)
        : TransferError.from(reason, Code.Canceled);
    if (!this.#settled) {
      this.#controller.abort(error);
    }
    this.#stream?.abort(error);
  }
}
