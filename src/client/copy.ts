/**
 * Copies between the local file system and a container path with the
 * path rules of `docker cp` (see copy-rules.ts). The Transfer service
 * only extracts an archive under a container directory and archives a
 * path under its last name. So the client stats both ends first, then
 * shapes the archive: it renames the top entry for a copy to a new name
 * and picks the directory that receives it.
 */
import type { WarningHandler } from "../archive/warning.js";
import {
  type ByteSink,
  type ByteSource,
  watchStream,
} from "../streaming/index.js";
import type { Client } from "./client.js";
import type {
  ArchiveTransferOptions,
  ContainerLocation,
} from "./copy-archive.js";
import { withGuardedCallbacks } from "./copy-callbacks.js";
import { copyLocalToContainer, copyTarToContainer } from "./copy-in.js";
import { copyContainerToLocal, copyContainerToTar } from "./copy-out.js";
import { explainUnsupported } from "./unsupported.js";

export type { ContainerLocation } from "./copy-archive.js";

export interface CopyOptions extends ArchiveTransferOptions {
  /**
   * Keeps the numeric uid and gid of copied files, and their setuid and
   * setgid bits (`cp -a`). Otherwise files copied in belong to the
   * server's user, files copied out to the user of this process, and those
   * bits are dropped. The sticky bit is kept either way.
   */
  preserveOwnership?: boolean;
  /** Follows a symlink given as the source, and copies what it names. */
  followLink?: boolean;
  /**
   * Receives archive bytes moved and, when known, the expected total. A
   * callback that throws, or returns a promise that rejects before the
   * copy settles, fails the copy.
   */
  onProgress?: (progress: CopyProgress) => void;
  /**
   * Receives warnings such as skipped sockets, with the path concerned,
   * and fails the copy as `onProgress` does.
   */
  onWarning?: WarningHandler;
}

/** Progress of a copy, in bytes of the tar archive. */
export interface CopyProgress {
  /** Archive bytes moved so far. */
  bytes: number;
  /**
   * Estimated archive size. A copy in adds up the local source's sizes
   * in a walk beside the copy, so the events before it is done carry
   * undefined. A copy out of a file takes it from the file's stat, and
   * any other copy has none.
   */
  totalBytes: number | undefined;
}

export interface CopySummary {
  /** Archive bytes moved. */
  bytes: number;
  /** The path the copy created, replaced or merged into. */
  path: string;
}

/**
 * Copies the local file or directory `localPath` to the container path
 * `destination` with the `docker cp` path rules. Rejects with NotFound
 * when the source or the destination's parent is missing, and with
 * FailedPrecondition when a file would replace a directory or the
 * reverse.
 */
export function copyIntoContainer(
  client: Client,
  localPath: string,
  destination: ContainerLocation,
  options: CopyOptions = {},
): Promise<CopySummary> {
  return explainUnsupported(
    client,
    withGuardedCallbacks(options, (guarded) =>
      copyLocalToContainer(client, localPath, destination, guarded),
    ),
  );
}

/**
 * Copies the container path `source` to the local path `localPath` with
 * the `docker cp` path rules. The archive is extracted into a staging
 * directory beside the destination and moved into place only after the
 * transfer succeeded, so a failed or canceled copy leaves the
 * destination as it was. Nothing is written outside the destination.
 */
export function copyFromContainer(
  client: Client,
  source: ContainerLocation,
  localPath: string,
  options: CopyOptions = {},
): Promise<CopySummary> {
  return explainUnsupported(
    client,
    withGuardedCallbacks(options, (guarded) =>
      copyContainerToLocal(client, source, localPath, guarded),
    ),
  );
}

/**
 * Extracts the tar archive read from `source` into the container
 * directory `destination`, which must exist (`docker cp - CONTAINER:DIR`).
 * An 'error' of a Node `source`, even one emitted before the copy reads
 * it, rejects the copy with that error.
 */
export function copyArchiveIntoContainer(
  client: Client,
  source: ByteSource,
  destination: ContainerLocation,
  options: CopyOptions = {},
): Promise<CopySummary> {
  watchStream(source);
  return explainUnsupported(
    client,
    withGuardedCallbacks(options, (guarded) =>
      copyTarToContainer(client, source, destination, guarded),
    ),
  );
}

/**
 * Writes the tar archive of the container path `source` to `sink`
 * (`docker cp CONTAINER:PATH -`). With `followLink`, a symlink source is
 * archived as what it names, under the symlink's name.
 *
 * `reuseChunks` declares that `sink` is done with a chunk once it has
 * called the chunk's write callback, as a file or a pipe is and a
 * PassThrough is not, so that received memory can be reused. An 'error'
 * of a Node `sink`, even one emitted before the copy writes to it,
 * rejects the copy with that error.
 */
export function copyArchiveFromContainer(
  client: Client,
  source: ContainerLocation,
  sink: ByteSink,
  options: CopyOptions & { endSink?: boolean; reuseChunks?: boolean } = {},
): Promise<CopySummary> {
  watchStream(sink);
  return explainUnsupported(
    client,
    withGuardedCallbacks(options, (guarded) =>
      copyContainerToTar(client, source, sink, guarded),
    ),
  );
}
