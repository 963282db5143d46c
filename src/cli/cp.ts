import type { Command } from "commander";
import {
  type Client,
  type CopyOptions,
  type CopyProgress,
  type CopySummary,
  copyArchiveFromContainer,
  copyArchiveIntoContainer,
  copyFromContainer,
  copyIntoContainer,
} from "../client/index.js";
import { parseCopyEnd } from "./copy-args.js";
import { formatBytes, printable } from "./format.js";
import { createProgress, type ProgressReporter } from "./progress.js";
import { usageError } from "./usage.js";

export interface CopyFlags {
  archive?: boolean;
  followLink?: boolean;
  quiet?: boolean;
}

/**
 * Runs `cp SRC DST` with the path rules of `docker cp`. One side is
 * CONTAINER:PATH, the other a local path or `-` for a tar stream on
 * standard input or output. Progress goes to standard error unless
 * `--quiet` is set or the archive goes to standard output.
 */
export async function runCopy(
  client: Client,
  sourceArgument: string,
  destinationArgument: string,
  flags: CopyFlags,
  signal: AbortSignal,
): Promise<void> {
  const source = parseCopyEnd(sourceArgument);
  const destination = parseCopyEnd(destinationArgument);
  const options: CopyOptions = {
    signal,
    preserveOwnership: flags.archive,
    followLink: flags.followLink,
    onWarning: (code, message) =>
      process.stderr.write(`warning: ${printable(message)} (${code})\n`),
  };

  if (source.kind === "container" && destination.kind !== "container") {
    const location = { containerId: source.containerId, path: source.path };
    if (destination.kind === "stdio") {
      // Standard output is a file, a pipe or a terminal, each done with a
      // chunk once its write callback runs.
      await copyArchiveFromContainer(client, location, process.stdout, {
        ...options,
        endSink: false,
        reuseChunks: true,
      });
      return;
    }
    await withProgress(`copy ${sourceArgument}`, flags, (onProgress) =>
      copyFromContainer(client, location, destination.path, {
        ...options,
        onProgress,
      }),
    );
    return;
  }

  if (destination.kind === "container" && source.kind !== "container") {
    const location = {
      containerId: destination.containerId,
      path: destination.path,
    };
    const inContainer = (path: string) => `${location.containerId}:${path}`;
    if (source.kind === "stdio") {
      await withProgress(
        "copy -",
        flags,
        (onProgress) =>
          copyArchiveIntoContainer(client, process.stdin, location, {
            ...options,
            onProgress,
          }),
        inContainer,
      );
      return;
    }
    await withProgress(
      `copy ${sourceArgument}`,
      flags,
      (onProgress) =>
        copyIntoContainer(client, source.path, location, {
          ...options,
          onProgress,
        }),
      inContainer,
    );
    return;
  }

  throw usageError(
    `invalid copy from "${sourceArgument}" to "${destinationArgument}": ` +
      "exactly one side must be CONTAINER:PATH",
  );
}

export function addCopyOptions(command: Command): Command {
  return command
    .option(
      "-a, --archive",
      "keep the numeric uid and gid of copied files, and their setuid " +
        "and setgid bits (copying out needs root)",
    )
    .option("-L, --follow-link", "follow a symbolic link given as SRC")
    .option("-q, --quiet", "print no progress");
}

/**
 * Runs a copy with a progress reporter that learns the expected total
 * from the copy's first progress event, then prints where the copy went
 * unless `--quiet` is set.
 */
async function withProgress(
  label: string,
  flags: CopyFlags,
  copy: (
    onProgress: ((progress: CopyProgress) => void) | undefined,
  ) => Promise<CopySummary>,
  showPath: (path: string) => string = (path) => path,
): Promise<void> {
  const progress: ProgressReporter = createProgress(label, flags);
  let totalSet = false;
  let summary: CopySummary;
  try {
    // Without progress, a copy in skips the walk that sizes the source.
    summary = await copy(
      flags.quiet
        ? undefined
        : ({ bytes, totalBytes }) => {
            if (!totalSet && totalBytes !== undefined) {
              progress.setTotal(totalBytes);
              totalSet = true;
            }
            progress.update(
              totalBytes === undefined ? bytes : Math.min(bytes, totalBytes),
            );
          },
    );
  } finally {
    progress.stop();
  }
  if (!flags.quiet) {
    process.stderr.write(
      `copied ${formatBytes(summary.bytes)} of tar to ` +
        `${printable(showPath(summary.path))}\n`,
    );
  }
}
