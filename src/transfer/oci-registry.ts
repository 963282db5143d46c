/**
 * containerd's OCIRegistry transfer end: an image reference in a registry,
 * the resolver settings containerd uses to reach it and, when a credentials
 * callback is given, a stream on which containerd requests credentials
 * from this process (oci-registry-auth.ts describes that protocol).
 */
import { Writable } from "node:stream";
import { type Any, packAny } from "../any/index.js";
import { Code, TransferError } from "../errors/index.js";
import {
  HTTPDebug,
  OCIRegistrySchema,
} from "../gen/containerd/types/transfer/registry_pb.js";
import {
  receiveBytes,
  type Stream,
  type StreamCreator,
} from "../streaming/index.js";
import {
  answerAuthRequests,
  type CredentialsCallback,
  type RegistryWarning,
} from "./oci-registry-auth.js";
import type {
  MarshalOptions,
  StreamingTransferObject,
} from "./transfer-object.js";

export type {
  CredentialsCallback,
  RegistryAuthRequest,
  RegistryCredentials,
  RegistryWarning,
  RegistryWarningCode,
} from "./oci-registry-auth.js";

/** HTTP dump levels of containerd 2.1 and later. */
export type HttpDebugLevel = "debug" | "trace" | "both";

export interface OCIRegistryOptions {
  /** HTTP headers containerd adds to every registry request. */
  headers?: Record<string, string>;
  /**
   * Returns credentials for containerd's requests. Without it no auth
   * stream is opened and containerd uses no credentials.
   */
  credentials?: CredentialsCallback;
  /**
   * How long one credentials call may take before containerd gets a
   * response with no credentials. Default 60 000 ms.
   */
  credentialsTimeoutMs?: number;
  /** Receives problems that were handled without failing the transfer. */
  onWarning?: (warning: RegistryWarning) => void;
  /**
   * `http` or `https`; containerd 2.0 and later only (1.7 always uses
   * HTTPS). Unset, containerd 2.x uses HTTPS, and for a loopback host
   * (`localhost`, 127.0.0.0/8, `::1`) on a port other than 443 it tries
   * HTTPS without certificate verification first and then plain HTTP.
   * Setting `http` makes it use plain HTTP only.
   */
  defaultScheme?: "http" | "https";
  /**
   * Directory of `hosts.toml` files on the daemon's machine; containerd
   * 2.0 and later only, 1.7 ignores it.
   */
  hostDir?: string;
  /** Dump registry HTTP traffic; containerd 2.1 and later only. */
  httpDebug?: HttpDebugLevel;
  /**
   * Receives the HTTP dumps of `httpDebug` through a stream the daemon
   * writes to; containerd 2.1 and later only.
   * NOTE: never run against containerd 2.1. When the daemon does not end
   * the stream, reading stops `httpDebugGraceMs` after the Transfer call.
   */
  onHttpDebugLog?: (chunk: Uint8Array) => void;
  /**
   * How long to keep reading HTTP dumps after the Transfer call returned.
   * Default 1 000 ms.
   */
  httpDebugGraceMs?: number;
}

const httpDebugLevels: Record<HttpDebugLevel, HTTPDebug> = {
  debug: HTTPDebug.DEBUG,
  trace: HTTPDebug.TRACE,
  both: HTTPDebug.BOTH,
};

/**
 * An image in a registry: the source of a pull, the destination of a push.
 * One instance serves one transfer.
 */
export class OCIRegistry implements StreamingTransferObject {
  readonly reference: string;
  readonly #options: OCIRegistryOptions;
  readonly #controller = new AbortController();
  readonly #streams: Stream[] = [];
  #marshalled = false;
  #done?: Promise<void>;
  #settled = false;
  #returned!: () => void;
  readonly #whenReturned = new Promise<void>((resolve) => {
    this.#returned = resolve;
  });

  constructor(reference: string, options: OCIRegistryOptions = {}) {
    if (!reference) {
      throw new TransferError(
        "missing image reference: name the image as HOST/NAME[:TAG]",
        Code.InvalidArgument,
      );
    }
    this.reference = reference;
    this.#options = options;
  }

  async marshalAny(
    creator: StreamCreator,
    options: MarshalOptions = {},
  ): Promise<Any> {
    if (this.#marshalled) {
      throw new TransferError(
        "this OCIRegistry was already used in a transfer: create a new one " +
          "for each transfer",
        Code.FailedPrecondition,
      );
    }
    this.#marshalled = true;
    const signal = options.signal
      ? AbortSignal.any([options.signal, this.#controller.signal])
      : this.#controller.signal;
    const pumps: Promise<void>[] = [];
    let authStream = "";
    let logsStream = "";

    try {
      if (this.#options.credentials) {
        const stream = await creator.create("creds", { signal });
        this.#streams.push(stream);
        authStream = stream.id;
        const responder = answerAuthRequests(
          stream,
          {
            credentials: this.#options.credentials,
            timeoutMs: this.#options.credentialsTimeoutMs,
            onWarning: (warning) => this.#warn(warning),
          },
          signal,
        );
        // Handled here too: it may fail while the next stream is opened.
        responder.catch(() => {});
        pumps.push(responder);
      }
      if (this.#options.onHttpDebugLog) {
        const stream = await creator.create("http-debug-logs", { signal });
        this.#streams.push(stream);
        logsStream = stream.id;
        pumps.push(this.#readHttpDebugLog(stream, signal));
      }
    } catch (error) {
      this.abort(error);
      throw error;
    }

    // The daemon never ends the auth stream, but once the Transfer call
    // returned it sends no more requests.
    this.#done = Promise.race([
      Promise.all(pumps).then(() => {}),
      this.#whenReturned,
    ]).finally(() => {
      this.#settled = true;
    });
    this.#done.catch(() => {});

    return packAny(OCIRegistrySchema, {
      reference: this.reference,
      resolver: {
        authStream,
        headers: this.#options.headers ?? {},
        hostDir: this.#options.hostDir ?? "",
        defaultScheme: this.#options.defaultScheme ?? "",
        httpDebug: this.#options.httpDebug
          ? httpDebugLevels[this.#options.httpDebug]
          : HTTPDebug.DISABLED,
        logsStream,
      },
    });
  }

  /**
   * Resolves once the Transfer call returned, or once the daemon ended
   * every stream of this end. Rejects when a response could not be sent
   * before that, because the daemon then waits for it forever.
   */
  wait(): Promise<void> {
    return (
      this.#done ??
      Promise.reject(
        new TransferError(
          "OCIRegistry.wait() called before marshalAny()",
          Code.FailedPrecondition,
        ),
      )
    );
  }

  transferReturned(): void {
    this.#returned();
  }

  abort(reason?: unknown): void {
    const error =
      reason === undefined
        ? new TransferError("transfer aborted", Code.Canceled)
        : TransferError.from(reason, Code.Canceled);
    if (!this.#settled) {
      this.#controller.abort(error);
    }
    for (const stream of this.#streams) {
      stream.abort(error);
    }
  }

  async #readHttpDebugLog(stream: Stream, signal: AbortSignal) {
    const onChunk = this.#options.onHttpDebugLog!;
    const stop = new AbortController();
    const graceMs = this.#options.httpDebugGraceMs ?? 1000;
    let timer: NodeJS.Timeout | undefined;
    void this.#whenReturned.then(() => {
      timer = setTimeout(() => stop.abort(), graceMs);
    });
    const sink = new Writable({
      write(chunk: Uint8Array, _encoding, callback) {
        onChunk(chunk);
        callback();
      },
    });

    try {
      await receiveBytes(stream, sink, {
        signal: AbortSignal.any([signal, stop.signal]),
      });
    } catch (error) {
      if (!stop.signal.aborted && !signal.aborted) {
        this.#warn({
          code: "debug-log-failed",
          message: `HTTP debug log stream failed: ${describe(error)}`,
          cause: error,
        });
      }
    } finally {
      clearTimeout(timer);
    }
  }

  #warn(warning: RegistryWarning) {
    try {
      this.#options.onWarning?.(warning);
    } catch {
      // A failing warning handler must not stop the responses.
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
