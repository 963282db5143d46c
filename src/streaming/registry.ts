/**
 * The server side of containerd's Streaming service: each Stream call is
 * registered under (namespace, id) before its acknowledgement is sent, so a
 * Transfer request that arrives after the acknowledgement always finds it.
 * A transfer claims a stream once; the entry is removed when the call ends.
 */
import { debuglog } from "node:util";
import { create } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { type Any, packAny, unpackAny } from "../any/index.js";
import { Code, TransferError } from "../errors/index.js";
import {
  StreamInitSchema,
  type Streaming,
} from "../gen/containerd/services/streaming/v1/streaming_pb.js";
import {
  type HandlerContext,
  namespaceOf,
  type ServiceImpl,
} from "../transport/index.js";
import { integerOption, timerOption } from "../util/options.js";
import { ServerStream } from "./server-stream.js";
import type { Stream } from "./stream.js";

const debug = debuglog("containerd-transfer:streaming");

export interface StreamRegistryOptions {
  /**
   * How long a new call may take to send StreamInit, 1 to 2147483647 ms.
   * Default 10 000 ms.
   */
  initTimeoutMs?: number;
  /**
   * How long a registered stream may wait for a transfer to claim it before
   * it is aborted, 1 to 2147483647 ms. Default 60 000 ms.
   */
  unclaimedTimeoutMs?: number;
  /**
   * Maximum number of registered streams, 1 to 1048576. Default 1024.
   *
   * NOTE: nothing reads an unclaimed stream, so over ttrpc each one may
   * hold up to the transport's per-call buffer (by default 16 MiB plus one
   * message) until `unclaimedTimeoutMs` passes.
   */
  maxStreams?: number;
}

interface Entry {
  stream: ServerStream;
  claimed: boolean;
  timer?: NodeJS.Timeout;
}

export class StreamRegistry {
  readonly #entries = new Map<string, Entry>();
  readonly #initTimeoutMs: number;
  readonly #unclaimedTimeoutMs: number;
  readonly #maxStreams: number;

  constructor(options: StreamRegistryOptions = {}) {
    this.#initTimeoutMs = timerOption(
      "initTimeoutMs",
      options.initTimeoutMs,
      10_000,
    );
    this.#unclaimedTimeoutMs = timerOption(
      "unclaimedTimeoutMs",
      options.unclaimedTimeoutMs,
      60_000,
    );
    this.#maxStreams = integerOption(
      "maxStreams",
      options.maxStreams,
      1024,
      1,
      2 ** 20,
    );
  }

  /** Number of registered streams. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Hands the stream registered under (namespace, id) to a transfer. An
   * unknown id is NotFound at once; a stream already claimed by another
   * transfer is FailedPrecondition.
   */
  claim(namespace: string, id: string): Stream {
    const entry = this.#entries.get(key(namespace, id));
    if (!entry) {
      throw new TransferError(
        `stream "${id}" not found in namespace "${namespace}": ` +
          "create it with the Streaming service before the transfer",
        Code.NotFound,
      );
    }
    if (entry.claimed) {
      throw new TransferError(
        `stream "${id}" is already used by another transfer`,
        Code.FailedPrecondition,
      );
    }
    entry.claimed = true;
    clearTimeout(entry.timer);
    return entry.stream;
  }

  /** Aborts every registered stream. */
  close(reason?: unknown): void {
    for (const entry of this.#entries.values()) {
      entry.stream.abort(
        reason ??
          new TransferError("server is shutting down", Code.Unavailable),
      );
    }
  }

  /** The Streaming service backed by this registry. */
  service(): ServiceImpl<typeof Streaming> {
    return { stream: (requests, context) => this.#serve(requests, context) };
  }

  async *#serve(
    requests: AsyncIterable<Any>,
    context: HandlerContext,
  ): AsyncGenerator<Any> {
    const iterator = requests[Symbol.asyncIterator]();
    const id = await this.#readInit(iterator, context.signal);
    const namespace = namespaceOf(context.requestHeader) ?? "";
    const stream = new ServerStream(id, iterator, context.signal);
    const entryKey = key(namespace, id);
    this.#register(entryKey, namespace, stream);
    debug("stream %s registered in namespace %j", id, namespace);

    try {
      yield packAny(EmptySchema, create(EmptySchema));
      yield* stream.outgoing;
    } finally {
      const entry = this.#entries.get(entryKey);
      if (entry?.stream === stream) {
        clearTimeout(entry.timer);
        this.#entries.delete(entryKey);
      }
      stream.abort(new TransferError(`stream "${id}" ended`, Code.Canceled));
      debug("stream %s removed", id);
    }
  }

  async #readInit(
    iterator: AsyncIterator<Any>,
    signal: AbortSignal,
  ): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new TransferError(
              `no StreamInit within ${this.#initTimeoutMs} ms`,
              Code.DeadlineExceeded,
            ),
          ),
        this.#initTimeoutMs,
      );
    });
    try {
      signal.throwIfAborted();
      const first = await Promise.race([iterator.next(), timeout]);
      if (first.done) {
        throw new TransferError(
          "stream ended before StreamInit",
          Code.InvalidArgument,
        );
      }
      const { id } = unpackAny(first.value, StreamInitSchema);
      if (id === "") {
        throw new TransferError(
          "StreamInit has an empty id",
          Code.InvalidArgument,
        );
      }
      return id;
    } finally {
      clearTimeout(timer);
    }
  }

  #register(entryKey: string, namespace: string, stream: ServerStream): void {
    if (this.#entries.has(entryKey)) {
      throw new TransferError(
        `stream "${stream.id}" already exists in namespace "${namespace}"`,
        Code.AlreadyExists,
      );
    }
    if (this.#entries.size >= this.#maxStreams) {
      throw new TransferError(
        `too many streams: the limit is ${this.#maxStreams}`,
        Code.ResourceExhausted,
      );
    }
    const entry: Entry = { stream, claimed: false };
    entry.timer = setTimeout(() => {
      stream.abort(
        new TransferError(
          `stream "${stream.id}" was not used by a transfer within ` +
            `${this.#unclaimedTimeoutMs} ms`,
          Code.DeadlineExceeded,
        ),
      );
    }, this.#unclaimedTimeoutMs);
    entry.timer.unref();
    this.#entries.set(entryKey, entry);
  }
}

function key(namespace: string, id: string): string {
  return `${namespace}\u0000${id}`;
}
