/**
 * The receive buffer of one stream: messages that arrived and wait for the
 * consumer, read through `next()`. Pushing never waits. It reports when the
 * queue has reached its limit, and the connection then stops reading its
 * socket until the consumer takes a message (see `ReadGate`).
 */

interface Waiter<T> {
  resolve: (result: IteratorResult<T>) => void;
  reject: (error: unknown) => void;
}

export class ReceiveQueue<T extends Uint8Array> {
  /** Number of messages at which {@link push} reports the queue full. */
  readonly limit: number;
  /** Queued bytes at which {@link push} reports the queue full. */
  readonly limitBytes: number;
  readonly #items: T[] = [];
  #bytes = 0;
  readonly #waiters: Waiter<T>[] = [];
  readonly #onTake: () => void;
  #ended = false;
  // The error that follows the queued messages, or ends the queue at once.
  #error: unknown;
  #hasError = false;
  #discarding = false;

  /** `onTake` runs whenever the consumer takes a queued message. */
  constructor(limits: { messages: number; bytes: number }, onTake: () => void) {
    this.limit = limits.messages;
    this.limitBytes = limits.bytes;
    this.#onTake = onTake;
  }

  get length(): number {
    return this.#items.length;
  }

  /** Bytes of the queued messages. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether the queue contains `limit` messages or `limitBytes` bytes. */
  get full(): boolean {
    return this.#items.length >= this.limit || this.#bytes >= this.limitBytes;
  }

  /** Whether end(), fail() or discard() was called. */
  get closed(): boolean {
    return this.#ended || this.#discarding;
  }

  /**
   * Queues a message, or hands it to a waiting consumer. Returns whether the
   * queue is full afterwards. A closed queue drops the message.
   */
  push(value: T): boolean {
    if (this.closed) {
      return false;
    }
    const waiter = this.#waiters.shift();
    if (waiter) {
      waiter.resolve({ value, done: false });
      return false;
    }
    this.#items.push(value);
    this.#bytes += value.byteLength;
    return this.full;
  }

  /**
   * Ends the queue after the messages already queued. With `error`, the
   * consumer gets that error after them instead of the end. Has no effect
   * on a closed queue.
   */
  end(error?: unknown): void {
    if (this.closed) {
      return;
    }
    this.#ended = true;
    if (error !== undefined) {
      this.#error = error;
      this.#hasError = true;
    }
    if (this.#items.length === 0) {
      this.#settleWaiters();
    }
  }

  /**
   * Fails the queue at once: the queued messages are dropped and the
   * consumer's next read rejects with `error`. Has no effect on a closed
   * queue, whose messages all arrived.
   */
  fail(error: unknown): void {
    if (this.closed) {
      return;
    }
    this.#ended = true;
    this.#error = error;
    this.#hasError = true;
    this.#items.length = 0;
    this.#bytes = 0;
    this.#settleWaiters();
  }

  /**
   * Drops the queued messages and every later one, for a consumer that
   * stopped reading. Its reads return the end.
   */
  discard(): void {
    this.#discarding = true;
    this.#items.length = 0;
    this.#bytes = 0;
    this.#hasError = false;
    this.#settleWaiters();
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#items.length > 0) {
      const value = this.#items.shift()!;
      this.#bytes -= value.byteLength;
      this.#onTake();
      return Promise.resolve({ value, done: false });
    }
    if (this.#ended || this.#discarding) {
      return this.#hasError
        ? Promise.reject(this.#error)
        : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
    });
  }

  #settleWaiters(): void {
    for (const waiter of this.#waiters.splice(0)) {
      if (this.#hasError) {
        waiter.reject(this.#error);
      } else {
        waiter.resolve({ value: undefined, done: true });
      }
    }
  }
}
