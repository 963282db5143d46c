/**
 * Packing of regular files: hard link detection, a checked open and a
 * body read in chunks as the consumer reads the archive.
 */
import { type BigIntStats, constants } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { throwIfAborted } from "../errors/index.js";
import { displayPath } from "./container-path.js";
import { childPath, type DirectoryHandle } from "./directory-handle.js";
import { errnoOf, fileError } from "./file-error.js";
import { bodyPadding, encodeHeader, headerFields } from "./tar-header.js";
import type { WarningHandler } from "./warning.js";

/** Bytes read from a file at a time; also the stream's high-water mark. */
export const chunkBytes = 256 * 1024;

/** State of one packing run. */
export interface PackContext {
  signal: AbortSignal | undefined;
  noWalk: boolean;
  warn: WarningHandler;
  /** Archive name of the first hard link of each file, by `dev:ino`. */
  firstLinks: Map<string, string>;
}

/**
 * Packs the regular file `name` of `parent` under the archive name
 * `entryName`, or a hard link entry if its inode was packed before.
 */
export async function* packFile(
  context: PackContext,
  parent: DirectoryHandle,
  name: string,
  entryName: string,
  stats: BigIntStats,
): AsyncGenerator<Buffer> {
  const where = displayPath([...parent.components, name]);
  const inode = `${stats.dev}:${stats.ino}`;
  const firstLink = context.firstLinks.get(inode);
  if (firstLink !== undefined) {
    yield encodeHeader({
      ...headerFields(entryName, "Link", stats),
      size: 0,
      linkpath: firstLink,
    });
    return;
  }

  const file = await openRegularFile(context, parent, name, stats);
  if (file === undefined) {
    return;
  }
  try {
    const opened = await file.stat({ bigint: true });
    if (opened.nlink > 1n) {
      context.firstLinks.set(inode, entryName);
    }
    const size = Number(opened.size);
    yield encodeHeader(headerFields(entryName, "File", opened));
    yield* readBody(context, file, size, where);
    yield bodyPadding(size);
  } finally {
    await file.close();
  }
}

/**
 * Opens a regular file without following a symlink and without blocking
 * on a FIFO swapped in after the lstat. Returns undefined, after a
 * warning, when the file vanished or is no longer the file that was
 * listed.
 */
async function openRegularFile(
  context: PackContext,
  parent: DirectoryHandle,
  name: string,
  stats: BigIntStats,
): Promise<FileHandle | undefined> {
  const where = displayPath([...parent.components, name]);
  const flags =
    constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  let file: FileHandle;
  try {
    file = await open(childPath(parent, name), flags);
  } catch (error) {
    const errno = errnoOf(error);
    if (errno === "ENOENT") {
      context.warn("vanished", `"${where}" disappeared during the walk`, where);
      return undefined;
    }
    if (errno === "ELOOP" || errno === "ENXIO") {
      context.warn("changed", `"${where}" changed type during the walk`, where);
      return undefined;
    }
    throw fileError(error, "open", where);
  }

  const opened = await file.stat({ bigint: true });
  if (
    !opened.isFile() ||
    opened.ino !== stats.ino ||
    opened.dev !== stats.dev
  ) {
    await file.close();
    context.warn("changed", `"${where}" was replaced during the walk`, where);
    return undefined;
  }
  return file;
}

/**
 * Yields exactly `size` bytes of the file, in chunks as the consumer
 * reads. A file that shrank is padded with zeros so that the archive
 * stays well formed; a file that grew is cut at `size`.
 */
async function* readBody(
  context: PackContext,
  file: FileHandle,
  size: number,
  where: string,
): AsyncGenerator<Buffer> {
  let position = 0;
  while (position < size) {
    throwIfAborted(context.signal);
    const buffer = Buffer.allocUnsafe(Math.min(chunkBytes, size - position));
    const { bytesRead } = await file
      .read(buffer, 0, buffer.length, position)
      .catch((error) => {
        throw fileError(error, "read", where);
      });
    if (bytesRead === 0) {
      context.warn(
        "changed",
        `"${where}" shrank while it was read; the entry was padded with ` +
          `${size - position} zero bytes`,
        where,
      );
      yield Buffer.alloc(size - position);
      return;
    }
    position += bytesRead;
    yield buffer.subarray(0, bytesRead);
  }
}
