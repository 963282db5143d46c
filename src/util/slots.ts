/**
 * A counting semaphore: at most `count` holders at a time, the others
 * waiting in arrival order.
 */
export class Slots {
  #free: number;
  readonly #waiting = new Set<() => void>();

  constructor(count: number) {
    this.#free = count;
  }

  /**
   * Resolves with a function that gives the slot back once one is free
   * and taken. Rejects with the signal's reason, taking no slot, when
   * `signal` aborts first. The returned function does nothing when called
   * again.
   */
  async take(signal: AbortSignal): Promise<() => void> {
    signal.throwIfAborted();
    if (this.#free > 0) {
      this.#free--;
      return this.#releaser();
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.#waiting.delete(grant);
        reject(signal.reason);
      };
      const grant = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      this.#waiting.add(grant);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    return this.#releaser();
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) {
        return;
      }
      released = true;
      const next = this.#waiting.values().next();
      if (next.done) {
        this.#free++;
        return;
      }
      // The slot passes straight to the first waiter.
      this.#waiting.delete(next.value);
      next.value();
    };
  }
}
