/**
 * A queue that one side pushes to and the other consumes as an async
 * iterable. `push` resolves only when the consumer has taken the value, so a
 * producer that awaits it runs at the consumer's pace and the queue never
 * contains more than `limit` values.
 */
import { Code, TransferError } from "../errors/index.js";

interface Entry<T> {
  value: T;
  taken: () => void;
  dropped: (error: unknown) => void;
}

export class Pushable<T> implements AsyncIterableIterator<T> {
  readonly #entries: Entry<T>[] = [];
  readonly #limit: number;
  // Reads that arrived before values, served in order.
  readonly #waiters: {
    resolve: (result: IteratorResult<T>) => void;
    reject: (error: unknown) => void;
  }[] = [];
  #ended = false;
  #error: unknown;
  #failed = false;

  /** `limit` is the number of values that may wait; more is an error. */
  constructor(limit = 64) {
    this.#limit = limit;
  }

  /** Number of values waiting to be consumed. */
  get length(): number {
    return this.#entries.length;
  }

  /** Whether end() or fail() was called. */
  get closed(): boolean {
    return this.#ended || this.#failed;
  }

  /**
   * Queues a value. Resolves when the consumer takes it; rejects if the queue
   * ends or fails first, or is full.
   */
  push(value: T): Promise<void> {
    if (this.closed) {
      return Promise.reject(
        this.#failed
          ? this.#error
          : new TransferError(
              "push after end of queue",
              Code.FailedPrecondition,
            ),
      );
    }
    return new Promise<void>((taken, dropped) => {
      const waiter = this.#waiters.shift();
      if (waiter) {
        waiter.resolve({ value, done: false });
        taken();
        return;
      }
      if (this.#entries.length >= this.#limit) {
        dropped(
          new TransferError(
            `queue full: more than ${this.#limit} messages are waiting to be read`,
            Code.ResourceExhausted,
          ),
        );
        return;
      }
      this.#entries.push({ value, taken, dropped });
    });
  }

  /** Ends the iteration after the values already queued. Idempotent. */
  end(): void {
    if (this.closed) {
      return;
    }
    this.#ended = true;
    if (this.#entries.length === 0) {
      this.#settleWaiters();
    }
  }

  /**
   * Fails the iteration: the consumer's next read rejects with `error`, and
   * every value still queued is dropped. Has no effect after end() or an
   * earlier fail().
   */
  fail(error: unknown): void {
    // After end() the values already queued are still delivered in full.
    if (this.closed) {
      return;
    }
    this.#failed = true;
    this.#error = error;
    for (const entry of this.#entries.splice(0)) {
      entry.dropped(error);
    }
    this.#settleWaiters();
  }

  next(): Promise<IteratorResult<T>> {
    const entry = this.#entries.shift();
    if (entry) {
      entry.taken();
      return Promise.resolve({ value: entry.value, done: false });
    }
    if (this.#failed) {
      return Promise.reject(this.#error);
    }
    if (this.#ended) {
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
    });
  }

  /** Called when a for-await loop exits early: ends the queue. */
  return(): Promise<IteratorResult<T>> {
    this.end();
    for (const entry of this.#entries.splice(0)) {
      entry.dropped(new TransferError("queue consumer stopped", Code.Canceled));
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  /** Fails the queue with `error`, as a consumer that gives up does. */
  throw(error?: unknown): Promise<IteratorResult<T>> {
    this.fail(error);
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  #settleWaiters(): void {
    for (const waiter of this.#waiters.splice(0)) {
      if (this.#failed) {
        waiter.reject(this.#error);
      } else {
        waiter.resolve({ value: undefined, done: true });
      }
    }
  }
}
