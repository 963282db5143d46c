/**
 * The walk behind root-confined resolution: a stack of directory handles
 * from the root down, moved one component at a time.
 *
 * The root acts like `/` for every symlink met on the way, as after a
 * chroot: `..` stops at the root, an absolute symlink target starts again
 * at the root (a container's `/var/run -> /run` means `<root>/run`), and a
 * relative target continues from the symlink's directory. Each step opens
 * the next directory with O_NOFOLLOW through the handle of the previous
 * one (see directory-handle.ts), so no host path outside the root is ever
 * looked up.
 */
import { lstat, mkdir, readlink } from "node:fs/promises";
import { Code, TransferError } from "../errors/index.js";
import { displayPath, maxPathDepth, tooDeepError } from "./container-path.js";
import {
  childPath,
  closeDirectory,
  type DirectoryHandle,
  openChildDirectory,
} from "./directory-handle.js";
import { errnoOf, fileError } from "./file-error.js";

/** Symlinks followed in one resolution at most, as Linux's MAXSYMLINKS. */
export const maxSymlinks = 40;

/** Times one component may change type under us before resolution fails. */
const maxRetries = 8;

/**
 * A stack of directories from the root down to the current one. The
 * walk borrows the handles it starts from and closes only those it opened.
 */
export class DirectoryWalk {
  readonly #base: readonly DirectoryHandle[];
  #baseDepth: number;
  readonly #opened: DirectoryHandle[] = [];

  /** Starts at the last handle of `base`; `base[0]` must be the root. */
  constructor(base: readonly DirectoryHandle[]) {
    this.#base = base;
    this.#baseDepth = base.length;
  }

  /** The directory the walk has reached. */
  get current(): DirectoryHandle {
    return this.#opened.at(-1) ?? this.#base[this.#baseDepth - 1]!;
  }

  /** Goes one directory up, but never above the root. */
  async up(): Promise<void> {
    const last = this.#opened.pop();
    if (last !== undefined) {
      await closeDirectory(last);
    } else if (this.#baseDepth > 1) {
      this.#baseDepth--;
    }
  }

  /** Goes back to the root, for an absolute symlink target. */
  async toRoot(): Promise<void> {
    await this.close();
    this.#baseDepth = 1;
  }

  /** Enters a directory this walk opened and now owns. */
  enter(directory: DirectoryHandle): void {
    this.#opened.push(directory);
  }

  /** Returns the handles from the root to the current directory. */
  stack(): DirectoryHandle[] {
    return [...this.#base.slice(0, this.#baseDepth), ...this.#opened];
  }

  /** Closes every handle this walk opened. */
  async close(): Promise<void> {
    for (let last = this.#opened.pop(); last; last = this.#opened.pop()) {
      await closeDirectory(last);
    }
  }
}

export interface WalkDirectoriesOptions {
  /** Container path being resolved, for error messages. */
  subject: string;
  /** Creates missing directories with mode 0755 (before umask). */
  create?: boolean;
  /**
   * Stops at a missing component or one that is not a directory, and
   * returns the components from there on, instead of rejecting.
   */
  stopAtMissing?: boolean;
  /** Symlinks followed so far, shared by the walks of one resolution. */
  symlinks?: { count: number };
}

/**
 * Walks down `names` from the current directory of `walk`, following every
 * symlink inside the root. Resolves with the components left unwalked,
 * which is empty unless `stopAtMissing` stopped the walk. Rejects with
 * NotFound for a missing component and FailedPrecondition for one that is
 * not a directory.
 */
export async function walkDirectories(
  walk: DirectoryWalk,
  names: readonly string[],
  options: WalkDirectoriesOptions,
): Promise<string[]> {
  const pending = [...names];
  const symlinks = options.symlinks ?? { count: 0 };
  let retries = 0;
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === "" || name === ".") {
      continue;
    }
    if (name === "..") {
      await walk.up();
      continue;
    }

    if (walk.current.components.length >= maxPathDepth) {
      throw tooDeepError("resolve", options.subject);
    }
    const child = await enterChild(walk.current, name);
    if (child.kind === "directory") {
      walk.enter(child.handle);
      retries = 0;
      continue;
    }
    if (child.kind === "symlink") {
      symlinks.count++;
      if (symlinks.count > maxSymlinks) {
        throw tooManySymlinks(options.subject);
      }
      if (child.target.startsWith("/")) {
        await walk.toRoot();
      }
      pending.unshift(...child.target.split("/"));
      continue;
    }
    if (child.kind === "missing" && options.create) {
      await createDirectory(walk.current, name);
    } else if (child.kind !== "changed") {
      if (options.stopAtMissing) {
        return [name, ...pending];
      }
      throw notADirectory(child.kind, walk.current, name, options.subject);
    }

    // The component was created or changed type: look at it again.
    retries++;
    if (retries > maxRetries) {
      throw new TransferError(
        `failed to resolve "${options.subject}": ` +
          `"${displayPath([...walk.current.components, name])}" kept ` +
          "changing while it was resolved; retry when the container is idle",
        Code.Aborted,
      );
    }
    pending.unshift(name);
  }
  return [];
}

type Child =
  | { kind: "directory"; handle: DirectoryHandle }
  | { kind: "symlink"; target: string }
  | { kind: "missing" | "other" | "changed" };

async function enterChild(
  parent: DirectoryHandle,
  name: string,
): Promise<Child> {
  try {
    return {
      kind: "directory",
      handle: await openChildDirectory(parent, name),
    };
  } catch (error) {
    const errno = errnoOf(error);
    if (errno === "ENOENT") {
      return { kind: "missing" };
    }
    if (errno !== "ENOTDIR" && errno !== "ELOOP") {
      throw fileError(error, "open directory", childDisplay(parent, name));
    }
  }

  const path = childPath(parent, name);
  const stats = await lstat(path).catch((error) => {
    if (errnoOf(error) === "ENOENT") {
      return undefined;
    }
    throw fileError(error, "stat", childDisplay(parent, name));
  });
  if (stats === undefined || stats.isDirectory()) {
    return { kind: "changed" };
  }
  if (!stats.isSymbolicLink()) {
    return { kind: "other" };
  }
  const target = await symlinkTarget(parent, name);
  return target === undefined
    ? { kind: "changed" }
    : { kind: "symlink", target };
}

/**
 * Reads the target of the symlink `name`, or returns undefined when
 * `name` is not a symlink (or no longer exists).
 */
export async function symlinkTarget(
  parent: DirectoryHandle,
  name: string,
): Promise<string | undefined> {
  try {
    return await readlink(childPath(parent, name));
  } catch (error) {
    const errno = errnoOf(error);
    if (errno === "EINVAL" || errno === "ENOENT") {
      return undefined;
    }
    throw fileError(error, "read symlink", childDisplay(parent, name));
  }
}

async function createDirectory(
  parent: DirectoryHandle,
  name: string,
): Promise<void> {
  try {
    await mkdir(childPath(parent, name), 0o755);
  } catch (error) {
    if (errnoOf(error) !== "EEXIST") {
      throw fileError(error, "create directory", childDisplay(parent, name));
    }
  }
}

function notADirectory(
  kind: "missing" | "other",
  parent: DirectoryHandle,
  name: string,
  subject: string,
): TransferError {
  const component = childDisplay(parent, name);
  if (kind === "missing") {
    return new TransferError(
      `failed to resolve "${subject}": "${component}" does not exist`,
      Code.NotFound,
    );
  }
  return new TransferError(
    `failed to resolve "${subject}": "${component}" is not a directory`,
    Code.FailedPrecondition,
  );
}

export function tooManySymlinks(subject: string): TransferError {
  return new TransferError(
    `failed to resolve "${subject}": more than ${maxSymlinks} symlinks ` +
      "on the way (a symlink loop?)",
    Code.InvalidArgument,
  );
}

function childDisplay(parent: DirectoryHandle, name: string): string {
  return displayPath([...parent.components, name]);
}
