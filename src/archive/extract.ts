/**
 * Extracting a tar archive under a container directory (copy in).
 *
 * node-tar's Parser reads the headers (USTAR, PAX and GNU long names) and
 * hands over one entry at a time; EntryWriter writes it. The Parser gets
 * more input only after the current entry's body was taken, so memory
 * stays at about one source chunk.
 */
import type { Readable } from "node:stream";
import { Parser, type ReadEntry } from "tar";
import {
  abortReason,
  Code,
  orAbort,
  TransferError,
  throwIfAborted,
} from "../errors/index.js";
import { displayPath, pathComponents } from "./container-path.js";
import { closeDirectory } from "./directory-handle.js";
import { EntryWriter, type ExtractSummary } from "./entry-writer.js";
import { guardPaxHeaders } from "./pax-records.js";
import { openContainerRoot, openDirectory } from "./resolve.js";
import { blockBytes } from "./tar-header.js";
import type { WarningHandler } from "./warning.js";

export interface ExtractOptions {
  /**
   * Sets the numeric uid and gid of each entry from its header (`lchown`;
   * names are ignored), and keeps setuid and setgid bits. Otherwise new
   * files belong to the user of this process and those bits are dropped.
   * The sticky bit is kept either way. Default false.
   */
  preserveOwnership?: boolean;
  /** Stops extracting; the promise rejects with Canceled. */
  signal?: AbortSignal;
  /** Receives skipped entry types and directory metadata failures. */
  onWarning?: WarningHandler;
  /**
   * Bytes after the end-of-archive marker that are read and discarded, in
   * the background, before the source is released. Default 1 MiB, which
   * covers the record padding of tar tools (10 KiB for GNU tar).
   */
  maxTrailingBytes?: number;
}

/**
 * Source of archive bytes: a Node Readable or any async iterable. A
 * source must not change a chunk's bytes after yielding it, because the
 * writer may still read a body after the next chunk was requested. A
 * source that reuses memory must wait one event loop turn after that
 * request, as HandoffSink does, and lend the memory with
 * `lendReceivedMemory`, so that the writer can hold what it still needs.
 */
export type ArchiveSource = Readable | AsyncIterable<Uint8Array>;

const gzipMagic = [0x1f, 0x8b];

/**
 * Extracts the tar archive read from `source` under the container
 * directory `destPath` inside the host directory `root`, and resolves
 * with counts of what was written.
 *
 * `destPath` is cleaned like `cleanContainerPath` and its symlinks are
 * followed inside the root. Missing directories are created with mode
 * 0755 (before umask). Entry names are cleaned the same way below it, so
 * `../../etc/passwd` lands in `<dest>/etc/passwd`, and an entry naming
 * the destination itself is skipped. Symlinks on an entry's path are
 * followed as if the root were `/`, whether they come from the container
 * or from earlier entries. So an entry can land outside `destPath`
 * through one, as with `docker cp`, but not outside `root` (see the path
 * mode note in directory-handle.ts for the one exception).
 *
 * Existing names are handled like `docker cp` does:
 * - A directory entry creates the directory or keeps an existing one
 *   with its mode.
 * - A regular file is written under a hidden name and renamed over any
 *   existing non-directory, such as a file or a symlink, without
 *   following it. A hard link to the old file keeps the old content. A
 *   file of 64 KiB or less whose name is free is created under its name
 *   at once, which saves the rename.
 * - A symlink (its target stored as it is) or a hard link replaces an
 *   existing non-directory.
 * - Replacing a directory with a non-directory, or the reverse, fails
 *   with FailedPrecondition.
 *
 * A hard link target is cleaned like a name and must already exist.
 * Devices, FIFOs and other types are skipped with a `type-skipped`
 * warning. Permission bits and the sticky bit are applied, and setuid and
 * setgid dropped. Then mtimes are applied.
 *
 * The archive must end with its end-of-archive marker. Input that ends
 * before it, or inside an entry, fails with DataLoss, and a malformed or
 * compressed archive fails with InvalidArgument. Extraction is not
 * atomic: entries written before a failure stay.
 *
 * The source is read only as fast as entries are written. After the
 * marker the promise resolves, and up to `maxTrailingBytes` more bytes
 * are discarded in the background until the source ends, so that its
 * producer is not left blocked. Then, or at once on failure, the source
 * is released: a Readable is destroyed, and any other iterator returned.
 */
export async function extractArchive(
  root: string,
  destPath: string,
  source: ArchiveSource,
  options: ExtractOptions = {},
): Promise<ExtractSummary> {
  throwIfAborted(options.signal);
  const iterator = (source as AsyncIterable<Uint8Array>)[
    Symbol.asyncIterator
  ]();
  const destinationNames = pathComponents(destPath);
  let finished = false;

  const rootHandle = await openContainerRoot(root).catch((error) => {
    releaseSource(source, iterator);
    throw error;
  });
  try {
    const destination = await openDirectory([rootHandle], destinationNames, {
      subject: displayPath(destinationNames),
      create: true,
    });
    const writer = new EntryWriter({
      destination: destination.stack,
      destinationNames,
      preserveOwnership: options.preserveOwnership ?? false,
      warn: options.onWarning ?? (() => {}),
    });
    try {
      await readArchive(iterator, writer, options);
      throwIfAborted(options.signal);
      await writer.finish();
    } finally {
      await writer.close();
      await destination.release();
    }
    finished = true;
    return writer.summary;
  } finally {
    await closeDirectory(rootHandle);
    if (finished) {
      discardTrailing(source, iterator, options);
    } else {
      releaseSource(source, iterator);
    }
  }
}

/**
 * Feeds the source to a Parser and writes its entries until the
 * end-of-archive marker. Rejects with the first failure, after the entry
 * being written has stopped.
 */
async function readArchive(
  iterator: AsyncIterator<Uint8Array>,
  writer: EntryWriter,
  options: ExtractOptions,
): Promise<void> {
  const stop = new AbortController();
  const fail = (error: unknown) => {
    if (!stop.signal.aborted) {
      stop.abort(TransferError.from(error));
      current?.destroy();
    }
  };
  const onAbort = () => fail(abortReason(options.signal!));
  options.signal?.addEventListener("abort", onAbort, { once: true });

  let sawEnd = false;
  let current: ReadEntry | undefined;
  let writing: Promise<void> = Promise.resolve();
  const parser = new Parser({ zstd: false, brotli: false });
  const guardEntry = guardPaxHeaders(parser);
  // Returns whether the entry may be written; fails the extraction if not.
  const guarded = (entry: ReadEntry) => {
    try {
      guardEntry(entry);
      return true;
    } catch (error) {
      fail(error);
      return false;
    }
  };
  // Entries waiting to be written, in archive order. One link of the
  // `writing` chain writes every entry that arrives while it runs, so a
  // run of small files whose bodies node-tar has buffered costs no
  // promise per file.
  const arrived: { entry: ReadEntry; type: "known" | "unknown" }[] = [];
  let linked = false;
  const writeArrived = async () => {
    try {
      for (let next = arrived.shift(); next; next = arrived.shift()) {
        stop.signal.throwIfAborted();
        const { entry, type } = next;
        if (type === "unknown") {
          writer.skipUnknown(entry);
          continue;
        }
        const written = writer.writeBuffered(entry);
        if (written === false) {
          await writer.write(entry, stop.signal);
        } else if (written !== true) {
          await written;
        }
        // Discards a body the writer did not take and lets the Parser
        // emit the next entry, which arrives inside this call.
        entry.resume();
      }
    } finally {
      linked = false;
    }
  };
  const arrive = (entry: ReadEntry, type: "known" | "unknown") => {
    arrived.push({ entry, type });
    if (!linked) {
      linked = true;
      writing = writing.then(writeArrived).catch(fail);
    }
  };
  parser.on("eof", () => {
    sawEnd = true;
  });
  parser.on("warn", (code: string, message: string) => {
    // An archive with no entries at all (only the marker) draws this.
    if (!(sawEnd && message === "Unrecognized archive format")) {
      fail(invalidArchive(code, message));
    }
  });
  parser.on("error", (error: Error) =>
    fail(invalidArchive("TAR_ABORT", error.message)),
  );
  parser.on("ignoredEntry", (entry: ReadEntry) => {
    if (entry.meta) {
      const message =
        `extended header of ${entry.size} bytes is over the 1 MiB limit ` +
        "of node-tar's Parser";
      fail(invalidArchive("TAR_ENTRY_INVALID", message));
      return;
    }
    current = entry;
    if (guarded(entry)) {
      arrive(entry, "unknown");
    }
  });
  parser.on("entry", (entry: ReadEntry) => {
    current = entry;
    if (guarded(entry)) {
      arrive(entry, "known");
    }
  });

  try {
    await feedParser(iterator, parser, () => sawEnd, stop.signal);
    await orAbort(
      settle(() => writing),
      stop.signal,
    );
    if (!sawEnd) {
      throw new TransferError(
        "the archive is truncated: the input ended before the " +
          "end-of-archive marker (two zero blocks)",
        Code.DataLoss,
      );
    }
  } catch (error) {
    fail(error);
    // The writer stops at its next check; wait so that nothing is written
    // after the rejection.
    await settle(() => writing);
    throw stop.signal.reason;
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * Writes source chunks to the parser until the end-of-archive marker or
 * the end of the source, waiting for the parser to drain after each.
 *
 * The parser gets whole 512-byte blocks only. Given a partial block,
 * node-tar 7 keeps a view of it until the next write, which comes after
 * the source's next chunk, so the bytes after the last whole block of a
 * chunk are copied and written before the next chunk's. See
 * {@link ArchiveSource} for when a source may reuse a chunk's memory.
 */
async function feedParser(
  iterator: AsyncIterator<Uint8Array>,
  parser: Parser,
  sawEnd: () => boolean,
  stopped: AbortSignal,
): Promise<void> {
  const write = async (bytes: Buffer) => {
    if (bytes.length > 0 && !parser.write(bytes)) {
      await orAbort(onceDrained(parser), stopped);
    }
  };
  let head = Buffer.alloc(0);
  let partial = Buffer.alloc(0);
  let fed = 0;
  while (!sawEnd()) {
    const next = await orAbort(iterator.next(), stopped);
    if (next.done) {
      break;
    }
    let chunk = Buffer.from(
      next.value.buffer,
      next.value.byteOffset,
      next.value.length,
    );
    if (fed === 0 && head.length + chunk.length < gzipMagic.length) {
      head = Buffer.concat([head, chunk]);
      continue;
    }
    if (fed === 0) {
      chunk = Buffer.concat([head, chunk]);
      checkNotCompressed(chunk);
    }
    fed += chunk.length;
    if (partial.length > 0) {
      const completing = Math.min(blockBytes - partial.length, chunk.length);
      partial = Buffer.concat([partial, chunk.subarray(0, completing)]);
      chunk = chunk.subarray(completing);
      if (partial.length === blockBytes) {
        await write(partial);
        partial = Buffer.alloc(0);
      }
    }
    const whole = chunk.length - (chunk.length % blockBytes);
    await write(chunk.subarray(0, whole));
    if (whole < chunk.length) {
      partial = Buffer.from(chunk.subarray(whole));
    }
  }
  if (sawEnd()) {
    return;
  }
  await write(partial);
  if (fed === 0 && head.length === 0) {
    throw new TransferError(
      "the archive is empty: expected at least the end-of-archive marker " +
        "(two zero blocks)",
      Code.DataLoss,
    );
  }
  if (fed === 0) {
    // A single byte of input: let the parser report it as truncated.
    parser.end(head);
  } else {
    parser.end();
  }
}

/**
 * Reads and discards what follows the end-of-archive marker, in the
 * background, until the source ends or `maxTrailingBytes` were read, and
 * then releases the source. A source that fails now changes nothing.
 */
function discardTrailing(
  source: ArchiveSource,
  iterator: AsyncIterator<Uint8Array>,
  options: ExtractOptions,
): void {
  const limit = options.maxTrailingBytes ?? 1024 * 1024;
  const signal = options.signal;
  let onAbort = () => {};
  const aborted = new Promise<"aborted">((resolve) => {
    onAbort = () => resolve("aborted");
    signal?.addEventListener("abort", onAbort, { once: true });
  });

  const discard = async () => {
    let discarded = 0;
    while (discarded < limit && signal?.aborted !== true) {
      const next = await Promise.race([iterator.next(), aborted]);
      if (next === "aborted") {
        break;
      }
      if (next.done) {
        return;
      }
      discarded += next.value.length;
    }
    const failure =
      discarded >= limit
        ? new TransferError(
            `more than ${limit} bytes follow the end-of-archive marker: ` +
              "send the archive without trailing data",
            Code.InvalidArgument,
          )
        : undefined;
    releaseSource(source, iterator, failure);
  };
  discard()
    .catch(() => {})
    .finally(() => signal?.removeEventListener("abort", onAbort));
}

/**
 * Releases the source without waiting. A Readable is destroyed, with
 * `failure` if given, because its iterator's `return()` waits behind a
 * pending `next()`. Any other iterator is returned.
 */
function releaseSource(
  source: ArchiveSource,
  iterator: AsyncIterator<Uint8Array>,
  failure?: TransferError,
): void {
  if (typeof (source as Readable).destroy === "function") {
    (source as Readable).destroy(failure);
    return;
  }
  iterator.return?.().catch(() => {});
}

function checkNotCompressed(head: Buffer): void {
  if (head[0] === gzipMagic[0] && head[1] === gzipMagic[1]) {
    throw new TransferError(
      "the archive is gzip-compressed: send an uncompressed tar " +
        "(application/x-tar)",
      Code.InvalidArgument,
    );
  }
}

function invalidArchive(code: string, message: string): TransferError {
  if (message.startsWith("Truncated input")) {
    return new TransferError(
      `the archive is truncated: ${message}`,
      Code.DataLoss,
    );
  }
  return new TransferError(
    `invalid tar archive: ${message} (${code})`,
    Code.InvalidArgument,
  );
}

/** Resolves at the parser's next `drain`. */
function onceDrained(parser: Parser): Promise<void> {
  return new Promise((resolve) => parser.once("drain", () => resolve()));
}

/**
 * Waits until a promise chain that keeps growing has settled: `current`
 * returns the chain's latest link, which never rejects.
 */
async function settle(current: () => Promise<void>): Promise<void> {
  for (;;) {
    const link = current();
    await link;
    if (link === current()) {
      return;
    }
  }
}
