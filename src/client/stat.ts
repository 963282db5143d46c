/**
 * Stat of a container path. The Transfer service has no stat call, so a
 * stat is a copy out with `noWalk`, whose archive has exactly one entry:
 * its header is the stat.
 */
import { posix } from "node:path";
import { Writable } from "node:stream";
import { Parser, type ReadEntry } from "tar";
import { cleanContainerPath, guardPaxHeaders } from "../archive/index.js";
import { abortReason, Code, TransferError } from "../errors/index.js";
import { goWindowBytes } from "../streaming/index.js";
import type { Client } from "./client.js";
import {
  type ContainerLocation,
  checkContainerLocation,
  receiveArchive,
} from "./copy-archive.js";
import { hasTrailingSlash } from "./copy-rules.js";
import { explainUnsupported } from "./unsupported.js";

/** Kind of file system object, named after the tar entry types. */
export type ContainerFileType =
  | "file"
  | "directory"
  | "symlink"
  | "hardlink"
  | "char-device"
  | "block-device"
  | "fifo"
  | "other";

/** Metadata of a container path, as its archive header carries it. */
export interface ContainerPathStat {
  /** Last component of the path; `/` for the root. */
  name: string;
  type: ContainerFileType;
  /** Size in bytes of a regular file; 0 for every other type. */
  size: number;
  /** Permission bits with setuid, setgid and sticky. */
  mode: number;
  /** Modification time, whole seconds. */
  mtime: Date;
  /** Target of a symlink as stored; empty for every other type. */
  linkTarget: string;
  uid: number;
  gid: number;
}

export interface StatOptions {
  signal?: AbortSignal;
  /** Follows a symlink in the final component, inside the container. */
  followLink?: boolean;
}

/** A cleaned absolute container path and its stat, if it exists. */
export interface ContainerLookup {
  path: string;
  stat: ContainerPathStat | undefined;
}

/** Symlinks followed in one lookup before it fails, as in Linux. */
const maxSymlinks = 40;

/**
 * Above this file size a stat stops the transfer once the header arrived,
 * rather than receive the file's content.
 */
const abortAboveBytes = 64 * 1024;

/**
 * Stats a container path. The final symlink is not followed unless
 * `followLink` is set. Rejects with NotFound when the path does not
 * exist, and with the server's error otherwise.
 */
export async function statContainerPath(
  client: Client,
  location: ContainerLocation,
  options: StatOptions = {},
): Promise<ContainerPathStat> {
  // As in POSIX, a trailing slash follows a final symlink and requires a
  // directory.
  const trailingSlash = hasTrailingSlash(location.path);
  const found = await explainUnsupported(
    client,
    lookupContainerPath(client, location, {
      ...options,
      followLink: options.followLink || trailingSlash,
    }),
  );
  if (found.stat === undefined) {
    throw new TransferError(
      `"${location.containerId}:${found.path}": no such file or directory ` +
        "in the container",
      Code.NotFound,
    );
  }
  if (trailingSlash && found.stat.type !== "directory") {
    throw new TransferError(
      `"${location.containerId}:${location.path}": not a directory ` +
        `(it is a ${found.stat.type}); remove the trailing / or /. to stat it`,
      Code.FailedPrecondition,
    );
  }
  return found.stat;
}

/**
 * Stats a container path like {@link statContainerPath}, but resolves
 * with an undefined stat when the path does not exist. With `followLink`,
 * the returned path is the one the symlinks lead to.
 */
export async function lookupContainerPath(
  client: Client,
  location: ContainerLocation,
  options: StatOptions = {},
): Promise<ContainerLookup> {
  checkContainerLocation(location);
  let path = `/${cleanContainerPath(location.path)}`;
  for (let hops = 0; hops <= maxSymlinks; hops++) {
    const stat = await readStat(
      client,
      { containerId: location.containerId, path },
      options.signal,
    );
    if (!options.followLink || stat?.type !== "symlink") {
      return { path, stat };
    }

    const target = stat.linkTarget;
    const next = target.startsWith("/")
      ? target
      : posix.join(posix.dirname(path), target);
    path = `/${cleanContainerPath(next)}`;
  }
  throw new TransferError(
    `failed to resolve "${location.containerId}:${location.path}": more ` +
      `than ${maxSymlinks} symbolic links`,
    Code.InvalidArgument,
  );
}

/** Returns whether an error of a copy out means a missing path. */
export function isMissingPathError(error: unknown): boolean {
  // Our server sends NotFound with "no such file or directory" or, for a
  // missing parent, '"/a" does not exist'. Go servers send the errno text
  // with Unknown. A missing container or stream is NotFound too, but its
  // message reads "not found".
  const { rawMessage } = TransferError.from(error);
  return /no such file or directory|" does not exist/i.test(rawMessage);
}

async function readStat(
  client: Client,
  location: ContainerLocation,
  signal: AbortSignal | undefined,
): Promise<ContainerPathStat | undefined> {
  const stop = new AbortController();
  let found: ContainerPathStat | undefined;
  let unreadable: unknown;
  const parser = new Parser({
    onReadEntry: (entry: ReadEntry) => {
      try {
        guardEntry(entry);
      } catch (error) {
        unreadable ??= error;
        stop.abort(error);
      }
      if (found === undefined && unreadable === undefined) {
        found = entryStat(entry);
        if (entry.size > abortAboveBytes) {
          stop.abort(new Error("stat header received"));
        }
      }
      entry.resume();
    },
  });
  const guardEntry = guardPaxHeaders(parser);
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (found === undefined) {
        parser.write(chunk);
      }
      callback();
    },
  });

  try {
    await receiveArchive(client, location, sink, {
      noWalk: true,
      // Only the first header is read. With containerd's own window, a
      // server sends at most 64 KiB ahead of the reader, rather than
      // megabytes of a large file's content that the stat then drops.
      windowBytes: goWindowBytes,
      signal: signal ? AbortSignal.any([signal, stop.signal]) : stop.signal,
    });
  } catch (error) {
    if (unreadable !== undefined) {
      throw statError(unreadable, location, signal);
    }
    if (found !== undefined && stop.signal.aborted && !signal?.aborted) {
      return found;
    }
    if (isMissingPathError(error)) {
      return undefined;
    }
    throw statError(error, location, signal);
  }
  if (found === undefined) {
    throw new TransferError(
      `failed to stat "${location.containerId}:${location.path}": the ` +
        "server sent an archive without entries",
      Code.DataLoss,
    );
  }
  return found;
}

/**
 * Names the container and path in a failed stat. A stat is a copy out,
 * so the server may also fail it for a file it cannot read.
 */
function statError(
  error: unknown,
  location: ContainerLocation,
  signal: AbortSignal | undefined,
): TransferError {
  const failure = signal?.aborted
    ? abortReason(signal)
    : TransferError.from(error);
  const reason = failure.rawMessage.replace(/^stream \S+ failed: /, "");
  return new TransferError(
    `failed to stat "${location.containerId}:${location.path}": ${reason}`,
    failure.code,
    failure,
  );
}

function entryStat(entry: ReadEntry): ContainerPathStat {
  const bare = entry.path.replace(/\/+$/, "").replace(/^(\.\/)+/, "");
  const type = entryType(entry.type);
  return {
    name: bare === "" || bare === "." ? "/" : posix.basename(bare),
    type,
    size: type === "file" ? entry.size : 0,
    mode: (entry.mode ?? 0) & 0o7777,
    mtime: entry.mtime ?? new Date(0),
    linkTarget: type === "symlink" ? (entry.linkpath ?? "") : "",
    uid: entry.uid ?? 0,
    gid: entry.gid ?? 0,
  };
}

function entryType(type: ReadEntry["type"]): ContainerFileType {
  switch (type) {
    case "File":
    case "OldFile":
    case "ContiguousFile":
      return "file";
    case "Directory":
      return "directory";
    case "SymbolicLink":
      return "symlink";
    case "Link":
      return "hardlink";
    case "CharacterDevice":
      return "char-device";
    case "BlockDevice":
      return "block-device";
    case "FIFO":
      return "fifo";
    default:
      return "other";
  }
}
