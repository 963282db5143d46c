/**
 * A counting semaphore: holders take one or more of `count` units, and
 * the others wait in arrival order.
 */
export class Slots {
  readonly #count: number;
  #free: number;
  readonly #waiting: Array<{ units: number; grant: () => void }> = [];

  constructor(count: number) {
    this.#count = count;
    this.#free = count;
  }

  /**
   * Resolves with a function that gives the units back once `units` (at
   * most `count`) are free and taken. Rejects with the signal's reason,
   * taking nothing, when `signal` aborts first. The returned function
   * does nothing when called again.
   */
  async take(signal: AbortSignal, units = 1): Promise<() => void> {
    signal.throwIfAborted();
    const requested = Math.min(units, this.#count);
    if (this.#waiting.length === 0 && this.#free >= requested) {
      this.#free -= requested;
      return this.#releaser(requested);
    }
    await new Promise<void>((resolve, reject) => {
      const waiter = {
        units: requested,
        grant: () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.#waiting.splice(this.#waiting.indexOf(waiter), 1);
        reject(signal.reason);
        // A larger request at the head may have held back smaller ones.
        this.#grantWaiting();
      };
      this.#waiting.push(waiter);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    return this.#releaser(requested);
  }

  #releaser(units: number): () => void {
    let released = false;
    return () => {
      if (released) {
        return;
      }
      released = true;
      this.#free += units;
      this.#grantWaiting();
    };
  }

  /** Grants waiters in arrival order while the first one's units are free. */
  #grantWaiting(): void {
    for (
      let first = this.#waiting[0];
      first !== undefined && this.#free >= first.units;
      first = this.#waiting[0]
    ) {
      this.#waiting.shift();
      this.#free -= first.units;
      first.grant();
    }
  }
}
