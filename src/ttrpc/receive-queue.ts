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

export class ReceiveQueue<T> {
  /** Number of messages at which {@link push} reports the queue full. */
  readonly limit: number;
  readonly #items: T[] = [];
  readonly #waiters: Waiter<T>[] = [];
  readonly #onTake: () => void;
  #ended = false;
  // The error that follows the queued messages, or ends the queue at once.
  #error: unknown;
  #hasError = false;
  #discarding = false;

  /** `onTake` runs whenever the consumer takes a queued message. */
  constructor(limit: number, onTake: () => void) {
    this.limit = limit;
    this.#onTake = onTake;
  }

  get length(): number {
    return this.#items.length;
  }

  /** Whether the queue holds `limit` messages or more. */
  get full(): boolean {
    return this.#items.length >= this.limit;
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
    this.#settleWaiters();
  }

  /**
   * Drops the queued messages and every later one, for a consumer that
   * stopped reading. Its reads return the end.
   */
  discard(): void {
    this.#discarding = true;
    this.#items.length = 0;
    this.#hasError = false;
    this.#settleWaiters();
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#items.length > 0) {
      const value = this.#items.shift()!;
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
