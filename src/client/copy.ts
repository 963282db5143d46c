/**
 * Copies between the local file system and a container path. The server
 * side of a container copy extracts every archive under a directory and
 * archives a path under its last name, so these helpers pack and unpack
 * tar archives locally with the archive layer.
 */
import { PassThrough } from "node:stream";
import { basename, dirname, resolve } from "node:path";
import { extractArchive, packPath } from "../archive/index.js";
import type { ByteSink, ByteSource } from "../streaming/index.js";
import {
  ContainerPath,
  ReadStream,
  WriteStream,
} from "../transfer/index.js";
import type { Client, TransferOptions } from "./client.js";

export interface ContainerLocation {
  containerId: string;
  path: string;
}

export interface CopyOptions extends Omit<TransferOptions, "onProgress"> {
  /** Keep numeric uid and gid of copied files (`cp -a`). */
  preserveOwnership?: boolean;
  /** Called with the total archive bytes moved so far. */
  onBytes?: (totalBytes: number) => void;
  /** Receives warnings such as skipped sockets. */
  onWarning?: (code: string, message: string, path: string) => void;
}

export interface CopySummary {
  /** Archive bytes moved. */
  bytes: number;
}

/**
 * Copies a local file or directory into the container directory
 * `target.path`, under its own name.
 */
export async function copyIntoContainer(
  client: Client,
  localPath: string,
  target: ContainerLocation,
  options: CopyOptions = {},
): Promise<CopySummary> {
  const absolute = resolve(localPath);
  const archive = packPath(dirname(absolute), basename(absolute), {
    signal: options.signal,
    onWarning: options.onWarning,
  });
  return copyArchiveIntoContainer(client, archive, target, options);
}

/** Extracts a tar archive from `source` under the container directory. */
export async function copyArchiveIntoContainer(
  client: Client,
  source: ByteSource,
  target: ContainerLocation,
  options: CopyOptions = {},
): Promise<CopySummary> {
  let bytes = 0;
  const stream = new ReadStream(source, undefined, {
    onBytes: (total) => {
      bytes = total;
      options.onBytes?.(total);
    },
  });
  const destination = new ContainerPath({
    containerId: target.containerId,
    path: target.path,
    preserveOwnership: options.preserveOwnership,
  });
  await client.transfer(stream, destination, options);
  return { bytes };
}

/**
 * Copies a container path into the local directory `localDir`, under the
 * path's last name. Nothing is written outside `localDir`.
 */
export async function copyFromContainer(
  client: Client,
  source: ContainerLocation,
  localDir: string,
  options: CopyOptions = {},
): Promise<CopySummary> {
  const pipe = new PassThrough();
  const extracting = extractArchive(resolve(localDir), "/", pipe, {
    preserveOwnership: options.preserveOwnership,
    signal: options.signal,
    onWarning: options.onWarning,
  });
  extracting.catch((error) => pipe.destroy(error));
  const [summary] = await Promise.all([
    copyArchiveFromContainer(client, source, pipe, options),
    extracting,
  ]);
  return summary;
}

/** Writes the tar archive of a container path to `sink`. */
export async function copyArchiveFromContainer(
  client: Client,
  source: ContainerLocation,
  sink: ByteSink,
  options: CopyOptions & { noWalk?: boolean; endSink?: boolean } = {},
): Promise<CopySummary> {
  let bytes = 0;
  const stream = new WriteStream(sink, undefined, {
    endSink: options.endSink,
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
  await client.transfer(container, stream, options);
  return { bytes };
}
