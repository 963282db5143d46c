/**
 * Packing a container path into a tar archive (copy out).
 *
 * The walk is ours rather than node-tar's Pack, because Pack opens files
 * by path (following a symlink swapped in after its lstat), lists
 * directories in readdir order, and writes no device entries. Headers
 * are encoded with node-tar's Header and Pax classes.
 */
import { type BigIntStats, lstatSync } from "node:fs";
import { lstat, readdir, readlink } from "node:fs/promises";
import { Readable } from "node:stream";
import {
  abortReason,
  Code,
  TransferError,
  throwIfAborted,
} from "../errors/index.js";
import { displayPath, pathComponents } from "./container-path.js";
import {
  childPath,
  closeDirectory,
  type DirectoryHandle,
  openChildDirectory,
  selfPath,
  statDirectory,
} from "./directory-handle.js";
import { errnoOf, fileError } from "./file-error.js";
import {
  chunkBytes,
  type PackContext,
  packFile,
  ReadBuffers,
} from "./pack-file.js";
import { openContainerRoot, openParent } from "./resolve.js";
import {
  deviceNumbers,
  encodeHeader,
  endOfArchive,
  headerFields,
} from "./tar-header.js";
import type { WarningHandler } from "./warning.js";

/** Size that {@link gatherChunks} gathers small chunks up to, in bytes. */
const gatherBytes = 64 * 1024;

export interface PackOptions {
  /** Packs only the directory itself, not its contents. Default false. */
  noWalk?: boolean;
  /** Stops packing; the stream is destroyed with a Canceled error. */
  signal?: AbortSignal;
  /** Receives skipped sockets and files that changed during the walk. */
  onWarning?: WarningHandler;
  /**
   * Lets the packer reuse the buffers it reads files into. It receives
   * each chunk yielded straight from a read buffer and a function that
   * gives the buffer back. The consumer must call that function only
   * once nothing reads the chunk any more, such as `reuseAfterSend` of
   * the byte sender does. Without it, every read gets a new buffer.
   */
  reuseChunk?: (chunk: Uint8Array, reuse: () => void) => void;
}

/**
 * Returns a stream of the tar archive of the container path `path` inside
 * the host directory `root`.
 *
 * `path` is cleaned like `cleanContainerPath`, and its intermediate
 * symlinks are followed inside the root, where an absolute target starts
 * at the root. The final component is not followed. The top entry is named
 * after the last component of the cleaned path, so `/tmp/a.txt` gives
 * `a.txt`. For the root it is `./`, and the children have no prefix. A
 * directory is walked depth first in byte order of the names, unless
 * `noWalk` is set. Symlinks are stored, never followed.
 *
 * Headers carry the type, permission bits with setuid, setgid and sticky,
 * numeric uid and gid (no user or group names), size, mtime in whole
 * seconds, symlink targets as they are, and device numbers. A regular
 * file met again through another hard link is stored as a hard link entry
 * naming the first. Sockets are skipped with a `socket-skipped` warning.
 * The archive ends with two zero blocks and no record padding.
 *
 * Files are read in 256 KiB chunks as the consumer reads the stream. The
 * stream fails with NotFound when `path` does not exist, PermissionDenied
 * when something cannot be read, InvalidArgument when the path itself is
 * a socket, and Canceled when the signal aborts. A failed archive has no
 * end-of-archive marker.
 */
export function packPath(
  root: string,
  path: string,
  options: PackOptions = {},
): Readable {
  const stream = Readable.from(packChunks(root, path, options), {
    objectMode: false,
    highWaterMark: chunkBytes,
  });

  const signal = options.signal;
  if (signal !== undefined) {
    const onAbort = () => stream.destroy(abortReason(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    stream.once("close", () => signal.removeEventListener("abort", onAbort));
  }
  return stream;
}

/**
 * Returns the chunks of the archive that {@link packPath} streams, read
 * as the consumer requests them. It fails in the same cases, and with the
 * signal's reason when the signal aborts.
 */
export function packChunks(
  root: string,
  path: string,
  options: PackOptions = {},
): AsyncGenerator<Buffer> {
  const readBuffers = options.reuseChunk && new ReadBuffers(options.reuseChunk);
  return gatherChunks(
    packEntries(root, path, options, readBuffers),
    readBuffers,
  );
}

async function* packEntries(
  root: string,
  path: string,
  options: PackOptions,
  readBuffers: ReadBuffers | undefined,
): AsyncGenerator<Buffer> {
  throwIfAborted(options.signal);
  const context: PackContext = {
    signal: options.signal,
    noWalk: options.noWalk ?? false,
    warn: options.onWarning ?? (() => {}),
    firstLinks: new Map(),
    readBuffers,
    // gatherChunks copies every chunk under gatherBytes when it has read
    // buffers, before it requests the next.
    smallEntryScratch: readBuffers && Buffer.allocUnsafe(gatherBytes),
  };
  const names = pathComponents(path);
  const subject = displayPath(names);

  const rootHandle = await openContainerRoot(root);
  try {
    if (names.length === 0) {
      const stats = await statDirectory(rootHandle);
      yield encodeHeader(headerFields("./", "Directory", stats));
      if (!context.noWalk) {
        yield* packChildren(context, rootHandle, "");
      }
    } else {
      const parent = await openParent([rootHandle], names, { subject });
      try {
        const stats = await lstatEntry(parent.directory, parent.name);
        if (stats === undefined) {
          throw new TransferError(
            `failed to pack "${subject}": no such file or directory`,
            Code.NotFound,
          );
        }
        if (stats.isSocket()) {
          throw new TransferError(
            `failed to pack "${subject}": a socket cannot be stored in a ` +
              "tar archive",
            Code.InvalidArgument,
          );
        }
        yield* packEntry(
          context,
          parent.directory,
          parent.name,
          parent.name,
          stats,
        );
      } finally {
        await parent.release();
      }
    }
    yield endOfArchive;
  } finally {
    await closeDirectory(rootHandle);
  }
}

/** Packs the child `name` of `parent` under the archive name `entryName`. */
async function* packEntry(
  context: PackContext,
  parent: DirectoryHandle,
  name: string,
  entryName: string,
  stats: BigIntStats,
): AsyncGenerator<Buffer> {
  throwIfAborted(context.signal);
  const where = displayPath([...parent.components, name]);

  if (stats.isDirectory()) {
    yield encodeHeader(headerFields(`${entryName}/`, "Directory", stats));
    if (!context.noWalk) {
      yield* packDirectory(context, parent, name, entryName, stats);
    }
    return;
  }
  if (stats.isFile()) {
    yield* packFile(context, parent, name, entryName, stats);
    return;
  }
  if (stats.isSymbolicLink()) {
    const target = await readlink(childPath(parent, name)).catch((error) => {
      throw fileError(error, "read symlink", where);
    });
    yield encodeHeader({
      ...headerFields(entryName, "SymbolicLink", stats),
      linkpath: target,
    });
    return;
  }
  if (stats.isCharacterDevice() || stats.isBlockDevice()) {
    const type = stats.isBlockDevice() ? "BlockDevice" : "CharacterDevice";
    yield encodeHeader({
      ...headerFields(entryName, type, stats),
      ...deviceNumbers(stats.rdev),
    });
    return;
  }
  if (stats.isFIFO()) {
    yield encodeHeader(headerFields(entryName, "FIFO", stats));
    return;
  }
  if (stats.isSocket()) {
    context.warn("socket-skipped", `skipped socket "${where}"`, where);
    return;
  }
  context.warn("type-skipped", `skipped "${where}" of unknown type`, where);
}

async function* packDirectory(
  context: PackContext,
  parent: DirectoryHandle,
  name: string,
  entryName: string,
  stats: BigIntStats,
): AsyncGenerator<Buffer> {
  const where = displayPath([...parent.components, name]);
  let directory: DirectoryHandle;
  try {
    directory = await openChildDirectory(parent, name);
  } catch (error) {
    const errno = errnoOf(error);
    if (errno === "ENOENT" || errno === "ENOTDIR" || errno === "ELOOP") {
      context.warn(
        "changed",
        `"${where}" stopped being a directory during the walk; its ` +
          "contents were left out",
        where,
      );
      return;
    }
    throw fileError(error, "open directory", where);
  }

  try {
    const current = await statDirectory(directory);
    if (current.ino !== stats.ino || current.dev !== stats.dev) {
      context.warn(
        "changed",
        `"${where}" was replaced during the walk; its contents were left out`,
        where,
      );
      return;
    }
    yield* packChildren(context, directory, `${entryName}/`);
  } finally {
    await closeDirectory(directory);
  }
}

/** Packs the children of `directory` in byte order, names after `prefix`. */
async function* packChildren(
  context: PackContext,
  directory: DirectoryHandle,
  prefix: string,
): AsyncGenerator<Buffer> {
  const where = displayPath(directory.components);
  const listed = await readdir(selfPath(directory), {
    encoding: "buffer",
  }).catch((error) => {
    throw fileError(error, "list directory", where);
  });
  listed.sort(Buffer.compare);

  const utf8 = new TextDecoder("utf-8", { fatal: true });
  for (const raw of listed) {
    throwIfAborted(context.signal);
    let name: string;
    try {
      name = utf8.decode(raw);
    } catch {
      const rawPath = `${where === "/" ? "" : where}/${raw.toString("utf8")}`;
      context.warn(
        "name-skipped",
        `skipped "${rawPath}": the name is not valid UTF-8`,
        rawPath,
      );
      continue;
    }

    const stats = lstatEntrySync(directory, name);
    if (stats === undefined) {
      const vanished = displayPath([...directory.components, name]);
      context.warn(
        "vanished",
        `"${vanished}" disappeared during the walk`,
        vanished,
      );
      continue;
    }
    yield* packEntry(context, directory, name, `${prefix}${name}`, stats);
  }
}

async function lstatEntry(
  parent: DirectoryHandle,
  name: string,
): Promise<BigIntStats | undefined> {
  try {
    return await lstat(childPath(parent, name), { bigint: true });
  } catch (error) {
    if (errnoOf(error) === "ENOENT") {
      return undefined;
    }
    throw fileError(error, "stat", displayPath([...parent.components, name]));
  }
}

/** Like {@link lstatEntry}, for the many entries of a directory listing. */
function lstatEntrySync(
  parent: DirectoryHandle,
  name: string,
): BigIntStats | undefined {
  try {
    return lstatSync(childPath(parent, name), { bigint: true });
  } catch (error) {
    if (errnoOf(error) === "ENOENT") {
      return undefined;
    }
    throw fileError(error, "stat", displayPath([...parent.components, name]));
  }
}

/**
 * Gathers consecutive small chunks, such as the headers and bodies of
 * small files, into chunks of at least {@link gatherBytes}, so that each
 * chunk of the stream, and each Data message made from it, carries many
 * entries. Chunks of that size or more pass through as they are.
 *
 * With `readBuffers`, a small chunk is copied into a buffer of that set
 * before the next chunk is requested, and the consumer gives the buffer
 * back. So a packer may reuse the memory of a small chunk it yielded.
 */
async function* gatherChunks(
  chunks: AsyncIterable<Buffer>,
  readBuffers: ReadBuffers | undefined,
): AsyncGenerator<Buffer> {
  if (readBuffers === undefined) {
    yield* concatChunks(chunks);
    return;
  }
  let buffer: Buffer | undefined;
  let filled = 0;
  const gathered = () => {
    const chunk = buffer!.subarray(0, filled);
    readBuffers.lend(chunk, buffer!);
    buffer = undefined;
    filled = 0;
    return chunk;
  };
  for await (const chunk of chunks) {
    if (chunk.length >= gatherBytes) {
      if (filled > 0) {
        yield gathered();
      }
      yield chunk;
      continue;
    }
    // Less than gatherBytes is filled, so a chunk under gatherBytes fits
    // in the chunkBytes of a read buffer.
    buffer ??= readBuffers.take();
    filled += chunk.copy(buffer, filled);
    if (filled >= gatherBytes) {
      yield gathered();
    }
  }
  if (filled > 0) {
    yield gathered();
  }
}

/** Gathers like {@link gatherChunks}, joining the chunks it keeps. */
async function* concatChunks(
  chunks: AsyncIterable<Buffer>,
): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const chunk of chunks) {
    if (pendingBytes > 0 && pendingBytes + chunk.length > chunkBytes) {
      yield Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
    }
    if (pendingBytes === 0 && chunk.length >= gatherBytes) {
      yield chunk;
      continue;
    }
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes >= gatherBytes) {
      yield Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
    }
  }
  if (pendingBytes > 0) {
    yield Buffer.concat(pending, pendingBytes);
  }
}
