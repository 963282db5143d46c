/**
 * Writes archive entries under the destination directory, confined to the
 * container root.
 *
 * Every entry's parent is opened through the directory handles (see
 * directory-handle.ts). The final component is then created or replaced
 * by entry-target.ts, which never follows a symlink there. Modes, owners
 * and times are set through open descriptors for files and directories,
 * and with `lchown` and `lutimes` for symlinks.
 */
import {
  type FileHandle,
  lchown,
  lstat,
  lutimes,
  open,
  unlink,
} from "node:fs/promises";
import { performance } from "node:perf_hooks";
import { setImmediate as nextTurn } from "node:timers/promises";
import type { ReadEntry } from "tar";
import { Code, orAbort, TransferError } from "../errors/index.js";
import {
  holdReceivedMemory,
  releaseReceivedMemory,
} from "../util/received-memory.js";
import { BodyWriter } from "./body-writer.js";
import {
  displayPath,
  maxPathDepth,
  pathComponents,
  shortPath,
  tooDeepError,
} from "./container-path.js";
import { childPath, type DirectoryHandle } from "./directory-handle.js";
import { entryTimes, ownerOf, permissions } from "./entry-metadata.js";
import {
  createHardLink,
  createSymlink,
  createTempSibling,
  type EntryParent,
  noFollowDirectory,
  openOrCreateDirectory,
  placeFile,
  writeSmallFile,
} from "./entry-target.js";
import { errnoOf, fileError } from "./file-error.js";
import { type DirectoryLease, openDirectory, openParent } from "./resolve.js";
import type { WarningHandler } from "./warning.js";

export interface EntryWriterOptions {
  /** Handles from the root down to the destination directory. */
  destination: DirectoryHandle[];
  /** Cleaned components of the requested destination, for messages. */
  destinationNames: string[];
  preserveOwnership: boolean;
  warn: WarningHandler;
}

/** Counts of an extraction. */
export interface ExtractSummary {
  /** Entries written: directories, files, symlinks and hard links. */
  entries: number;
  /** Entries skipped: the destination itself and unsupported types. */
  skipped: number;
  /** Bytes of file content written. */
  bytes: number;
}

/**
 * Largest file written with synchronous calls, in bytes. Its body is held
 * in memory until it is complete, so this also bounds that memory.
 */
export const smallFileBytes = 64 * 1024;

/**
 * Maximum time in milliseconds that the writer spends in synchronous file
 * calls before it lets the event loop serve other work.
 */
const maxSyncMs = 10;

interface DeferredDirectory {
  names: string[];
  /** Permission bits to set at the end; undefined to keep the mode. */
  mode: number | undefined;
  times: { atime: Date; mtime: Date } | undefined;
}

/**
 * Writes entries one at a time, in archive order. Directory times, and
 * modes that lack owner rwx, are applied by {@link finish}, deepest
 * first, so that writing children cannot undo or block them.
 */
export class EntryWriter {
  readonly summary: ExtractSummary = { entries: 0, skipped: 0, bytes: 0 };
  readonly #options: EntryWriterOptions;
  // setuid, setgid and sticky come with the owner: kept only when the
  // owner is set from the archive too.
  readonly #keepSpecial: boolean;
  readonly #deferred: DeferredDirectory[] = [];
  #parent: { key: string; lease: DirectoryLease } | undefined;
  /**
   * Set when an entry replaced or created a non-directory, which can
   * change how a cached parent path resolves. The cached parent stays
   * open until the next lookup, because the current entry still uses it.
   */
  #parentStale = false;
  readonly #markStale = () => {
    this.#parentStale = true;
  };
  /** When the writer last let the event loop run, from `performance.now()`. */
  #lastYield = performance.now();

  constructor(options: EntryWriterOptions) {
    this.#options = options;
    this.#keepSpecial = options.preserveOwnership;
  }

  /**
   * Writes one entry. A file's body is read here, and the caller discards
   * any other body. `stop` aborts a body copy in progress, and the caller
   * also destroys the entry to wake a pending read.
   */
  async write(entry: ReadEntry, stop: AbortSignal): Promise<void> {
    const names = entryNames(entry.path);
    const where = this.#display(names);
    if (hasUndecodedBytes(entry)) {
      this.#options.warn(
        "name-skipped",
        `skipped "${where}": its name or link target contains U+FFFD, ` +
          "which stands for bytes that are not valid UTF-8, so it could " +
          "be written under the name of another entry",
        where,
      );
      this.summary.skipped++;
      return;
    }
    if (names.length === 0) {
      // The destination itself, such as the `./` of a packed root. Any
      // other type under a name such as `..` would replace it.
      if (entry.type !== "Directory") {
        this.#options.warn(
          "name-skipped",
          `skipped the ${entry.type} entry "${shortPath(entry.path)}": its ` +
            "name leads to the destination itself",
          where,
        );
      }
      this.summary.skipped++;
      return;
    }

    switch (entry.type) {
      case "Directory":
      case "GNUDumpDir":
        await this.#writeDirectory(entry, names, where);
        break;
      case "File":
      case "OldFile":
      // A contiguous file is a regular file to Linux, as to GNU tar.
      case "ContiguousFile":
        await this.#writeFile(entry, names, where, stop);
        break;
      case "SymbolicLink":
        await this.#writeSymlink(entry, names, where);
        break;
      case "Link":
        await this.#writeHardLink(entry, names, where);
        break;
      default:
        this.#options.warn(
          "type-skipped",
          `skipped "${where}": entries of type ${entry.type} are not extracted`,
          where,
        );
        this.summary.skipped++;
        return;
    }
    this.summary.entries++;
  }

  /**
   * Writes a small file entry at once, with synchronous calls, when that
   * needs no wait: node-tar has buffered its whole body, its parent is
   * the directory kept open from the previous entry, and the writer has
   * not run for {@link maxSyncMs} without a break. Otherwise it returns
   * false, having done nothing, and the caller then uses {@link write}.
   * It returns a promise when the file was written under a hidden name
   * that must still be moved into place, and true when the entry is done.
   */
  writeBuffered(entry: ReadEntry): boolean | Promise<void> {
    const isFile =
      entry.type === "File" ||
      entry.type === "OldFile" ||
      entry.type === "ContiguousFile";
    if (!isFile || entry.size > smallFileBytes || entry.blockRemain !== 0) {
      return false;
    }
    if (hasUndecodedBytes(entry)) {
      return false;
    }
    if (performance.now() - this.#lastYield > maxSyncMs) {
      return false;
    }
    const names = entryNames(entry.path);
    const parent = this.#cachedParent(names);
    if (parent === undefined) {
      return false;
    }

    const where = this.#display(names);
    const body = entry.read() as Buffer | null;
    const chunks = body === null ? [] : [body];
    // Held while it is written, as on the iterator's path.
    for (const chunk of chunks) {
      holdReceivedMemory(chunk);
    }
    let busy: EntryParent | undefined;
    try {
      busy = this.#writeSmallBody(entry, parent, chunks, where);
    } finally {
      for (const chunk of chunks) {
        releaseReceivedMemory(chunk);
      }
    }
    this.summary.entries++;
    if (busy === undefined) {
      return true;
    }
    return placeFile(busy, parent, where, this.#markStale);
  }

  /**
   * Counts and reports an entry whose typeflag node-tar does not know;
   * the Parser discards its body itself.
   */
  skipUnknown(entry: ReadEntry): void {
    const where = this.#display(pathComponents(entry.path));
    this.#options.warn(
      "type-skipped",
      `skipped "${where}": its typeflag is not a known entry type`,
      where,
    );
    this.summary.skipped++;
  }

  /**
   * Applies the deferred directory modes and times, deepest first. A
   * directory that cannot be reached any more gets a `metadata-failed`
   * warning.
   */
  async finish(): Promise<void> {
    await this.close();
    for (const directory of this.#deferred.reverse()) {
      const where = this.#display(directory.names);
      try {
        await this.#applyDeferred(directory, where);
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        this.#options.warn(
          "metadata-failed",
          `failed to set the mode or times of "${where}": ${reason}`,
          where,
        );
      }
    }
  }

  /** Closes the cached parent directory. */
  async close(): Promise<void> {
    await this.#parent?.lease.release();
    this.#parent = undefined;
  }

  async #writeDirectory(
    entry: ReadEntry,
    names: string[],
    where: string,
  ): Promise<void> {
    const parent = await this.#openParent(names, where);
    const mode = permissions(entry.mode, 0o755, this.#keepSpecial);
    const { directory, created } = await openOrCreateDirectory(parent, where);

    try {
      await this.#chown(directory, entry, where);
      if (created) {
        await directory.chmod(mode | 0o700);
      }
    } finally {
      await directory.close();
    }
    // The mode is set again at the end when the owner bits were added for
    // the extraction or the special bits may have been cleared since.
    const modeDiffers = (mode & 0o700) !== 0o700 || (mode & 0o7000) !== 0;
    this.#deferred.push({
      names,
      mode: created && modeDiffers ? mode : undefined,
      times: entryTimes(entry),
    });
  }

  async #writeFile(
    entry: ReadEntry,
    names: string[],
    where: string,
    stop: AbortSignal,
  ): Promise<void> {
    const parent = await this.#openParent(names, where);
    if (entry.size <= smallFileBytes) {
      await this.#writeSmallFile(entry, parent, where, stop);
      return;
    }
    const { temp, file } = await createTempSibling(parent, where);
    const body = new BodyWriter(file, where);
    try {
      for await (const chunk of bodyChunks(entry, stop)) {
        // Taken at once, before the source can reuse the memory.
        holdReceivedMemory(chunk);
        stop.throwIfAborted();
        await body.add(chunk);
        // A stop during the wait destroyed the entry, and minipass 7.1 never
        // settles a next() called after that, so check again first.
        stop.throwIfAborted();
        this.summary.bytes += chunk.length;
      }
      await body.finish();
      stop.throwIfAborted();
      if (body.bytes !== entry.size) {
        throw truncatedFile(where, body.bytes, entry.size);
      }

      await this.#chown(file, entry, where);
      const mode = permissions(entry.mode, 0o644, this.#keepSpecial);
      await file.chmod(mode).catch((error) => {
        throw fileError(error, "set the mode of", where);
      });
      const times = entryTimes(entry);
      if (times !== undefined) {
        await file.utimes(times.atime, times.mtime).catch((error) => {
          throw fileError(error, "set the times of", where);
        });
      }
    } catch (error) {
      await body.settle();
      await file.close();
      await unlink(temp.path).catch(() => {});
      throw error;
    }
    await file.close();
    await placeFile(temp, parent, where, this.#markStale);
  }

  /**
   * Reads the whole body of a small file and writes the file with
   * synchronous calls, through the same hidden name and rename as a large
   * one.
   */
  async #writeSmallFile(
    entry: ReadEntry,
    parent: EntryParent,
    where: string,
    stop: AbortSignal,
  ): Promise<void> {
    const body: Buffer[] = [];
    try {
      if (entry.blockRemain === 0) {
        // The Parser has written the whole body and ended the entry, so
        // the body is taken without waiting on the entry's iterator.
        stop.throwIfAborted();
        const whole: Buffer | null = entry.read();
        if (whole !== null) {
          holdReceivedMemory(whole);
          body.push(whole);
        }
      } else {
        for await (const chunk of bodyChunks(entry, stop)) {
          // Taken at once, before the source can reuse the memory.
          holdReceivedMemory(chunk);
          body.push(chunk);
          stop.throwIfAborted();
        }
      }
      stop.throwIfAborted();
      const busy = this.#writeSmallBody(entry, parent, body, where);
      if (busy !== undefined) {
        await placeFile(busy, parent, where, this.#markStale);
      }
    } finally {
      for (const chunk of body) {
        releaseReceivedMemory(chunk);
      }
    }
    if (performance.now() - this.#lastYield > maxSyncMs) {
      await nextTurn();
      this.#lastYield = performance.now();
    }
  }

  /**
   * Writes a small file whose whole body is `body`, with synchronous
   * calls. Returns the hidden name it was written under when a busy name
   * (a mount point) kept it from being renamed into place.
   */
  #writeSmallBody(
    entry: ReadEntry,
    parent: EntryParent,
    body: Buffer[],
    where: string,
  ): EntryParent | undefined {
    const received = body.reduce((total, chunk) => total + chunk.length, 0);
    if (received !== entry.size) {
      throw truncatedFile(where, received, entry.size);
    }
    const metadata = {
      mode: permissions(entry.mode, 0o644, this.#keepSpecial),
      owner: this.#options.preserveOwnership
        ? ownerOf(entry, where)
        : undefined,
      times: entryTimes(entry),
    };
    const busy = writeSmallFile(parent, body, metadata, where, this.#markStale);
    this.summary.bytes += received;
    return busy;
  }

  async #writeSymlink(
    entry: ReadEntry,
    names: string[],
    where: string,
  ): Promise<void> {
    const parent = await this.#openParent(names, where);
    await createSymlink(parent, entry.linkpath ?? "", where, this.#markStale);
    this.#markStale();

    if (this.#options.preserveOwnership) {
      const { uid, gid } = ownerOf(entry, where);
      await lchown(parent.path, uid, gid).catch((error) => {
        throw fileError(error, "change the owner of", where);
      });
    }
    const times = entryTimes(entry);
    if (times !== undefined) {
      await lutimes(parent.path, times.atime, times.mtime).catch((error) => {
        throw fileError(error, "set the times of", where);
      });
    }
  }

  async #writeHardLink(
    entry: ReadEntry,
    names: string[],
    where: string,
  ): Promise<void> {
    const targetNames = pathComponents(entry.linkpath ?? "");
    const targetWhere = this.#display(targetNames);
    if (targetNames.length === 0) {
      throw new TransferError(
        `invalid hard link "${where}": it points to the destination ` +
          "directory itself",
        Code.InvalidArgument,
      );
    }

    const target = await openParent(this.#options.destination, targetNames, {
      subject: targetWhere,
    });
    try {
      const targetPath = childPath(target.directory, target.name);
      const targetStats = await lstat(targetPath, { bigint: true }).catch(
        (error) => {
          if (errnoOf(error) === "ENOENT") {
            throw new TransferError(
              `invalid hard link "${where}": its target "${targetWhere}" ` +
                "does not exist; a hard link must follow the entry it links to",
              Code.NotFound,
            );
          }
          throw fileError(error, "stat", targetWhere);
        },
      );
      if (targetStats.isDirectory()) {
        throw new TransferError(
          `invalid hard link "${where}": its target "${targetWhere}" is a ` +
            "directory",
          Code.InvalidArgument,
        );
      }
      const parent = await this.#openParent(names, where);
      await createHardLink(
        targetPath,
        targetStats,
        parent,
        where,
        this.#markStale,
      );
      this.#markStale();
      if (this.#options.preserveOwnership) {
        const { uid, gid } = ownerOf(entry, where);
        await lchown(parent.path, uid, gid).catch((error) => {
          throw fileError(error, "change the owner of", where);
        });
      }
    } finally {
      await target.release();
    }
  }

  async #chown(
    file: FileHandle,
    entry: ReadEntry,
    where: string,
  ): Promise<void> {
    if (!this.#options.preserveOwnership) {
      return;
    }
    const { uid, gid } = ownerOf(entry, where);
    await file.chown(uid, gid).catch((error) => {
      throw fileError(error, "change the owner of", where);
    });
  }

  /**
   * Returns the parent of `names` if it is the directory kept open from
   * the previous entry and still valid, without opening anything.
   */
  #cachedParent(names: string[]): EntryParent | undefined {
    const cached = this.#parent;
    if (cached === undefined || this.#parentStale || names.length === 0) {
      return undefined;
    }
    const key = names.slice(0, -1).join("/");
    if (cached.key !== key) {
      return undefined;
    }
    const directory = cached.lease.directory;
    const name = names[names.length - 1]!;
    return { directory, name, path: childPath(directory, name) };
  }

  /**
   * Opens the parent of `names`, creating missing directories, and keeps
   * it open for the next entry in the same directory.
   */
  async #openParent(names: string[], where: string): Promise<EntryParent> {
    const parentNames = names.slice(0, -1);
    const key = parentNames.join("/");
    if (this.#parent?.key !== key || this.#parentStale) {
      await this.close();
      this.#parentStale = false;
      const lease = await openDirectory(
        this.#options.destination,
        parentNames,
        { subject: where, create: true },
      );
      this.#parent = { key, lease };
    }
    const directory = this.#parent.lease.directory;
    const name = names[names.length - 1]!;
    return { directory, name, path: childPath(directory, name) };
  }

  async #applyDeferred(deferred: DeferredDirectory, where: string) {
    if (deferred.mode === undefined && deferred.times === undefined) {
      return;
    }
    const parent = await openParent(this.#options.destination, deferred.names, {
      subject: where,
    });
    try {
      const path = childPath(parent.directory, parent.name);
      const directory = await open(path, noFollowDirectory);
      try {
        if (deferred.mode !== undefined) {
          await directory.chmod(deferred.mode);
        }
        if (deferred.times !== undefined) {
          await directory.utimes(deferred.times.atime, deferred.times.mtime);
        }
      } finally {
        await directory.close();
      }
    } finally {
      await parent.release();
    }
  }

  #display(names: string[]): string {
    return displayPath([...this.#options.destinationNames, ...names]);
  }
}

/**
 * Returns the cleaned components of an entry's name, and fails before
 * anything is resolved for a name below more than {@link maxPathDepth}
 * directories. The walk to its parent applies the same limit to the
 * destination's depth and the name's together.
 */
function entryNames(path: string): string[] {
  const names = pathComponents(path);
  if (names.length > maxPathDepth + 1) {
    throw tooDeepError("extract", displayPath(names));
  }
  return names;
}

function truncatedFile(
  where: string,
  received: number,
  size: number | undefined,
): TransferError {
  return new TransferError(
    `the archive is truncated: "${where}" got ${received} of its ` +
      `${size} bytes`,
    Code.DataLoss,
  );
}

/**
 * Yields the body chunks of `entry`. A stop rejects a read that is
 * waiting for data. Destroying the entry rejects it too, but the
 * extractor destroys only the entry the parser emitted last, which need
 * not be the one being read.
 */
async function* bodyChunks(
  entry: ReadEntry,
  stop: AbortSignal,
): AsyncGenerator<Buffer> {
  const chunks = (entry as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  for (;;) {
    const next = await orAbort(chunks.next(), stop);
    if (next.done) {
      return;
    }
    yield next.value;
  }
}

/**
 * Returns whether node-tar replaced bytes of the entry's name or link
 * target that are not valid UTF-8 with U+FFFD. Two different names can then decode to
 * the same text. A name that really contains U+FFFD is caught too.
 */
function hasUndecodedBytes(entry: ReadEntry): boolean {
  return (
    entry.path.includes("\uFFFD") || (entry.linkpath ?? "").includes("\uFFFD")
  );
}
