import type { Any } from "../any/index.js";
import { Code, orAbort, TransferError } from "../errors/index.js";
import { Pushable } from "../util/pushable.js";
import type { Stream } from "./stream.js";

/**
 * The server end of a Streaming.Stream call. Messages sent here are yielded
 * by the call's handler; ending the sending side ends the handler, which
 * ends the call for the client.
 */
export class ServerStream implements Stream {
  readonly id: string;
  readonly outgoing = new Pushable<Any>(1);
  readonly #incoming: AsyncIterator<Any>;
  readonly #callSignal: AbortSignal;
  readonly #onCallAbort = () =>
    this.abort(
      new TransferError(`client ended stream "${this.id}"`, Code.Canceled),
    );
  #abortReason?: TransferError;
  #ended = false;
  // Aborts with the stream, so that a receive waiting on the call settles
  // at once.
  readonly #aborted = new AbortController();

  constructor(
    id: string,
    incoming: AsyncIterator<Any>,
    callSignal: AbortSignal,
  ) {
    this.id = id;
    this.#incoming = incoming;
    this.#callSignal = callSignal;
    callSignal.addEventListener("abort", this.#onCallAbort, { once: true });
  }

  send(message: Any): Promise<void> {
    if (this.#abortReason) {
      return Promise.reject(this.#abortReason);
    }
    return this.outgoing.push(message);
  }

  async receive(): Promise<Any | undefined> {
    if (this.#abortReason) {
      throw this.#abortReason;
    }
    if (this.#ended) {
      return undefined;
    }
    try {
      const result = await orAbort(this.#incoming.next(), this.#aborted.signal);
      if (result.done) {
        this.#ended = true;
        return undefined;
      }
      return result.value;
    } catch (error) {
      throw this.#abortReason ?? TransferError.from(error, Code.Unavailable);
    }
  }

  async closeSend(): Promise<void> {
    this.outgoing.end();
  }

  abort(reason?: unknown): void {
    if (this.#abortReason) {
      return;
    }
    this.#abortReason = TransferError.from(
      reason ?? new TransferError(`stream "${this.id}" aborted`, Code.Canceled),
      Code.Canceled,
    );
    this.#callSignal.removeEventListener("abort", this.#onCallAbort);
    this.outgoing.fail(this.#abortReason);
    this.#aborted.abort(this.#abortReason);
  }
}
