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
import {
  displayPath,
  maxPathDepth,
  pathComponents,
  tooDeepError,
} from "./container-path.js";
import {
  childPath,
  closeDirectory,
  type DirectoryHandle,
  openChildDirectory,
  selfPath,
  statDirectory,
} from "./directory-handle.js";
import { errnoOf, fileError } from "./file-error.js";
import { ArchiveBatch, chunkBytes, ReadBuffers } from "./pack-buffers.js";
import {
  addHeader,
  entryWhere,
  type PackContext,
  packFile,
} from "./pack-file.js";
import { openContainerRoot, openParent } from "./resolve.js";
import { deviceNumbers, endOfArchive, headerFields } from "./tar-header.js";
import type { WarningHandler } from "./warning.js";

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
  /**
   * Archive name of the top entry instead of the last component of the
   * path. The entries under it and their hard link targets are named
   * after it too. For the root, it replaces the `./` form with a
   * directory of that name.
   */
  topName?: string;
  /**
   * Skips character and block devices and FIFOs with a `type-skipped`
   * warning, as a copy takes only files, directories and links.
   */
  skipSpecialFiles?: boolean;
}

/**
 * Returns a stream of the tar archive of the container path `path` inside
 * the host directory `root`.
 *
 * `path` is cleaned like `cleanContainerPath`, and its intermediate
 * symlinks are followed inside the root, where an absolute target starts
 * at the root. The final component is not followed. The top entry is named
 * `topName` or after the last component of the cleaned path, so
 * `/tmp/a.txt` gives `a.txt`. Without `topName`, the root is named `./`
 * and its children have no prefix. A directory is walked depth first in
 * byte order of the names, unless `noWalk` is set. Symlinks are stored,
 * never followed.
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
 *
 * Headers and small files are gathered into chunks of at least 64 KiB;
 * larger reads are chunks of their own.
 */
export async function* packChunks(
  root: string,
  path: string,
  options: PackOptions = {},
): AsyncGenerator<Buffer> {
  throwIfAborted(options.signal);
  const readBuffers = options.reuseChunk && new ReadBuffers(options.reuseChunk);
  const context: PackContext = {
    signal: options.signal,
    noWalk: options.noWalk ?? false,
    warn: options.onWarning ?? (() => {}),
    firstLinks: new Map(),
    readBuffers,
    batch: new ArchiveBatch(readBuffers),
    skipSpecialFiles: options.skipSpecialFiles ?? false,
  };
  const names = pathComponents(path);
  const subject = displayPath(names);
  const batch = context.batch;

  const rootHandle = await openContainerRoot(root);
  try {
    if (names.length === 0) {
      const top = options.topName === undefined ? "." : options.topName;
      const stats = await statDirectory(rootHandle);
      addHeader(batch, headerFields(`${top}/`, "Directory", stats));
      if (!context.noWalk) {
        yield* packChildren(
          context,
          rootHandle,
          options.topName === undefined ? "" : `${top}/`,
        );
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
          options.topName ?? parent.name,
          stats,
          false,
        );
      } finally {
        await parent.release();
      }
    }
    batch.add(endOfArchive);
    batch.flush();
    for (let ready = batch.take(); ready; ready = batch.take()) {
      yield ready;
    }
  } finally {
    await closeDirectory(rootHandle);
  }
}

/**
 * Packs the child `name` of `parent` under the archive name `entryName`
 * and yields the chunks that are ready. Inside a walk (`inWalk`), a
 * symlink that cannot be read any more is skipped with a warning, as a
 * vanished file is. The path that the caller named fails instead.
 */
async function* packEntry(
  context: PackContext,
  parent: DirectoryHandle,
  name: string,
  entryName: string,
  stats: BigIntStats,
  inWalk = true,
): AsyncGenerator<Buffer> {
  throwIfAborted(context.signal);
  const batch = context.batch;
  if (stats.isDirectory()) {
    addHeader(batch, headerFields(`${entryName}/`, "Directory", stats));
    if (!context.noWalk) {
      yield* packDirectory(context, parent, name, entryName, stats);
    }
  } else if (stats.isFile()) {
    yield* packFile(context, parent, name, entryName, stats);
  } else if (stats.isSymbolicLink()) {
    const target = await readlink(childPath(parent, name)).catch((error) => {
      // ENOENT: the link is gone, or it is a /proc link such as
      // /proc/self that names nothing for a reader in another pid
      // namespace. EINVAL: the name is no longer a symlink.
      const errno = errnoOf(error);
      if (inWalk && (errno === "ENOENT" || errno === "EINVAL")) {
        return undefined;
      }
      throw fileError(error, "read symlink", entryWhere(parent, name));
    });
    if (target === undefined) {
      const where = entryWhere(parent, name);
      context.warn(
        "vanished",
        `skipped "${where}": the symlink could not be read ` +
          "(it vanished or changed during the walk, or it is a /proc link " +
          "that names nothing outside the container)",
        where,
      );
      return;
    }
    addHeader(batch, {
      ...headerFields(entryName, "SymbolicLink", stats),
      linkpath: target,
    });
  } else {
    addSpecialFile(context, parent, name, entryName, stats);
  }
  for (let ready = batch.take(); ready; ready = batch.take()) {
    yield ready;
  }
}

/**
 * Adds a device or FIFO entry, or skips it, a socket or an unknown type
 * with a warning.
 */
function addSpecialFile(
  context: PackContext,
  parent: DirectoryHandle,
  name: string,
  entryName: string,
  stats: BigIntStats,
): void {
  const where = entryWhere(parent, name);
  if (stats.isSocket()) {
    context.warn("socket-skipped", `skipped socket "${where}"`, where);
    return;
  }
  const kind = stats.isCharacterDevice()
    ? "character device"
    : stats.isBlockDevice()
      ? "block device"
      : stats.isFIFO()
        ? "FIFO"
        : undefined;
  if (kind === undefined) {
    context.warn("type-skipped", `skipped "${where}" of unknown type`, where);
    return;
  }
  if (context.skipSpecialFiles) {
    context.warn(
      "type-skipped",
      `skipped ${kind} "${where}": a copy takes only files, directories ` +
        "and links",
      where,
    );
    return;
  }
  if (kind === "FIFO") {
    addHeader(context.batch, headerFields(entryName, "FIFO", stats));
    return;
  }
  addHeader(context.batch, {
    ...headerFields(
      entryName,
      kind === "block device" ? "BlockDevice" : "CharacterDevice",
      stats,
    ),
    ...deviceNumbers(stats.rdev),
  });
}

async function* packDirectory(
  context: PackContext,
  parent: DirectoryHandle,
  name: string,
  entryName: string,
  stats: BigIntStats,
): AsyncGenerator<Buffer> {
  const where = entryWhere(parent, name);
  if (parent.components.length >= maxPathDepth) {
    throw tooDeepError("pack", where);
  }
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

    // The lstat comes right before the open, even for a name listed as a
    // regular file. A name that became a device or a FIFO since the
    // listing, perhaps long ago behind a large file, is never opened.
    const stats = lstatEntrySync(directory, name);
    if (stats === undefined) {
      const vanished = entryWhere(directory, name);
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
