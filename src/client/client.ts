/**
 * A connection to a transfer endpoint: containerd's gRPC socket, a shim's
 * ttrpc socket, or `containerd-transfer serve`.
 */
import { createClient } from "@connectrpc/connect";
import { abortReason, Code, TransferError } from "../errors/index.js";
import { Transfer } from "../gen/containerd/services/transfer/v1/transfer_pb.js";
import { createGrpcTransport } from "../grpc/index.js";
import { transferStreamBudget } from "../grpc/limits.js";
import {
  createStreamCreator,
  type Stream,
  type StreamCreator,
} from "../streaming/index.js";
import {
  isStreaming,
  type Progress,
  ProgressCallbackError,
  readProgress,
  type StreamingTransferObject,
  type TransferObject,
} from "../transfer/index.js";
import {
  type ClientTransport,
  leaseHeader,
  namespaceHeader,
  type Protocol,
} from "../transport/index.js";
import { createTtrpcTransport } from "../ttrpc/index.js";
import { timerOption } from "../util/options.js";
import { Slots } from "../util/slots.js";
import {
  checkNamespace,
  checkProtocol,
  defaultAddress,
  defaultNamespace,
  socketPath,
} from "./address.js";

export interface ClientOptions {
  /** Unix socket path or `unix://PATH`. Default containerd's socket. */
  address?: string;
  /** Default "grpc"; shims and nerdbox speak "ttrpc". */
  protocol?: Protocol;
  /** containerd namespace for every call. Default "default". */
  namespace?: string;
  /** A containerd lease id sent with every call (gRPC only). */
  lease?: string;
}

export interface TransferOptions {
  signal?: AbortSignal;
  /**
   * Receives every progress event; all of them are delivered before the
   * transfer settles. A callback that throws, or returns a promise that
   * rejects before the server ends the progress stream, fails the
   * transfer with Unknown. A later rejection is ignored.
   */
  onProgress?: (event: Progress) => void;
  /**
   * How long to wait for the server to end the progress stream after the
   * transfer returned, 0 to 2147483647 ms. Default 10 000 ms.
   */
  progressGraceMs?: number;
}

/** Default of {@link TransferOptions.progressGraceMs}: 10 s. */
const defaultProgressGraceMs = 10_000;

export class Client {
  readonly address: string;
  readonly protocol: Protocol;
  readonly namespace: string;
  readonly transport: ClientTransport;
  readonly streams: StreamCreator;
  readonly #headers: Record<string, string>;
  // gRPC servers limit the streams of a connection; ttrpc has no limit.
  readonly #transferSlots: Slots | undefined;

  constructor(options: ClientOptions = {}) {
    this.address = socketPath(options.address ?? defaultAddress);
    this.protocol = checkProtocol(options.protocol ?? "grpc");
    this.namespace = checkNamespace(options.namespace ?? defaultNamespace);
    this.#headers = { [namespaceHeader(this.protocol)]: this.namespace };
    if (options.lease) {
      this.#headers[leaseHeader] = options.lease;
    }
    this.transport =
      this.protocol === "ttrpc"
        ? createTtrpcTransport({ path: this.address })
        : createGrpcTransport({ path: this.address });
    this.streams = createStreamCreator(this.transport, this.#headers);
    this.#transferSlots =
      this.protocol === "grpc" ? new Slots(transferStreamBudget) : undefined;
  }

  /** Metadata sent with every call. */
  get headers(): Record<string, string> {
    return { ...this.#headers };
  }

  /**
   * Runs one Transfer from `source` to `destination`. Marshals both ends
   * (opening their streams), calls Transfer, then waits for every stream
   * pump. Resolves only when the server reported success and every byte
   * arrived whole; rejects with the first cause otherwise and tears down
   * every stream it opened. Over gRPC, the transfers of one client keep
   * at most 960 HTTP/2 streams open, and one that would pass that waits
   * before it opens any.
   */
  async transfer(
    source: TransferObject,
    destination: TransferObject,
    options: TransferOptions = {},
  ): Promise<void> {
    const progressGraceMs = timerOption(
      "progressGraceMs",
      options.progressGraceMs,
      defaultProgressGraceMs,
      0,
    );
    const controller = new AbortController();
    const signal = options.signal
      ? AbortSignal.any([options.signal, controller.signal])
      : controller.signal;
    const ends = [source, destination].filter(isStreaming);
    // An end already taken by another transfer fails this one before it
    // touches either end, so that the other transfer goes on.
    for (const end of ends) {
      if (usedEnds.has(end)) {
        throw new TransferError(
          `this ${end.constructor.name} was already used in a transfer: ` +
            "create a new one for each transfer",
          Code.FailedPrecondition,
        );
      }
    }
    for (const end of ends) {
      usedEnds.add(end);
    }
    let progressStream: Stream | undefined;
    let releaseSlot: (() => void) | undefined;

    try {
      signal.throwIfAborted();
      // The Transfer call, the progress stream and the byte streams.
      const streams = 1 + (options.onProgress ? 1 : 0) + ends.length;
      releaseSlot = await this.#transferSlots?.take(signal, streams);
      let progressDone: Promise<void> | undefined;
      if (options.onProgress) {
        progressStream = await this.streams.create("progress", { signal });
        progressDone = readProgress(progressStream, options.onProgress);
        progressDone.catch(() => {});
      }
      const sourceAny = await source.marshalAny(this.streams, { signal });
      const destinationAny = await destination.marshalAny(this.streams, {
        signal,
      });

      // A pump that fails while the call runs ends the call: a server
      // waiting for bytes that will never come would otherwise hang.
      const pumpFailed = Promise.all(ends.map((end) => end.wait())).then(
        () => new Promise<never>(() => {}),
      );
      pumpFailed.catch((error) => controller.abort(error));
      const client = createClient(Transfer, this.transport);
      await Promise.race([
        client.transfer(
          {
            source: sourceAny,
            destination: destinationAny,
            options: { progressStream: progressStream?.id ?? "" },
          },
          { signal, headers: this.#headers },
        ),
        pumpFailed,
      ]);

      for (const end of ends) {
        end.transferReturned();
      }
      await Promise.all(ends.map((end) => end.wait()));
      if (progressDone) {
        await settleWithin(progressDone, progressGraceMs);
      }
    } catch (error) {
      // The caller's abort wins, then a pump failure that ended the call.
      let failure: TransferError;
      if (options.signal?.aborted) {
        failure = abortReason(options.signal);
      } else if (controller.signal.aborted) {
        failure = TransferError.from(controller.signal.reason);
      } else {
        failure = TransferError.from(error);
      }
      for (const end of ends) {
        end.abort(failure);
      }
      throw failure;
    } finally {
      for (const end of ends) {
        end.abort();
      }
      progressStream?.abort();
      releaseSlot?.();
    }
  }

  /** Closes the connection; later calls fail. Idempotent. */
  close(): Promise<void> {
    return this.transport.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Streaming ends that a transfer has taken; each serves one transfer. */
const usedEnds = new WeakSet<StreamingTransferObject>();

/** Opens a client; the connection itself is made on the first call. */
export function connect(options: ClientOptions = {}): Client {
  return new Client(options);
}

// Waits for a promise for at most `ms`; a promise that never settles is
// left behind rather than blocking the caller.
async function settleWithin(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  try {
    await Promise.race([promise, timeout]);
  } catch (error) {
    // The caller's own callback failed, not the server or the transport.
    if (error instanceof ProgressCallbackError) {
      const thrown = error.thrown;
      throw new TransferError(
        `the ${error.callback} callback threw: ` +
          (thrown instanceof Error ? thrown.message : String(thrown)),
        Code.Unknown,
        thrown,
      );
    }
    throw new TransferError(
      `progress stream failed: ${TransferError.from(error).rawMessage}`,
      Code.Unavailable,
      error,
    );
  } finally {
    clearTimeout(timer);
  }
}
