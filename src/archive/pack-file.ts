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
  type ArchiveBatch,
  chunkBytes,
  gatherBytes,
  type ReadBuffers,
} from "./pack-buffers.js";
import {
  blockBytes,
  bodyPadding,
  type EntryFields,
  encodeHeader,
  headerFields,
  writeUstarHeader,
} from "./tar-header.js";
import type { WarningHandler } from "./warning.js";

/**
 * Largest file packed with synchronous calls, in bytes. Its padded body
 * is written straight into the archive's batch.
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
  /** The archive's chunks, which the packer yields as they are ready. */
  batch: ArchiveBatch;
  /** Skips devices and FIFOs with a warning instead of packing them. */
  skipSpecialFiles: boolean;
}

/**
 * Packs the regular file `name` of `parent`, listed with `stats`, under
 * the archive name `entryName`, or a hard link entry if its inode was
 * packed before. A small file goes through {@link packSmallFile}, a
 * larger one is read in chunks as the consumer reads the archive.
 */
export async function* packFile(
  context: PackContext,
  parent: DirectoryHandle,
  name: string,
  entryName: string,
  stats: BigIntStats,
): AsyncGenerator<Buffer> {
  if (addLinkIfPacked(context, stats, entryName)) {
    return;
  }
  let listed = stats;
  if (listed.size <= smallFileBytes) {
    const larger = packSmallFile(context, parent, name, entryName, listed);
    if (larger === undefined) {
      return;
    }
    listed = larger;
  }

  const where = entryWhere(parent, name);
  const opening = await openRegularFile(context, parent, name, listed);
  if (opening === undefined) {
    return;
  }
  const { file, opened } = opening;
  try {
    if (opened.nlink > 1n) {
      context.firstLinks.set(inodeKey(opened), entryName);
    }
    const size = Number(opened.size);
    addHeader(context.batch, headerFields(entryName, "File", opened));
    yield* readBody(context, file, size, where);
    context.batch.add(bodyPadding(size));
    await warnIfChanged(context, file, opened, where);
  } finally {
    await file.close();
  }
}

/**
 * Packs the regular file `name` of `parent`, listed with `listed`, with
 * synchronous calls if it still has at most {@link smallFileBytes}: it
 * opens, checks and reads the file into the batch. On a local file system
 * each call usually takes microseconds, less than the hop to the thread
 * pool that an asynchronous call makes.
 *
 * Returns undefined when the entry is done: packed, or skipped with a
 * warning because it vanished or was replaced. Returns the open file's
 * status when it grew larger, for {@link packFile} to pack in chunks.
 */
function packSmallFile(
  context: PackContext,
  parent: DirectoryHandle,
  name: string,
  entryName: string,
  listed: BigIntStats,
): BigIntStats | undefined {
  let fd: number;
  try {
    fd = openSync(childPath(parent, name), readFlags);
  } catch (error) {
    warnOpenFailed(context, error, entryWhere(parent, name));
    return undefined;
  }
  try {
    const opened = fstatSync(fd, { bigint: true });
    if (!isSameFile(context, opened, listed, parent, name)) {
      return undefined;
    }
    if (opened.size > BigInt(smallFileBytes)) {
      return opened;
    }
    if (opened.nlink > 1n) {
      context.firstLinks.set(inodeKey(opened), entryName);
    }
    readSmallBody(context, fd, opened, entryName, () =>
      entryWhere(parent, name),
    );
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads an open file of at most {@link smallFileBytes} straight into the
 * batch, after the space of its header, and then writes the header with
 * the size actually read. A file that ended early, such as a sysfs file
 * that reports 4096 bytes and contains a few, is packed as it was read,
 * with a warning. A file that grew is cut at its size in `opened`.
 * `describe` gives the file's container path for messages; it is built
 * only when one is needed, as most small files need none.
 */
function readSmallBody(
  context: PackContext,
  fd: number,
  opened: BigIntStats,
  entryName: string,
  describe: () => string,
): void {
  const size = Number(opened.size);
  const batch = context.batch;
  const padded = Math.ceil(size / blockBytes) * blockBytes;
  const region = batch.space(blockBytes + padded);
  let position = 0;
  while (position < size) {
    let bytesRead: number;
    try {
      bytesRead = readSync(
        fd,
        region,
        blockBytes + position,
        size - position,
        position,
      );
    } catch (error) {
      throw fileError(error, "read", describe());
    }
    if (bytesRead === 0) {
      break;
    }
    position += bytesRead;
  }
  if (position < size) {
    const where = describe();
    context.warn(
      "changed",
      `"${where}" ended after ${position} of the ${size} bytes that its ` +
        `status reported, so its copy has ${position} bytes`,
      where,
    );
  }

  const fields = { ...headerFields(entryName, "File", opened), size: position };
  const bodyEnd = blockBytes + Math.ceil(position / blockBytes) * blockBytes;
  region.fill(0, blockBytes + position, bodyEnd);
  if (writeUstarHeader(fields, region.subarray(0, blockBytes))) {
    batch.commit(bodyEnd);
    return;
  }
  // The header needs PAX records, which come before it, so the body is
  // copied out of the space that the headers then take.
  const body = Buffer.from(region.subarray(blockBytes, bodyEnd));
  addHeader(batch, fields);
  batch.add(body);
}

/**
 * Adds a hard link entry naming the first archive name of the file's
 * inode, if the inode was packed before, and returns whether it did.
 */
function addLinkIfPacked(
  context: PackContext,
  stats: BigIntStats,
  entryName: string,
): boolean {
  const firstLink = context.firstLinks.get(inodeKey(stats));
  if (firstLink === undefined) {
    return false;
  }
  addHeader(context.batch, {
    ...headerFields(entryName, "Link", stats),
    size: 0,
    linkpath: firstLink,
  });
  return true;
}

function inodeKey(stats: BigIntStats): string {
  return `${stats.dev}:${stats.ino}`;
}

/**
 * Adds the header blocks of an entry: written in place when plain USTAR
 * holds its fields, otherwise encoded by node-tar, with a PAX header if
 * needed.
 */
export function addHeader(batch: ArchiveBatch, fields: EntryFields): void {
  if (writeUstarHeader(fields, batch.space(blockBytes))) {
    batch.commit(blockBytes);
    return;
  }
  batch.add(encodeHeader(fields));
}

/** Returns the container path of `name` in `parent`, for messages. */
export function entryWhere(parent: DirectoryHandle, name: string): string {
  return displayPath([...parent.components, name]);
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
  let file: FileHandle;
  try {
    file = await open(childPath(parent, name), readFlags);
  } catch (error) {
    warnOpenFailed(context, error, entryWhere(parent, name));
    return undefined;
  }

  const opened = await file.stat({ bigint: true });
  if (!isSameFile(context, opened, stats, parent, name)) {
    await file.close();
    return undefined;
  }
  return { file, opened };
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
  parent: DirectoryHandle,
  name: string,
): boolean {
  if (
    opened.isFile() &&
    opened.ino === listed.ino &&
    opened.dev === listed.dev
  ) {
    return true;
  }
  const where = entryWhere(parent, name);
  context.warn("changed", `"${where}" was replaced during the walk`, where);
  return false;
}

/**
 * Adds exactly `size` bytes of the file to the batch and yields the
 * chunks ready, a read at a time as the consumer reads. A file that grew
 * is cut at `size`, and one that shrank fails the archive (see
 * {@link shrankError}).
 */
async function* readBody(
  context: PackContext,
  file: FileHandle,
  size: number,
  where: string,
): AsyncGenerator<Buffer> {
  const { batch, readBuffers } = context;
  let position = 0;
  while (position < size) {
    throwIfAborted(context.signal);
    const length = Math.min(chunkBytes, size - position);
    const buffer = readBuffers?.take() ?? Buffer.allocUnsafe(length);
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
    if (bytesRead >= gatherBytes) {
      // The batch queues the chunk itself.
      readBuffers?.lend(chunk, buffer);
      batch.add(chunk);
    } else {
      batch.add(chunk);
      readBuffers?.give(buffer);
    }
    for (let ready = batch.take(); ready; ready = batch.take()) {
      yield ready;
    }
  }
}

/**
 * Warns when the file's size or mtime differs from `opened`, its status
 * before the read: its copy may then mix old and new content. A small
 * file, read with one call, is not checked.
 */
async function warnIfChanged(
  context: PackContext,
  file: FileHandle,
  opened: BigIntStats,
  where: string,
): Promise<void> {
  const after = await file.stat({ bigint: true }).catch((error) => {
    throw fileError(error, "stat", where);
  });
  if (after.size !== opened.size || after.mtimeNs !== opened.mtimeNs) {
    context.warn(
      "changed",
      `"${where}" changed while it was read, so its copy may mix old and ` +
        "new content; copy it again once the file no longer changes",
      where,
    );
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
