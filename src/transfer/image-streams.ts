import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Any, packAny } from "../any/index.js";
import { Code, TransferError } from "../errors/index.js";
import type { PlatformSchema } from "../gen/containerd/types/platform_pb.js";
import {
  ImageExportStreamSchema,
  ImageImportStreamSchema,
} from "../gen/containerd/types/transfer/importexport_pb.js";
import {
  type ByteSink,
  type ByteSource,
  checkReceiveOptions,
  checkSendOptions,
  receiveBytes,
  type Stream,
  sendBytes,
  watchStream,
} from "../streaming/index.js";
import { timerOption } from "../util/options.js";
import type { SendingOptions } from "./read-stream.js";
import { StreamEnd } from "./stream-end.js";
import { TarTrailerDetector } from "./tar-trailer.js";
import type { ReceivingOptions } from "./write-stream.js";

export interface ImageImportOptions extends SendingOptions {
  /**
   * Empty lets containerd detect and decompress gzip or zstd; any other
   * value makes it read an uncompressed tar.
   */
  mediaType?: string;
  /** Compress uncompressed layers while importing. */
  forceCompress?: boolean;
}

/** An image archive (OCI or Docker format) sent to containerd to import. */
export class ImageImportStream extends StreamEnd {
  protected readonly purpose = "import";
  readonly #source: ByteSource;
  readonly #options: ImageImportOptions;

  constructor(source: ByteSource, options: ImageImportOptions = {}) {
    super();
    watchStream(source);
    checkSendOptions(options);
    this.#source = source;
    this.#options = options;
  }

  protected describe(streamId: string): Any {
    return packAny(ImageImportStreamSchema, {
      stream: streamId,
      mediaType: this.#options.mediaType ?? "",
      forceCompress: this.#options.forceCompress ?? false,
    });
  }

  protected async pump(stream: Stream, signal: AbortSignal): Promise<void> {
    await sendBytes(stream, this.#source, {
      onBytes: this.#options.onBytes,
      maxChunkBytes: this.#options.maxChunkBytes,
      signal,
    });
  }
}

/** Default of {@link ImageExportOptions.idleTimeoutMs}: 30 s. */
const defaultIdleTimeoutMs = 30_000;

export interface ImageExportOptions extends ReceivingOptions {
  /** Platforms to export; empty means the daemon's default platform. */
  platforms?: MessageInitShape<typeof PlatformSchema>[];
  allPlatforms?: boolean;
  /** Leave out the Docker `manifest.json`. */
  skipCompatibilityManifest?: boolean;
  skipNonDistributable?: boolean;
  /**
   * How long to wait for more bytes after the Transfer call returned,
   * before an archive without its end-of-archive marker is reported as
   * truncated, 1 to 2147483647 ms. Default 30 000 ms.
   */
  idleTimeoutMs?: number;
}

/**
 * An image archive received from containerd's export. containerd never
 * ends the export stream, so the archive is complete when its tar
 * end-of-archive marker has arrived; a stream that stalls before the marker
 * after the Transfer call returned is reported as truncated.
 */
export class ImageExportStream extends StreamEnd {
  protected readonly purpose = "export";
  readonly #sink: ByteSink;
  readonly #options: ImageExportOptions;
  readonly #detector = new TarTrailerDetector();
  #received = 0;
  #idle?: NodeJS.Timeout;
  #stall = new AbortController();

  constructor(sink: ByteSink, options: ImageExportOptions = {}) {
    super();
    watchStream(sink);
    checkReceiveOptions(options);
    timerOption("idleTimeoutMs", options.idleTimeoutMs, defaultIdleTimeoutMs);
    this.#sink = sink;
    this.#options = options;
  }

  protected describe(streamId: string): Any {
    return packAny(ImageExportStreamSchema, {
      stream: streamId,
      platforms: this.#options.platforms ?? [],
      allPlatforms: this.#options.allPlatforms ?? false,
      skipCompatibilityManifest: this.#options.skipCompatibilityManifest,
      skipNonDistributable: this.#options.skipNonDistributable,
    });
  }

  protected async pump(stream: Stream, signal: AbortSignal): Promise<void> {
    try {
      await receiveBytes(stream, this.#sink, {
        windowBytes: this.#options.windowBytes,
        endSink: this.#options.endSink,
        reuseChunks: this.#options.reuseChunks,
        signal: AbortSignal.any([signal, this.#stall.signal]),
        onBytes: (total) => {
          this.#received = total;
          this.#idle?.refresh();
          this.#options.onBytes?.(total);
        },
        isComplete: (chunk) => this.#detector.push(chunk),
      });
    } finally {
      clearTimeout(this.#idle);
    }
    if (!this.#detector.complete) {
      throw new TransferError(
        `image archive truncated: the stream ended after ${this.#received} ` +
          "bytes without the tar end-of-archive marker",
        Code.DataLoss,
      );
    }
  }

  override transferReturned(): void {
    if (this.settled) {
      return;
    }
    const timeoutMs = this.#options.idleTimeoutMs ?? defaultIdleTimeoutMs;
    this.#idle = setTimeout(() => {
      this.#stall.abort(
        new TransferError(
          `image archive truncated: no bytes for ${timeoutMs} ms after ` +
            `${this.#received} bytes and no tar end-of-archive marker`,
          Code.DataLoss,
        ),
      );
    }, timeoutMs);
  }
}
