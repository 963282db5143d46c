/**
 * Decoded messages of one HTTP/2 stream that wait for their reader. The
 * stream stops reading while 16 messages or 4 MiB of them wait, so a slow
 * reader leaves the rest to HTTP/2 flow control instead of memory.
 */

/** Messages decoded ahead of the reader before the stream pauses. */
const readAheadMessages = 16;
/**
 * Encoded bytes of the messages decoded ahead of the reader before the
 * stream pauses. Without it, 16 messages of up to the 16 MiB limit could
 * wait: a peer that ignored the byte-stream window pushed a client past
 * 300 MB that way.
 */
const readAheadBytes = 4 * 1024 * 1024;

/** The part of a Node.js readable stream that the queue pauses. */
interface Pausable {
  pause(): unknown;
  resume(): unknown;
  isPaused(): boolean;
}

export class MessageQueue<T> implements AsyncIterable<T> {
  readonly #stream: Pausable;
  readonly #messages: { message: T; bytes: number }[] = [];
  #queuedBytes = 0;
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

  /**
   * Adds a message of `bytes` encoded bytes, pausing the stream once 16
   * messages or 4 MiB wait.
   */
  push(message: T, bytes: number): void {
    this.#messages.push({ message, bytes });
    this.#queuedBytes += bytes;
    if (this.#full()) {
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
      const next = this.#messages.shift();
      if (next !== undefined) {
        this.#queuedBytes -= next.bytes;
        if (this.#stream.isPaused() && !this.#full()) {
          this.#stream.resume();
        }
        yield next.message;
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

  #full(): boolean {
    return (
      this.#messages.length >= readAheadMessages ||
      this.#queuedBytes >= readAheadBytes
    );
  }

  #wake(): void {
    const reader = this.#reader;
    this.#reader = undefined;
    reader?.();
  }
}
