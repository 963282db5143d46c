/**
 * Packing of regular files: hard link detection, a checked open and a
 * body read in chunks as the consumer reads the archive.
 */
import {
  type BigIntStats,
  closeSync,
  constants,
  fstatSync,
  openSync,
  readSync,
} from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { Code, TransferError, throwIfAborted } from "../errors/index.js";
import { displayPath } from "./container-path.js";
import { childPath, type DirectoryHandle } from "./directory-handle.js";
import { errnoOf, fileError } from "./file-error.js";
import {
  blockBytes,
  bodyPadding,
  encodeHeader,
  headerFields,
} from "./tar-header.js";
import type { WarningHandler } from "./warning.js";

/** Bytes read from a file at a time; also the stream's high-water mark. */
export const chunkBytes = 256 * 1024;

/**
 * Largest file packed with synchronous calls into a single chunk of
 * header, body and padding, in bytes. It bounds the memory of one such
 * chunk.
 */
export const smallFileBytes = 64 * 1024;

/** Flags that open a file to pack it; see {@link openRegularFile}. */
const readFlags =
  constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** State of one packing run. */
export interface PackContext {
  signal: AbortSignal | undefined;
  noWalk: boolean;
  warn: WarningHandler;
  /** Archive name of the first hard link of each file, by `dev:ino`. */
  firstLinks: Map<string, string>;
  /** Read buffers given back by the consumer, when it gives them back. */
  readBuffers: ReadBuffers | undefined;
  /**
   * Memory reused for each small file's entry that is shorter than it,
   * because such an entry is copied before the next one is packed.
   */
  smallEntryScratch: Buffer | undefined;
}

/**
 * Read buffers of one archive that its consumer gives back once it no
 * longer needs a chunk, so that a large file does not allocate a new
 * buffer per read. A buffer that is never given back is left to the
 * garbage collector.
 */
export class ReadBuffers {
  readonly #free: Buffer[] = [];
  readonly #reuseChunk: (chunk: Uint8Array, reuse: () => void) => void;

  /**
   * `reuseChunk` receives each chunk read into a buffer of this set, with
   * the function that gives the buffer back. It calls that function once
   * nothing reads the chunk any more.
   */
  constructor(reuseChunk: (chunk: Uint8Array, reuse: () => void) => void) {
    this.#reuseChunk = reuseChunk;
  }

  /** Returns a free buffer of {@link chunkBytes}, or a new one. */
  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafe(chunkBytes);
  }

  /** Hands `chunk`, read into `buffer`, to the consumer's reuse hook. */
  lend(chunk: Uint8Array, buffer: Buffer): void {
    this.#reuseChunk(chunk, () => {
      if (this.#free.length < maxFreeBuffers) {
        this.#free.push(buffer);
      }
    });
  }
}

/** Free buffers kept per archive: 8 MiB of 256 KiB buffers. */
const maxFreeBuffers = 32;

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

  if (stats.size <= smallFileBytes) {
    const packed = packSmallFile(context, parent, name, entryName, stats);
    if (packed !== "grew") {
      if (packed !== undefined) {
        yield packed;
      }
      return;
    }
  }

  const opening = await openRegularFile(context, parent, name, stats);
  if (opening === undefined) {
    return;
  }
  const { file, opened } = opening;
  try {
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
): Promise<{ file: FileHandle; opened: BigIntStats } | undefined> {
  const where = displayPath([...parent.components, name]);
  let file: FileHandle;
  try {
    file = await open(childPath(parent, name), readFlags);
  } catch (error) {
    warnOpenFailed(context, error, where);
    return undefined;
  }

  const opened = await file.stat({ bigint: true });
  if (!isSameFile(context, opened, stats, where)) {
    await file.close();
    return undefined;
  }
  return { file, opened };
}

/**
 * Packs a file of at most {@link smallFileBytes} like {@link packFile},
 * with synchronous calls: it opens, checks and reads the file and returns
 * its header, body and padding as one chunk. On a local file system each
 * call usually takes microseconds, less than the hop to the thread pool
 * that an asynchronous call makes. Returns undefined, after a warning,
 * when the file vanished or was replaced, and `"grew"` when it is now
 * larger than {@link smallFileBytes}, for the caller to pack it in chunks.
 */
function packSmallFile(
  context: PackContext,
  parent: DirectoryHandle,
  name: string,
  entryName: string,
  stats: BigIntStats,
): Buffer | "grew" | undefined {
  const where = displayPath([...parent.components, name]);
  let fd: number;
  try {
    fd = openSync(childPath(parent, name), readFlags);
  } catch (error) {
    warnOpenFailed(context, error, where);
    return undefined;
  }
  try {
    const opened = fstatSync(fd, { bigint: true });
    if (!isSameFile(context, opened, stats, where)) {
      return undefined;
    }
    if (opened.size > BigInt(smallFileBytes)) {
      return "grew";
    }
    if (opened.nlink > 1n) {
      context.firstLinks.set(`${stats.dev}:${stats.ino}`, entryName);
    }
    const size = Number(opened.size);
    const header = encodeHeader(headerFields(entryName, "File", opened));
    const padded = Math.ceil(size / blockBytes) * blockBytes;
    const length = header.length + padded;
    const scratch = context.smallEntryScratch;
    const chunk =
      scratch !== undefined && length < scratch.length
        ? scratch.subarray(0, length)
        : Buffer.allocUnsafe(length);
    header.copy(chunk);
    const bodyStart = header.length;
    let position = 0;
    while (position < size) {
      const bytesRead = readAt(
        fd,
        chunk,
        bodyStart + position,
        size - position,
        position,
        where,
      );
      if (bytesRead === 0) {
        throw shrankError(where, size, position);
      }
      position += bytesRead;
    }
    chunk.fill(0, bodyStart + position);
    return chunk;
  } finally {
    closeSync(fd);
  }
}

function readAt(
  fd: number,
  buffer: Buffer,
  offset: number,
  length: number,
  position: number,
  where: string,
): number {
  try {
    return readSync(fd, buffer, offset, length, position);
  } catch (error) {
    throw fileError(error, "read", where);
  }
}

/**
 * Warns about a file that could not be opened because it vanished or
 * changed type since it was listed, and throws any other error.
 */
function warnOpenFailed(
  context: PackContext,
  error: unknown,
  where: string,
): void {
  const errno = errnoOf(error);
  if (errno === "ENOENT") {
    context.warn("vanished", `"${where}" disappeared during the walk`, where);
    return;
  }
  if (errno === "ELOOP" || errno === "ENXIO") {
    context.warn("changed", `"${where}" changed type during the walk`, where);
    return;
  }
  throw fileError(error, "open", where);
}

/**
 * Returns whether the opened file is the regular file that was listed,
 * after a warning when it is not.
 */
function isSameFile(
  context: PackContext,
  opened: BigIntStats,
  listed: BigIntStats,
  where: string,
): boolean {
  if (
    opened.isFile() &&
    opened.ino === listed.ino &&
    opened.dev === listed.dev
  ) {
    return true;
  }
  context.warn("changed", `"${where}" was replaced during the walk`, where);
  return false;
}

/**
 * Yields exactly `size` bytes of the file, in chunks as the consumer
 * reads. A file that grew is cut at `size`, and one that shrank fails the
 * archive (see {@link shrankError}).
 */
async function* readBody(
  context: PackContext,
  file: FileHandle,
  size: number,
  where: string,
): AsyncGenerator<Buffer> {
  const buffers = context.readBuffers;
  let position = 0;
  while (position < size) {
    throwIfAborted(context.signal);
    const length = Math.min(chunkBytes, size - position);
    const buffer = buffers?.take() ?? Buffer.allocUnsafe(length);
    const { bytesRead } = await file
      .read(buffer, 0, length, position)
      .catch((error) => {
        throw fileError(error, "read", where);
      });
    if (bytesRead === 0) {
      throw shrankError(where, size, position);
    }
    position += bytesRead;
    const chunk = buffer.subarray(0, bytesRead);
    buffers?.lend(chunk, buffer);
    yield chunk;
  }
}

/**
 * Returns the error for a file that ended before the size in its header
 * was read. The entry can be neither completed nor shortened, because its
 * header is already sent, and padding would deliver a file that never
 * existed, so the archive fails instead.
 */
function shrankError(
  where: string,
  size: number,
  position: number,
): TransferError {
  return new TransferError(
    `"${where}" shrank from ${size} to ${position} bytes while it was ` +
      "read, so the archive was stopped; copy it again once the file no " +
      "longer changes",
    Code.Aborted,
  );
}
