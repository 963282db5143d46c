/**
 * Copy in: a local path, or a tar stream, to a container path.
 */
import type { Stats } from "node:fs";
import { lstat, realpath } from "node:fs/promises";
import { basename, dirname, join, posix, resolve } from "node:path";
import { fileKind } from "../archive/file-kind.js";
import { packChunks } from "../archive/index.js";
import { Code, TransferError } from "../errors/index.js";
import { type ByteSource, reuseAfterSend } from "../streaming/index.js";
import type { Client } from "./client.js";
import type { CopyOptions, CopySummary } from "./copy.js";
import {
  type ContainerLocation,
  checkContainerLocation,
  reportBytes,
  sendArchive,
  transferError,
} from "./copy-archive.js";
import {
  checkCopiedName,
  checkLocalPath,
  estimateArchiveBytes,
  localError,
  localPackError,
  localWarnings,
} from "./copy-local.js";
import {
  type CopyPlan,
  checkReplace,
  type ExistingKind,
  hasTrailingSlash,
  isContentsPath,
  missingParentError,
  parentNotDirectoryError,
  planCopy,
  type SourceSpec,
} from "./copy-rules.js";
import { type ContainerPathStat, lookupContainerPath } from "./stat.js";

/** A local source after its symlink, if followed. */
interface LocalSource {
  spec: SourceSpec;
  /** Real path of what is packed. */
  packed: string;
  stats: Stats;
}

/** Copies a local path into a container; see `copyIntoContainer`. */
export async function copyLocalToContainer(
  client: Client,
  localPath: string,
  destination: ContainerLocation,
  options: CopyOptions,
): Promise<CopySummary> {
  checkLocalPath(localPath, "source");
  checkContainerLocation(destination);
  checkCopiedName(localPath, localPath);
  checkCopiedName(
    destination.path,
    `${destination.containerId}:${destination.path}`,
  );
  const source = await inspectLocalSource(localPath, options.followLink);
  const plan = await planContainerDestination(
    client,
    source.spec,
    destination,
    options.signal,
  );
  // The estimate runs beside the copy, and progress carries no total
  // until it is ready.
  let totalBytes: number | undefined;
  const estimating = new AbortController();
  if (options.onProgress) {
    const topName = plan.name ?? "";
    estimateArchiveBytes(
      source.packed,
      source.stats,
      topName,
      estimating.signal,
    ).then(
      (bytes) => {
        totalBytes = bytes;
      },
      () => {},
    );
  }

  const packing = packSource(source, plan, options);
  try {
    const bytes = await sendArchive(
      client,
      packing.archive,
      { containerId: destination.containerId, path: plan.directory },
      {
        ...options,
        onBytes: reportBytes(options, () => totalBytes),
      },
    );
    return { bytes, path: plan.target };
  } catch (error) {
    // A local read failure already names the local path.
    throw (
      packing.failure() ??
      transferError(
        error,
        localPath,
        `${destination.containerId}:${plan.target}`,
        options.signal,
      )
    );
  } finally {
    estimating.abort();
    // Closes the files and directories of a walk that the sender left.
    await packing.archive.return(undefined).catch(() => {});
  }
}

/** Extracts a tar stream into an existing container directory. */
export async function copyTarToContainer(
  client: Client,
  source: ByteSource,
  destination: ContainerLocation,
  options: CopyOptions,
): Promise<CopySummary> {
  const found = await lookupContainerPath(client, destination, {
    signal: options.signal,
    followLink: true,
  });
  const shown = `${destination.containerId}:${found.path}`;
  if (found.stat === undefined) {
    throw new TransferError(
      `destination directory "${shown}" does not exist`,
      Code.NotFound,
    );
  }
  if (found.stat.type !== "directory") {
    throw new TransferError(
      `destination "${shown}" is not a directory: a tar stream is ` +
        "extracted into a directory",
      Code.FailedPrecondition,
    );
  }

  const bytes = await sendArchive(
    client,
    source,
    { containerId: destination.containerId, path: found.path },
    { ...options, onBytes: reportBytes(options, () => undefined) },
  ).catch((error) => {
    throw transferError(error, "-", shown, options.signal);
  });
  return { bytes, path: found.path };
}

async function inspectLocalSource(
  localPath: string,
  followLink: boolean | undefined,
): Promise<LocalSource> {
  const absolute = resolve(localPath);
  const trailingSlash = hasTrailingSlash(localPath);
  let packed = absolute;
  let stats = await lstat(absolute).catch((error) => {
    throw localError(error, "copy", localPath);
  });

  if (stats.isSymbolicLink() && (followLink || trailingSlash)) {
    packed = await realpath(absolute).catch((error) => {
      throw localError(error, "follow the symbolic link", localPath);
    });
    stats = await lstat(packed).catch((error) => {
      throw localError(error, "copy", localPath);
    });
  }
  if (trailingSlash && !stats.isDirectory()) {
    throw new TransferError(
      `cannot copy "${localPath}": not a directory`,
      Code.FailedPrecondition,
    );
  }
  const kind = fileKind(stats);
  if (kind !== "directory" && kind !== "other") {
    throw new TransferError(
      `cannot copy ${kind} "${localPath}": a copy carries only files, ` +
        "directories and links",
      Code.FailedPrecondition,
    );
  }

  const isDirectory = stats.isDirectory();
  return {
    spec: {
      isDirectory,
      name: basename(absolute),
      contentsOnly:
        isDirectory && (isContentsPath(localPath) || packed === "/"),
      display: localPath,
    },
    packed,
    stats,
  };
}

/**
 * Stats the container destination, following its symlinks, applies the
 * path rules and checks what the copy would replace.
 */
async function planContainerDestination(
  client: Client,
  source: SourceSpec,
  destination: ContainerLocation,
  signal: AbortSignal | undefined,
): Promise<CopyPlan> {
  const { containerId } = destination;
  const display = (path: string) => `${containerId}:${path}`;
  const found = await lookupContainerPath(client, destination, {
    signal,
    followLink: true,
  });
  const plan = planCopy(source, {
    path: found.path,
    trailingSlash: hasTrailingSlash(destination.path),
    existing: kindOf(found.stat),
    display,
  });

  if (found.stat === undefined) {
    const parent = await lookupContainerPath(
      client,
      { containerId, path: posix.dirname(found.path) },
      { signal, followLink: true },
    );
    if (parent.stat === undefined) {
      throw missingParentError(display(parent.path));
    }
    if (parent.stat.type !== "directory") {
      throw parentNotDirectoryError(display(parent.path));
    }
  }
  if (plan.checkTarget) {
    const target = await lookupContainerPath(
      client,
      { containerId, path: plan.target },
      { signal },
    );
    checkReplace(source, kindOf(target.stat), display(plan.target));
  }
  return plan;
}

/**
 * Packs the source for the plan: its content alone when it merges into
 * an existing directory, otherwise the source under the plan's name.
 * Devices and FIFOs are dropped with a warning, here rather than by the
 * server, so that the warning reaches the caller.
 *
 * The sender reads the packer's chunks as they are yielded, without a
 * Node Readable between them that would join small chunks into new
 * buffers, so the packer gets its buffers back once they are sent.
 */
function packSource(
  source: LocalSource,
  plan: CopyPlan,
  options: CopyOptions,
): {
  archive: AsyncGenerator<Buffer>;
  failure: () => TransferError | undefined;
} {
  const isRoot = source.packed === "/";
  const merging = plan.name === undefined;
  // Archive names start at the packed directory for a merge or the root,
  // otherwise at its parent, and warnings name the local path.
  const packRoot = merging || isRoot ? source.packed : dirname(source.packed);
  const packOptions = {
    signal: options.signal,
    onWarning: localWarnings(options.onWarning, (path) => join(packRoot, path)),
    reuseChunk: reuseAfterSend,
    topName: plan.name,
    skipSpecialFiles: true,
  };
  const chunks =
    merging || isRoot
      ? packChunks(source.packed, "/", packOptions)
      : packChunks(packRoot, basename(source.packed), packOptions);

  // The sender's error may wrap the packer's; this one names local paths.
  let failure: TransferError | undefined;
  async function* archive(): AsyncGenerator<Buffer> {
    try {
      yield* chunks;
    } catch (error) {
      failure = localPackError(error, packRoot);
      throw failure;
    }
  }
  return { archive: archive(), failure: () => failure };
}

function kindOf(stat: ContainerPathStat | undefined): ExistingKind | undefined {
  switch (stat?.type) {
    case undefined:
      return undefined;
    case "directory":
      return "directory";
    case "char-device":
      return "character device";
    case "block-device":
      return "block device";
    case "fifo":
      return "FIFO";
    default:
      return "other";
  }
}
