/**
 * Adapters that let the byte sender read from Node and web streams and the
 * byte receiver write to them with backpressure.
 */
import type { Writable } from "node:stream";
import type { ReadableStream, WritableStream } from "node:stream/web";
import {
  Code,
  codeOfNodeError,
  errnoOf,
  TransferError,
} from "../errors/index.js";

/**
 * Bytes to send: a Node Readable, a web ReadableStream or any iterable.
 * The sender writes pieces larger than 64 KiB to the ttrpc socket without
 * copying them, so a source must not change the bytes of a chunk after
 * yielding it. A source
 * that yields fresh buffers, or the same unchanged buffer, meets that.
 */
export type ByteSource =
  | AsyncIterable<Uint8Array>
  | Iterable<Uint8Array>
  | ReadableStream<Uint8Array>;

/** Destination of received bytes: a Node Writable or a web WritableStream. */
export type ByteSink = Writable | WritableStream<Uint8Array>;

const reuseCallbacks = new WeakMap<Uint8Array, () => void>();

/** The first 'error' of each Node stream that {@link watchStream} watches. */
const firstErrors = new WeakMap<object, { error?: unknown }>();

/** A Node stream, or anything else that emits 'error' events. */
interface ErrorEmitter {
  on(event: "error", listener: (error: unknown) => void): unknown;
  errored?: unknown;
}

function isErrorEmitter(value: unknown): value is ErrorEmitter {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { on?: unknown }).on === "function"
  );
}

/**
 * Listens for 'error' on `stream`, when it is a Node stream, and records
 * the first one for {@link watchedError}. Web streams and iterables emit
 * no events and are left alone.
 *
 * An 'error' event without a listener ends the process, and a file stream
 * emits one for a path that it cannot open, before the transfer reads or
 * writes the stream. So each entry point that takes a source or a sink
 * calls this at once. The listener stays for the life of the stream, and
 * a second call for the same stream adds nothing.
 */
export function watchStream(stream: ByteSource | ByteSink): void {
  if (!isErrorEmitter(stream) || firstErrors.has(stream)) {
    return;
  }
  const first: { error?: unknown } = {};
  firstErrors.set(stream, first);
  stream.on("error", (error) => {
    first.error ??= error;
  });
}

/**
 * Returns the first error of a stream that {@link watchStream} watches,
 * else the error that destroyed a Node stream before it was watched, else
 * undefined.
 */
export function watchedError(stream: ByteSource | ByteSink): unknown {
  if (!isErrorEmitter(stream)) {
    return undefined;
  }
  return firstErrors.get(stream)?.error ?? stream.errored ?? undefined;
}

/**
 * Returns the error for a sink that failed with `failure`: Aborted for a
 * reader that closed its end (EPIPE), the code of a Node.js system error
 * such as NotFound for a file that cannot be created, else Internal.
 */
export function sinkError(failure: unknown): TransferError {
  if (errnoOf(failure) === "EPIPE") {
    return new TransferError(
      "failed to write received bytes: the output was closed by its " +
        "reader (EPIPE)",
      Code.Aborted,
      failure,
    );
  }
  return new TransferError(
    `failed to write received bytes: ${describe(failure)}`,
    codeOfNodeError(failure) ?? Code.Internal,
    failure,
  );
}

/**
 * Registers `reuse` for `chunk`, a chunk that a source is about to yield
 * to {@link sendBytes}. The sender calls it once no transport references
 * any byte of the chunk: every piece was copied, or written to the socket or
 * failed to be. It is not called when the send fails before the whole
 * chunk was handed over, nor for a chunk that reaches the sender as a
 * different object, such as a chunk that a Node Readable joined with
 * others.
 */
export function reuseAfterSend(chunk: Uint8Array, reuse: () => void): void {
  reuseCallbacks.set(chunk, reuse);
}

/** Returns, once, the callback that {@link reuseAfterSend} registered. */
export function takeReuseCallback(chunk: Uint8Array): (() => void) | undefined {
  const reuse = reuseCallbacks.get(chunk);
  reuseCallbacks.delete(chunk);
  return reuse;
}

/** Returns an iterator over a source that checks every chunk is bytes. */
export async function* readSource(
  source: ByteSource,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of source as AsyncIterable<unknown>) {
    if (!(chunk instanceof Uint8Array)) {
      throw new TransferError(
        `invalid source chunk of type ${typeof chunk}: a byte source must ` +
          "yield Uint8Array or Buffer chunks (is the stream in object or " +
          "string mode?)",
        Code.InvalidArgument,
      );
    }
    if (chunk.length > 0) {
      yield chunk;
    }
  }
}

/** Writes to a sink one chunk at a time. */
export interface SinkWriter {
  /**
   * Resolves when the sink has taken the chunk without backpressure.
   * `onProcessed` runs once a Node Writable has processed the chunk, which
   * its write callback reports, and never for a web WritableStream.
   */
  write(chunk: Uint8Array, onProcessed?: () => void): Promise<void>;
  /** Ends the sink and resolves once it has flushed everything. */
  end(): Promise<void>;
  /** Destroys the sink with an error. */
  abort(error: unknown): void;
}

export function writeSink(
  sink: ByteSink,
  options: { end?: boolean } = {},
): SinkWriter {
  if ("getWriter" in sink) {
    return webWriter(sink, options.end ?? true);
  }
  return nodeWriter(sink, options.end ?? true);
}

function nodeWriter(sink: Writable, end: boolean): SinkWriter {
  let failure: unknown = watchedError(sink);
  const onError = (error: unknown) => {
    failure ??= error;
  };
  sink.on("error", onError);
  const failed = () => sinkError(failure);

  return {
    async write(chunk, onProcessed) {
      if (failure !== undefined) {
        throw failed();
      }
      if (sink.destroyed || sink.writableEnded) {
        throw new TransferError(
          "failed to write received bytes: the sink is closed",
          Code.FailedPrecondition,
        );
      }
      const callback =
        onProcessed &&
        ((error?: Error | null) => {
          if (!error) {
            onProcessed();
          }
        });
      if (sink.write(chunk, callback)) {
        return;
      }
      try {
        await drained(sink);
      } catch (error) {
        failure ??= error;
        throw failed();
      }
    },
    async end() {
      if (failure !== undefined) {
        throw failed();
      }
      if (!end) {
        sink.off("error", onError);
        return;
      }
      await new Promise<void>((resolve, reject) => {
        sink.end((error?: Error | null) => (error ? reject(error) : resolve()));
      }).catch((error) => {
        failure ??= error;
        throw failed();
      });
      sink.off("error", onError);
    },
    abort(error) {
      sink.destroy(error instanceof Error ? error : new Error(String(error)));
    },
  };
}

function webWriter(sink: WritableStream<Uint8Array>, end: boolean): SinkWriter {
  const writer = sink.getWriter();
  const wrap = (error: unknown) =>
    new TransferError(
      `failed to write received bytes: ${describe(error)}`,
      Code.Internal,
      error,
    );
  return {
    async write(chunk) {
      try {
        await writer.ready;
        // The write promise settles when the sink has processed the chunk;
        // waiting for `ready` before the next one is the backpressure.
        writer.write(chunk).catch(() => {});
      } catch (error) {
        throw wrap(error);
      }
    },
    async end() {
      try {
        if (end) {
          await writer.close();
        } else {
          await writer.ready;
          writer.releaseLock();
        }
      } catch (error) {
        throw wrap(error);
      }
    },
    abort(error) {
      writer.abort(error).catch(() => {});
    },
  };
}

/**
 * Resolves on the sink's next 'drain' and rejects if it closes first. A sink
 * whose buffer is smaller than a chunk waits here after every write, so
 * this uses plain listeners: `once` with an AbortSignal builds an AbortError
 * each time it is cleaned up.
 */
function drained(sink: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      sink.off("close", onClose);
      resolve();
    };
    const onClose = () => {
      sink.off("drain", onDrain);
      reject(new Error("the sink closed before draining"));
    };
    sink.once("drain", onDrain);
    sink.once("close", onClose);
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
