import { stat } from "node:fs/promises";
import type { Command } from "commander";
import {
  type Client,
  copyArchiveFromContainer,
  copyArchiveIntoContainer,
  copyFromContainer,
  copyIntoContainer,
} from "../client/index.js";
import { Code, TransferError } from "../errors/index.js";
import { parseCopyEnd } from "./copy-args.js";
import { createProgress } from "./progress.js";

export interface CopyFlags {
  archive?: boolean;
  followLink?: boolean;
  quiet?: boolean;
}

/**
 * Runs `cp SRC DST`. One side is CONTAINER:PATH, the other a local path or
 * `-` for a tar stream on standard input or output.
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
  const warn = (code: string, message: string, path: string) =>
    process.stderr.write(`warning: ${message} (${code}: ${path})\n`);
  const options = {
    signal,
    preserveOwnership: flags.archive,
    onWarning: warn,
  };

  if (source.kind === "container" && destination.kind !== "container") {
    const location = { containerId: source.containerId, path: source.path };
    if (destination.kind === "stdio") {
      await copyArchiveFromContainer(client, location, process.stdout, {
        ...options,
        endSink: false,
      });
      return;
    }
    const progress = createProgress(`copy ${sourceArgument}`, flags);
    try {
      await copyFromContainer(client, location, destination.path, {
        ...options,
        onBytes: (bytes) => progress.update(bytes),
      });
    } finally {
      progress.stop();
    }
    return;
  }

  if (destination.kind === "container" && source.kind !== "container") {
    const location = {
      containerId: destination.containerId,
      path: destination.path,
    };
    if (source.kind === "stdio") {
      await copyArchiveIntoContainer(client, process.stdin, location, options);
      return;
    }
    const info = await stat(source.path).catch((error) => {
      throw new TransferError(
        `cannot copy "${source.path}": ${(error as Error).message}`,
        TransferError.from(error).code,
        error,
      );
    });
    const progress = createProgress(`copy ${sourceArgument}`, {
      ...flags,
      total: info.isFile() ? info.size : undefined,
    });
    try {
      await copyIntoContainer(client, source.path, location, {
        ...options,
        onBytes: (bytes) => progress.update(bytes),
      });
    } finally {
      progress.stop();
    }
    return;
  }

  throw new TransferError(
    `invalid copy from "${sourceArgument}" to "${destinationArgument}": ` +
      "exactly one side must be CONTAINER:PATH",
    Code.InvalidArgument,
  );
}

export function addCopyOptions(command: Command): Command {
  return command
    .option("-a, --archive", "keep uid and gid of copied files")
    .option("-L, --follow-link", "follow a symbolic link given as SRC")
    .option("-q, --quiet", "print no progress");
}
