/**
 * The local side of a copy: stats that report errors with the local path
 * and the next step, symlink resolution for a destination, and the
 * archive size estimate that progress needs.
 */
import { lstatSync, readdirSync, type Stats } from "node:fs";
import { lstat, readlink } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import type { WarningHandler } from "../archive/warning.js";
import { Code, codeOfNodeError, TransferError } from "../errors/index.js";

/** Symlinks followed for one destination before it fails, as in Linux. */
const maxSymlinks = 40;

/**
 * Throws InvalidArgument unless `path`, the local `role` of a copy, is a
 * non-empty string without a NUL byte. An empty path would otherwise
 * resolve to the current directory, which an unset shell variable makes
 * easy to send by mistake.
 */
export function checkLocalPath(
  path: string,
  role: "source" | "destination",
): void {
  if (typeof path !== "string" || path === "") {
    throw new TransferError(
      `invalid local ${role} ${JSON.stringify(path)}: give a path, or . ` +
        "for the current directory",
      Code.InvalidArgument,
    );
  }
  if (path.includes("\0")) {
    throw new TransferError(
      `invalid local ${role} ${JSON.stringify(path)}: it contains a NUL byte`,
      Code.InvalidArgument,
    );
  }
}

/**
 * Throws InvalidArgument when the last name of `path`, which a copy
 * stores in its archive, contains U+FFFD. Extraction skips such entries,
 * because the character also stands for bytes that are not UTF-8, so the
 * copy would write nothing and still succeed.
 */
export function checkCopiedName(path: string, display: string): void {
  const name = path.replace(/\/+$/, "").split("/").pop() ?? "";
  if (name.includes("\uFFFD")) {
    throw new TransferError(
      `cannot copy "${display}": its name contains U+FFFD, which extraction ` +
        "skips because it also stands for bytes that are not UTF-8; " +
        "rename it, or copy the folder that contains it",
      Code.InvalidArgument,
    );
  }
}

/**
 * Converts a failed local file system call to a TransferError that names
 * the path, and states plainly when the cause is a permission problem.
 */
export function localError(
  error: unknown,
  action: string,
  path: string,
): TransferError {
  if (error instanceof TransferError) {
    return error;
  }
  const errno = (error as NodeJS.ErrnoException).code;
  if (errno === "EACCES" || errno === "EPERM") {
    return new TransferError(
      `cannot ${action} "${path}": permission denied: check that the ` +
        "user running the copy may access it",
      Code.PermissionDenied,
      error,
    );
  }
  if (errno === "ENOENT") {
    // Node.js decodes command-line arguments as UTF-8 and puts U+FFFD in
    // place of other bytes, so such a name never reaches the file system.
    const advice = path.includes("\uFFFD")
      ? ": the name is not valid UTF-8, which the command line cannot " +
        "pass through; rename it, or copy the folder that contains it"
      : "";
    return new TransferError(
      `cannot ${action} "${path}": no such file or directory${advice}`,
      Code.NotFound,
      error,
    );
  }
  if (errno === "ENOTDIR") {
    return new TransferError(
      `cannot ${action} "${path}": a component of the path is not a ` +
        "directory",
      Code.FailedPrecondition,
      error,
    );
  }
  if (errno === "EROFS") {
    return new TransferError(
      `cannot ${action} "${path}": read-only file system`,
      Code.PermissionDenied,
      error,
    );
  }
  if (errno === "ENOSPC" || errno === "EDQUOT") {
    return new TransferError(
      `cannot ${action} "${path}": no space left on the device`,
      Code.ResourceExhausted,
      error,
    );
  }
  const reason = error instanceof Error ? error.message : String(error);
  return new TransferError(
    `cannot ${action} "${path}": ${reason}`,
    codeOfNodeError(error) ?? Code.Unknown,
    error,
  );
}

/** Returns the lstat of `path`, or undefined when nothing is there. */
export async function lstatOrMissing(
  path: string,
  shown = path,
): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      return undefined;
    }
    throw localError(error, "stat", shown);
  }
}

/**
 * Follows symlinks at the end of an absolute local path, the way a write
 * to it would, and returns the path they lead to with its lstat
 * (undefined when that path does not exist, as for a dangling symlink).
 */
export async function followLocalLinks(
  path: string,
  shown: string,
): Promise<{ path: string; stats: Stats | undefined }> {
  let current = path;
  for (let hops = 0; hops <= maxSymlinks; hops++) {
    const stats = await lstatOrMissing(current, shown);
    if (!stats?.isSymbolicLink()) {
      return { path: current, stats };
    }
    const target = await readlink(current).catch((error) => {
      throw localError(error, "read the symbolic link", shown);
    });
    current = resolve(dirname(current), target);
  }
  throw new TransferError(
    `cannot resolve "${shown}": more than ${maxSymlinks} symbolic links`,
    Code.InvalidArgument,
  );
}

/** Entries the size estimate reads between two turns of the event loop. */
const estimateSliceEntries = 256;

/**
 * Estimates the size of the tar archive of a local path, in bytes: the
 * header blocks of each entry (see {@link headerBytes}), file content
 * padded to blocks, and the end-of-archive marker. `topName` is the
 * archive name of the path itself. A file met again through another hard
 * link counts its header only, as the packer stores a link entry for it.
 * Devices, FIFOs and sockets, which a copy skips, and entries that fail
 * to list or lstat are left out.
 *
 * The walk makes synchronous calls, because each takes microseconds where
 * an asynchronous one adds a hop to the thread pool. It yields to the
 * event loop every {@link estimateSliceEntries} entries, so that it can
 * run beside the copy, and resolves with undefined once `signal` aborts.
 */
export async function estimateArchiveBytes(
  path: string,
  stats: Stats,
  topName: string,
  signal?: AbortSignal,
): Promise<number | undefined> {
  let bytes = entryBytes(stats, topName) + 1024;
  const directories = stats.isDirectory() ? [{ path, name: topName }] : [];
  const linkedInodes = new Set<string>();
  let sliced = 0;
  for (let next = directories.pop(); next; next = directories.pop()) {
    let names: string[];
    try {
      names = readdirSync(next.path);
    } catch {
      continue;
    }
    for (const child of names) {
      if (++sliced === estimateSliceEntries) {
        sliced = 0;
        await new Promise(setImmediate);
        if (signal?.aborted) {
          return undefined;
        }
      }
      const childPath = join(next.path, child);
      let childStats: Stats;
      try {
        childStats = lstatSync(childPath);
      } catch {
        continue;
      }
      const name = `${next.name}/${child}`;
      if (childStats.isFile() && childStats.nlink > 1) {
        const inode = `${childStats.dev}:${childStats.ino}`;
        if (linkedInodes.has(inode)) {
          bytes += headerBytes(name);
          continue;
        }
        linkedInodes.add(inode);
      }
      bytes += entryBytes(childStats, name);
      if (childStats.isDirectory()) {
        directories.push({ path: childPath, name });
      }
    }
  }
  return bytes;
}

/** Bytes of one entry in the archive: its header blocks and its content. */
function entryBytes(stats: Stats, name: string): number {
  if (stats.isDirectory()) {
    return headerBytes(`${name}/`);
  }
  if (!stats.isFile()) {
    return stats.isSymbolicLink() ? headerBytes(name) : 0;
  }
  // A size over the 11 octal digits of USTAR needs a PAX header too.
  const paxBytes = stats.size > 0o77777777777 ? 2 * 512 : 0;
  return headerBytes(name) + paxBytes + Math.ceil(stats.size / 512) * 512;
}

/**
 * Returns the header bytes of an entry name. USTAR holds an ASCII name in
 * one block, in its 100-byte name field or split at a `/` between that
 * field and the 155-byte prefix. Any other name takes three blocks: a PAX
 * header, its record and the entry's own header.
 */
function headerBytes(name: string): number {
  const bytes = Buffer.byteLength(name);
  if (bytes !== name.length) {
    return 3 * 512;
  }
  if (bytes <= 100) {
    return 512;
  }
  const split = name.indexOf("/", bytes - 101);
  return split >= 0 && split <= 155 ? 512 : 3 * 512;
}

/**
 * Returns a warning handler that renames the archive path in each
 * warning to the local path that `toLocal` gives, in the path argument
 * and where the message quotes it. Returns undefined without a handler.
 */
export function localWarnings(
  onWarning: WarningHandler | undefined,
  toLocal: (archivePath: string) => string,
): WarningHandler | undefined {
  if (onWarning === undefined) {
    return undefined;
  }
  return (code, message, path) => {
    const local = toLocal(path);
    onWarning(code, message.replace(`"${path}"`, `"${local}"`), local);
  };
}

/**
 * Converts an error of packing a local source, which names paths inside
 * the packed folder like container paths (`"/dir/file"`), to one that
 * names the local path, and adds what to check on a permission problem.
 */
export function localPackError(
  error: unknown,
  packRoot: string,
): TransferError {
  const failure = TransferError.from(error);
  const message = failure.rawMessage.replace(
    /"(\/[^"]*)"/,
    (_quoted, path: string) => `"${join(packRoot, path)}"`,
  );
  const advice =
    failure.code === Code.PermissionDenied
      ? ": check that the user running the copy may read it"
      : "";
  return new TransferError(`${message}${advice}`, failure.code, failure);
}
