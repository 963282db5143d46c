/**
 * The two raw container copies of the Transfer service, without any path
 * rules: a tar archive extracted under a container directory, and the
 * tar archive of a container path.
 */

import type { ArchiveWarningCode, WarningHandler } from "../archive/warning.js";
import { abortReason, Code, TransferError } from "../errors/index.js";
import {
  type ByteSink,
  type ByteSource,
  largeWindowBytes,
} from "../streaming/index.js";
import {
  ContainerPath,
  ProgressCallbackError,
  progressWarning,
  ReadStream,
  WriteStream,
} from "../transfer/index.js";
import type { Client, TransferOptions } from "./client.js";

/** A path inside a container. */
export interface ContainerLocation {
  containerId: string;
  path: string;
}

/**
 * Throws InvalidArgument unless `location` has a container id and a path
 * that are strings, the id not empty, and neither contains a NUL byte,
 * which no file name and no request header can carry. An empty path
 * names the container's root.
 */
export function checkContainerLocation(location: ContainerLocation): void {
  const { containerId, path } = location ?? {};
  if (typeof containerId !== "string" || containerId === "") {
    throw new TransferError(
      `invalid container id ${JSON.stringify(containerId)}: give the ` +
        "container's id as a non-empty string",
      Code.InvalidArgument,
    );
  }
  if (typeof path !== "string") {
    throw new TransferError(
      `invalid container path ${JSON.stringify(path)}: give the path as ` +
        "a string, such as /etc/hosts",
      Code.InvalidArgument,
    );
  }
  for (const [what, value] of [
    ["container id", containerId],
    ["container path", path],
  ]) {
    if (value.includes("\0")) {
      throw new TransferError(
        `invalid ${what} ${JSON.stringify(value)}: it contains a NUL byte`,
        Code.InvalidArgument,
      );
    }
  }
}

export interface ArchiveTransferOptions
  extends Omit<TransferOptions, "onProgress"> {
  /** Called with the total archive bytes moved so far. */
  onBytes?: (totalBytes: number) => void;
  /**
   * Receives the warnings that the server reports through Progress
   * events, such as entries it skipped, with the container path.
   */
  onWarning?: WarningHandler;
}

/**
 * Sends the tar archive read from `source` to the container, which
 * extracts it under the directory `directory.path` and creates that
 * directory if it is missing. Resolves with the archive bytes sent.
 */
export async function sendArchive(
  client: Client,
  source: ByteSource,
  directory: ContainerLocation,
  options: ArchiveTransferOptions & { preserveOwnership?: boolean } = {},
): Promise<number> {
  let bytes = 0;
  const stream = new ReadStream(source, undefined, {
    onBytes: (total) => {
      bytes = total;
      options.onBytes?.(total);
    },
  });
  const destination = new ContainerPath({
    containerId: directory.containerId,
    path: directory.path,
    preserveOwnership: options.preserveOwnership,
  });
  await client.transfer(stream, destination, transferOptions(options));
  return bytes;
}

/**
 * Writes the tar archive of the container path to `sink`: the path under
 * its last name, walked unless `noWalk` is set. Resolves with the archive
 * bytes received. With `requireTarEnd`, rejects with DataLoss when the
 * stream ends before the archive's end-of-archive marker.
 */
export async function receiveArchive(
  client: Client,
  source: ContainerLocation,
  sink: ByteSink,
  options: ArchiveTransferOptions & {
    noWalk?: boolean;
    endSink?: boolean;
    reuseChunks?: boolean;
    requireTarEnd?: boolean;
    /** Credit granted to the server; default {@link largeWindowBytes}. */
    windowBytes?: number;
  } = {},
): Promise<number> {
  let bytes = 0;
  const stream = new WriteStream(sink, undefined, {
    windowBytes: options.windowBytes ?? largeWindowBytes,
    endSink: options.endSink,
    reuseChunks: options.reuseChunks,
    requireTarEnd: options.requireTarEnd,
    onBytes: (total) => {
      bytes = total;
      options.onBytes?.(total);
    },
  });
  const container = new ContainerPath({
    containerId: source.containerId,
    path: source.path,
    noWalk: options.noWalk,
  });
  await client.transfer(container, stream, transferOptions(options));
  return bytes;
}

/**
 * Picks the options of `Client.transfer`. Callers pass copy options,
 * whose `onProgress` takes copy progress rather than server events.
 */
function transferOptions(options: ArchiveTransferOptions): TransferOptions {
  const { onWarning } = options;
  return {
    signal: options.signal,
    progressGraceMs: options.progressGraceMs,
    // Asking for progress events costs one more stream, so only a caller
    // that takes warnings gets one.
    onProgress: onWarning
      ? (event) => {
          const warning = progressWarning(event);
          if (warning === undefined) {
            return;
          }
          try {
            onWarning(
              warning.code as ArchiveWarningCode,
              warning.message,
              warning.path,
            );
          } catch (error) {
            throw new ProgressCallbackError(error, "onWarning");
          }
        }
      : undefined,
  };
}

/**
 * Returns an `onBytes` callback that feeds both the caller's `onBytes`
 * and its `onProgress` with the expected total that `totalBytes` returns
 * at that moment.
 */
export function reportBytes(
  options: {
    onBytes?: (totalBytes: number) => void;
    onProgress?: (progress: {
      bytes: number;
      totalBytes: number | undefined;
    }) => void;
  },
  totalBytes: () => number | undefined,
): (bytes: number) => void {
  return (bytes) => {
    options.onBytes?.(bytes);
    options.onProgress?.({ bytes, totalBytes: totalBytes() });
  };
}

/**
 * Converts an error of a copy's transfer to one that names both ends,
 * keeping the code. The streaming layer's `stream ID failed:` prefix is
 * dropped, because the stream id means nothing to the user. When
 * `signal` was aborted, the error is Canceled with the signal's reason,
 * because `Client.transfer` rejects with Internal for an abort whose
 * reason is a plain Error.
 */
export function transferError(
  error: unknown,
  source: string,
  destination: string,
  signal?: AbortSignal,
): TransferError {
  const failure = signal?.aborted
    ? abortReason(signal)
    : TransferError.from(error);
  const reason = failure.rawMessage.replace(/^stream \S+ failed: /, "");
  return new TransferError(
    `cannot copy "${source}" to "${destination}": ${reason}`,
    failure.code,
    failure,
  );
}
