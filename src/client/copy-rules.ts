/**
 * The `docker cp` path rules, the same in both directions. They decide,
 * from what the source is and what exists at the destination, which
 * directory receives the copy and under which name.
 *
 * | source    | destination                 | result                        |
 * | --------- | --------------------------- | ----------------------------- |
 * | file      | missing                     | file created at DEST          |
 * | file      | missing, ends with `/`      | error: no such directory      |
 * | file      | existing file               | DEST overwritten              |
 * | file      | existing directory          | DEST/NAME                     |
 * | directory | missing                     | DEST created with the content |
 * | directory | existing file               | error                         |
 * | directory | existing directory          | DEST/NAME                     |
 * | `DIR/.`   | existing directory          | content merged into DEST      |
 *
 * A missing destination needs an existing parent directory. A file
 * never replaces a directory and a directory never replaces a file, and
 * neither replaces a device, a FIFO or a socket.
 */
import { posix } from "node:path";
import type { FileKind } from "../archive/file-kind.js";
import { Code, TransferError } from "../errors/index.js";

/** The source of a copy. */
export interface SourceSpec {
  isDirectory: boolean;
  /** Name the copy gets inside an existing directory destination. */
  name: string;
  /** Copy only the content of a directory (`DIR/.`, or the root). */
  contentsOnly: boolean;
  /** The source as the user wrote it, for messages. */
  display: string;
}

/** The destination of a copy, after its own symlinks were followed. */
export interface DestinationSpec {
  /** Absolute path, cleaned, without a trailing slash except for `/`. */
  path: string;
  /** The destination as the user wrote it ended with `/`. */
  trailingSlash: boolean;
  /** Kind of the existing object; undefined when nothing exists. */
  existing: ExistingKind | undefined;
  /** Formats a path on the destination's side for messages. */
  display: (path: string) => string;
}

/** Landing place of a copy, as the path rules decide it. */
export interface CopyPlan {
  /** Existing (or, for a missing destination, parent) directory. */
  directory: string;
  /**
   * Name of the copy inside `directory`; undefined when the content of
   * the source directory merges into `directory` itself.
   */
  name: string | undefined;
  /** The path that the copy creates, replaces or merges into. */
  target: string;
  /**
   * Whether `target` may already exist and has to be checked with
   * {@link checkReplace}: the case of a copy into an existing directory.
   */
  checkTarget: boolean;
}

/**
 * Applies the path rules. Rejects with InvalidArgument when the
 * destination's form does not fit the source, and with
 * FailedPrecondition when one type would replace the other. The caller
 * checks that the parent of a missing destination exists.
 */
export function planCopy(
  source: SourceSpec,
  destination: DestinationSpec,
): CopyPlan {
  const shown = destination.display(destination.path);

  if (destination.existing === "directory") {
    if (source.isDirectory && source.contentsOnly) {
      return {
        directory: destination.path,
        name: undefined,
        target: destination.path,
        checkTarget: false,
      };
    }
    return {
      directory: destination.path,
      name: source.name,
      target: posix.join(destination.path, source.name),
      checkTarget: true,
    };
  }

  if (destination.existing !== undefined) {
    if (destination.trailingSlash) {
      throw new TransferError(
        `cannot copy to "${shown}/": the destination is not a directory`,
        Code.InvalidArgument,
      );
    }
    checkReplace(source, destination.existing, shown);
    return {
      ...splitPath(destination.path),
      target: destination.path,
      checkTarget: false,
    };
  }

  if (destination.trailingSlash && !source.isDirectory) {
    throw new TransferError(
      `cannot copy "${source.display}" to "${shown}/": destination ` +
        "directory does not exist",
      Code.NotFound,
    );
  }
  return {
    ...splitPath(destination.path),
    target: destination.path,
    checkTarget: false,
  };
}

/** Kind of a copy's target before the copy, for {@link checkReplace}. */
export type ExistingKind = FileKind;

/**
 * Rejects a copy that would replace a directory with a non-directory or
 * the reverse, or a device, FIFO or socket with anything. `existing` is
 * what the target is now; undefined when it does not exist.
 */
export function checkReplace(
  source: SourceSpec,
  existing: ExistingKind | undefined,
  shownTarget: string,
): void {
  if (existing === undefined) {
    return;
  }
  if (existing !== "directory" && existing !== "other") {
    throw new TransferError(
      `cannot replace ${existing} "${shownTarget}" with the copy of ` +
        `"${source.display}": a copy writes only files, directories and ` +
        "links, so choose another destination",
      Code.FailedPrecondition,
    );
  }
  if (source.isDirectory && existing !== "directory") {
    throw replaceError(shownTarget, "directory", source.display);
  }
  if (!source.isDirectory && existing === "directory") {
    throw replaceError(shownTarget, "non-directory", source.display);
  }
}

/** Rejects a missing destination parent, naming it. */
export function missingParentError(shownParent: string): TransferError {
  return new TransferError(
    `destination parent directory "${shownParent}" does not exist: create ` +
      "it first",
    Code.NotFound,
  );
}

/** Rejects a destination parent that is not a directory, naming it. */
export function parentNotDirectoryError(shownParent: string): TransferError {
  return new TransferError(
    `destination parent "${shownParent}" is not a directory`,
    Code.FailedPrecondition,
  );
}

/**
 * Returns whether a path as the user wrote it names the content of a
 * directory rather than the directory: it ends with `/.`, or is `.`.
 */
export function isContentsPath(path: string): boolean {
  return posix.basename(path.replace(/\/+$/, "")) === ".";
}

/** Returns whether a path as the user wrote it ends with a separator. */
export function hasTrailingSlash(path: string): boolean {
  return path.length > 1 && (path.endsWith("/") || path.endsWith("/."));
}

function splitPath(path: string): { directory: string; name: string } {
  return { directory: posix.dirname(path), name: posix.basename(path) };
}

function replaceError(
  target: string,
  kind: "directory" | "non-directory",
  source: string,
): TransferError {
  const existing = kind === "directory" ? "non-directory" : "directory";
  return new TransferError(
    `cannot overwrite ${existing} "${target}" with ${kind} "${source}"`,
    Code.FailedPrecondition,
  );
}
