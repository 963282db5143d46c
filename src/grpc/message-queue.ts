/**
 * Decoded messages of one HTTP/2 stream that wait for their reader. The
 * stream stops reading while 16 messages wait, so a slow reader leaves the
 * rest to HTTP/2 flow control instead of memory.
 */

/** Messages decoded ahead of the reader before the stream pauses. */
const readAheadMessages = 16;

/** The part of a Node.js readable stream that the queue pauses. */
interface Pausable {
  pause(): unknown;
  resume(): unknown;
  isPaused(): boolean;
}

export class MessageQueue<T> implements AsyncIterable<T> {
  readonly #stream: Pausable;
  readonly #messages: T[] = [];
  #reader: (() => void) | undefined;
  #ended = false;
  // Thrown after the queued messages.
  #failure: unknown;
  // Thrown before the queued messages.
  #abortReason: unknown;

  constructor(stream: Pausable) {
    this.#stream = stream;
  }

  /** Whether end(), fail() or abort() was called. */
  get closed(): boolean {
    return (
      this.#ended ||
      this.#failure !== undefined ||
      this.#abortReason !== undefined
    );
  }

  /** Adds a message, pausing the stream once 16 wait. */
  push(message: T): void {
    this.#messages.push(message);
    if (this.#messages.length >= readAheadMessages) {
      this.#stream.pause();
    }
    this.#wake();
  }

  /** Ends the iteration after the queued messages. */
  end(): void {
    this.#ended = true;
    this.#wake();
  }

  /** Makes the iteration throw `error` after the queued messages. */
  fail(error: unknown): void {
    this.#failure ??= error;
    this.#wake();
  }

  /** Makes the iteration throw `reason` at once, dropping queued messages. */
  abort(reason: unknown): void {
    this.#abortReason ??= reason;
    this.#wake();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      if (this.#abortReason !== undefined) {
        throw this.#abortReason;
      }
      if (this.#messages.length > 0) {
        const message = this.#messages.shift() as T;
        if (
          this.#stream.isPaused() &&
          this.#messages.length < readAheadMessages
        ) {
          this.#stream.resume();
        }
        yield message;
        continue;
      }
      if (this.#failure !== undefined) {
        throw this.#failure;
      }
      if (this.#ended) {
        return;
      }
      await new Promise<void>((resolve) => {
        this.#reader = resolve;
      });
    }
  }

  #wake(): void {
    const reader = this.#reader;
    this.#reader = undefined;
    reader?.();
  }
}
