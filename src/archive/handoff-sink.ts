/**
 * A Writable whose chunks one async iterator reads, one at a time. The
 * write callback of a chunk runs only after the reader has requested the
 * next chunk, and one event loop turn later (setImmediate). So once the
 * callback runs, the reader is done with the chunk.
 *
 * The turn matters for a reader that hands parts of a chunk to other
 * code, as `extractArchive` hands body bytes to its entry writer: that
 * code takes them in promise callbacks, which all run before the turn
 * ends. The byte receiver's `reuseChunks` relies on this.
 */
import { Writable } from "node:stream";

interface Waiter {
  resolve: (result: IteratorResult<Buffer>) => void;
  reject: (error: unknown) => void;
}

export class HandoffSink
  extends Writable
  implements AsyncIterable<Buffer>, AsyncIterator<Buffer>
{
  #chunk: Buffer | undefined;
  #chunkCallback: ((error?: Error | null) => void) | undefined;
  // Callback of the chunk the reader has now, run at its next request.
  #readCallback: ((error?: Error | null) => void) | undefined;
  #waiter: Waiter | undefined;
  #finished = false;
  #failure: unknown;

  constructor() {
    // With no buffer, every write waits for the reader, as a pipe does.
    super({ highWaterMark: 0 });
    // A destroy error reaches the reader through next() and the writer
    // through its write callbacks, so it need not crash the process when
    // nothing else listens, as after the reader released the sink.
    this.on("error", () => {});
  }

  override _write(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (error?: Error | null) => void,
  ): void {
    this.#chunk = chunk;
    this.#chunkCallback = callback;
    this.#wake();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#finished = true;
    this.#wake();
    callback();
  }

  override _destroy(
    error: Error | null,
    callback: (error?: Error | null) => void,
  ): void {
    this.#finished = true;
    this.#failure = error ?? undefined;
    // The callbacks of chunks still out are dropped: their memory is left
    // to the garbage collector rather than reused while a reader may
    // still hold it.
    this.#chunk = undefined;
    this.#chunkCallback = undefined;
    this.#readCallback = undefined;
    this.#wake();
    callback(error);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<Buffer>> {
    const done = this.#readCallback;
    this.#readCallback = undefined;
    if (done !== undefined) {
      setImmediate(done);
    }
    if (this.#waiter !== undefined) {
      return Promise.reject(
        new Error("HandoffSink has one reader: wait for next() to settle"),
      );
    }
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
      this.#wake();
    });
  }

  async return(): Promise<IteratorResult<Buffer>> {
    this.destroy();
    return { done: true, value: undefined };
  }

  #wake(): void {
    const waiter = this.#waiter;
    if (waiter === undefined) {
      return;
    }
    if (this.#chunk !== undefined) {
      this.#waiter = undefined;
      const chunk = this.#chunk;
      this.#readCallback = this.#chunkCallback;
      this.#chunk = undefined;
      this.#chunkCallback = undefined;
      waiter.resolve({ done: false, value: chunk });
    } else if (this.#failure !== undefined) {
      this.#waiter = undefined;
      waiter.reject(this.#failure);
    } else if (this.#finished) {
      this.#waiter = undefined;
      waiter.resolve({ done: true, value: undefined });
    }
  }
}
