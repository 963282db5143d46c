/**
 * Copy out: a container path to a local path, or to a tar stream.
 */
import { readdir, stat } from "node:fs/promises";
import { dirname, join, posix, resolve } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileKind } from "../archive/file-kind.js";
import {
  cleanContainerPath,
  extractArchive,
  HandoffSink,
  pathComponents,
} from "../archive/index.js";
import { abortReason, Code, TransferError } from "../errors/index.js";
import { type ByteSink, sinkError, watchedError } from "../streaming/index.js";
import type { Client } from "./client.js";
import type { CopyOptions, CopySummary } from "./copy.js";
import {
  type ContainerLocation,
  checkContainerLocation,
  receiveArchive,
  reportBytes,
  transferError,
} from "./copy-archive.js";
import {
  checkCopiedName,
  checkLocalPath,
  followLocalLinks,
  localError,
  localWarnings,
  lstatOrMissing,
} from "./copy-local.js";
import { rewriteArchive } from "./copy-rewrite.js";
import {
  type CopyPlan,
  checkReplace,
  hasTrailingSlash,
  isContentsPath,
  missingParentError,
  parentNotDirectoryError,
  planCopy,
  type SourceSpec,
} from "./copy-rules.js";
import {
  createStaging,
  moveContentsIntoPlace,
  moveIntoPlace,
  removeStaging,
} from "./copy-stage.js";
import {
  type ContainerFileType,
  type ContainerPathStat,
  lookupContainerPath,
} from "./stat.js";

/** A container source after its symlink, if followed. */
interface ContainerSource {
  spec: SourceSpec;
  /** The container path that is archived. */
  location: ContainerLocation;
  /** Top entry name in its archive; empty for the root. */
  archiveName: string;
  stat: ContainerPathStat;
}

/** Names of the file types that a copy to a local path does not create. */
const specialKinds: Partial<Record<ContainerFileType, string>> = {
  "char-device": "character device",
  "block-device": "block device",
  fifo: "FIFO",
  other: "special file",
};

/** Copies a container path to a local path; see `copyFromContainer`. */
export async function copyContainerToLocal(
  client: Client,
  source: ContainerLocation,
  localPath: string,
  options: CopyOptions,
): Promise<CopySummary> {
  checkContainerLocation(source);
  checkLocalPath(localPath, "destination");
  checkCopiedName(source.path, `${source.containerId}:${source.path}`);
  const from = await inspectContainerSource(client, source, options);
  const kind = specialKinds[from.stat.type];
  if (kind !== undefined) {
    // The extractor skips such entries, which would leave nothing to copy.
    throw new TransferError(
      `cannot copy ${kind} "${from.spec.display}": a copy carries only ` +
        "files, directories and links; '-' as the destination writes its " +
        "tar entry instead",
      Code.FailedPrecondition,
    );
  }
  const plan = await planLocalDestination(from.spec, localPath);
  const shown = (path: string) => path;

  // The staging directory sits where the renames happen, so that they
  // stay on one file system: in the directory that receives the copy.
  const stagingParent = plan.name === undefined ? plan.target : plan.directory;
  const staging = await createStaging(stagingParent, stagingParent);
  try {
    const bytes = await receiveInto(client, from, staging, plan, options);
    const staged =
      from.archiveName === "" ? staging : join(staging, from.archiveName);
    if ((await lstatOrMissing(staged)) === undefined) {
      throw new TransferError(
        `failed to copy "${from.spec.display}": the archive from the ` +
          `server has no entry named "${from.archiveName}"`,
        Code.DataLoss,
      );
    }
    if (from.archiveName !== "") {
      await warnOutsideEntries(staging, from.archiveName, options);
    }
    if (plan.name === undefined || from.archiveName === "") {
      await moveContentsIntoPlace(staged, plan.target, from.spec, shown);
    } else {
      await moveIntoPlace(staged, plan.target, from.spec, shown);
    }
    return { bytes, path: plan.target };
  } finally {
    await removeStaging(staging);
  }
}

/**
 * Reports what the archive put in `staging` beside `archiveName`: entries
 * named outside it, or written through a symlink that led out of it. The
 * staging directory is removed with them, so without the warning they
 * would be lost without a trace.
 */
async function warnOutsideEntries(
  staging: string,
  archiveName: string,
  options: CopyOptions,
): Promise<void> {
  for (const name of await readdir(staging)) {
    if (name !== archiveName) {
      options.onWarning?.(
        "outside-skipped",
        `skipped "/${name}": the archive put it outside "/${archiveName}", ` +
          "the path that was copied",
        `/${name}`,
      );
    }
  }
}

/**
 * Writes the tar archive of a container path to `sink`. A followed
 * symlink is renamed in the archive to the symlink's own name.
 */
export async function copyContainerToTar(
  client: Client,
  source: ContainerLocation,
  sink: ByteSink,
  options: CopyOptions & { endSink?: boolean; reuseChunks?: boolean },
): Promise<CopySummary> {
  const from = await inspectContainerSource(client, source, options);
  const totalBytes = estimateBytes(from.stat);
  const transfer = {
    ...options,
    onBytes: reportBytes(options, () => totalBytes),
    // The caller's sink gets the bytes as they are, unchecked by a parser.
    requireTarEnd: true,
  };
  try {
    // A sink that failed during the lookup fails the copy before the
    // archive transfer starts.
    const early = watchedError(sink);
    if (early !== undefined) {
      throw sinkError(early);
    }
    if (from.spec.contentsOnly || from.archiveName === from.spec.name) {
      const bytes = await receiveArchive(client, from.location, sink, transfer);
      return { bytes, path: from.location.path };
    }

    const renamer = rewriteArchive({
      rename: { from: from.archiveName, to: from.spec.name },
    });
    const writable = "getWriter" in sink ? Writable.fromWeb(sink) : sink;
    // The renamer always ends after the archive, so that the pipeline
    // finishes. `endSink` applies to the caller's sink only.
    // The renamer passes body chunks on as they are, so its write
    // callback does not mean that the sink is done with them.
    const receiving = receiveArchive(client, from.location, renamer, {
      ...transfer,
      endSink: true,
      reuseChunks: false,
    });
    receiving.catch((error) => renamer.destroy(error));
    const [bytes] = await Promise.all([
      receiving,
      pipeline(renamer, writable, { end: options.endSink ?? true }),
    ]);
    return { bytes, path: from.location.path };
  } catch (error) {
    throw transferError(error, from.spec.display, "-", options.signal);
  }
}

async function inspectContainerSource(
  client: Client,
  source: ContainerLocation,
  options: CopyOptions,
): Promise<ContainerSource> {
  const shown = `${source.containerId}:${source.path}`;
  const trailingSlash = hasTrailingSlash(source.path);
  const found = await lookupContainerPath(client, source, {
    signal: options.signal,
    followLink: options.followLink || trailingSlash,
  });
  if (found.stat === undefined) {
    throw new TransferError(
      `cannot copy "${shown}": no such file or directory in the container`,
      Code.NotFound,
    );
  }
  const isDirectory = found.stat.type === "directory";
  if (trailingSlash && !isDirectory) {
    throw new TransferError(
      `cannot copy "${shown}": not a directory`,
      Code.FailedPrecondition,
    );
  }

  const archiveName = found.path === "/" ? "" : posix.basename(found.path);
  const requested = posix.basename(`/${cleanContainerPath(source.path)}`);
  return {
    spec: {
      isDirectory,
      name: requested === "/" || requested === "" ? archiveName : requested,
      contentsOnly:
        isDirectory && (isContentsPath(source.path) || archiveName === ""),
      display: shown,
    },
    location: { containerId: source.containerId, path: found.path },
    archiveName,
    stat: found.stat,
  };
}

/**
 * Stats the local destination, following its symlinks, applies the path
 * rules and checks what the copy would replace.
 */
async function planLocalDestination(
  source: SourceSpec,
  localPath: string,
): Promise<CopyPlan> {
  const followed = await followLocalLinks(resolve(localPath), localPath);
  const plan = planCopy(source, {
    path: followed.path,
    trailingSlash: hasTrailingSlash(localPath),
    existing: followed.stats && fileKind(followed.stats),
    display: (path) => path,
  });

  if (followed.stats === undefined) {
    const parent = dirname(followed.path);
    const parentStats = await stat(parent).catch((error) => {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        throw missingParentError(parent);
      }
      throw localError(error, "stat", parent);
    });
    if (!parentStats.isDirectory()) {
      throw parentNotDirectoryError(parent);
    }
  }
  if (plan.checkTarget) {
    const target = await lstatOrMissing(plan.target);
    checkReplace(source, target && fileKind(target), plan.target);
  }
  return plan;
}

/**
 * Receives the archive of the source and extracts it under `staging`.
 * Resolves with the archive bytes once both the transfer and the
 * extraction succeeded. A failure of either stops the other, and the
 * first failure is the one reported.
 */
async function receiveInto(
  client: Client,
  from: ContainerSource,
  staging: string,
  plan: CopyPlan,
  options: CopyOptions,
): Promise<number> {
  const stop = new AbortController();
  const signal = options.signal
    ? AbortSignal.any([options.signal, stop.signal])
    : stop.signal;
  // The extractor is done with a chunk once it requests the next one, so
  // the transport can reuse the chunk's memory.
  const pipe = new HandoffSink();
  const totalBytes = estimateBytes(from.stat);
  let firstFailure: TransferError | undefined;

  // Extraction names paths inside the staging directory, whose top entry
  // lands at the target; warnings name the local path instead.
  const onWarning = localWarnings(options.onWarning, (path) => {
    const names = pathComponents(path);
    const rest = from.archiveName === "" ? names : names.slice(1);
    return join(plan.target, ...rest);
  });
  const extracting = extractArchive(staging, "/", pipe, {
    preserveOwnership: options.preserveOwnership,
    signal,
    onWarning,
  });
  extracting.catch((error) => {
    const failure = options.signal?.aborted
      ? abortReason(options.signal)
      : TransferError.from(error);
    firstFailure ??= new TransferError(
      `cannot write the copy of "${from.spec.display}" to ` +
        `"${plan.target}": ${failure.rawMessage}${ownerHint(failure, options)}`,
      failure.code,
      failure,
    );
    stop.abort(error);
    pipe.destroy(error);
  });
  const receiving = receiveArchive(client, from.location, pipe, {
    ...options,
    reuseChunks: true,
    signal,
    onBytes: reportBytes(options, () => totalBytes),
  });
  receiving.catch((error) => {
    firstFailure ??= transferError(
      error,
      from.spec.display,
      plan.target,
      options.signal,
    );
    pipe.destroy(error);
  });

  const [received] = await Promise.allSettled([receiving, extracting]);
  if (firstFailure !== undefined) {
    throw firstFailure;
  }
  return received.status === "fulfilled" ? received.value : 0;
}

/**
 * Explains a refused change of owner while keeping the archive's owners:
 * only root may give a file to another user.
 */
function ownerHint(failure: TransferError, options: CopyOptions): string {
  if (
    !options.preserveOwnership ||
    failure.code !== Code.PermissionDenied ||
    !failure.rawMessage.includes("change the owner of") ||
    process.getuid?.() === 0
  ) {
    return "";
  }
  return (
    "; keeping the container's owners (preserveOwnership, the CLI's -a) " +
    "needs root here: copy as root, or without it"
  );
}

/** Estimates the archive size of a file from its stat. */
function estimateBytes(stat: ContainerPathStat): number | undefined {
  if (stat.type !== "file") {
    return undefined;
  }
  const paxBytes = stat.size > 0o77777777777 ? 2 * 512 : 0;
  return 512 + paxBytes + Math.ceil(stat.size / 512) * 512 + 1024;
}
