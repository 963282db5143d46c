/**
 * Root-confined resolution of container paths: the exported
 * `resolveInRoot` for callers that need a host path, and the handle-based
 * lookups that packing and extraction use.
 */
import { join } from "node:path";
import { displayPath, pathComponents } from "./container-path.js";
import {
  closeDirectory,
  type DirectoryHandle,
  openRoot,
} from "./directory-handle.js";
import {
  DirectoryWalk,
  maxSymlinks,
  symlinkTarget,
  tooManySymlinks,
  walkDirectories,
} from "./directory-walk.js";
import { fileError } from "./file-error.js";

export interface ResolveOptions {
  /** Whether a symlink in the final component is followed. Default false. */
  followFinal?: boolean;
}

/**
 * Resolves the container path `path` inside the host directory `root` and
 * returns the host path it names. `path` is cleaned first (see
 * `cleanContainerPath`). Every intermediate symlink is followed inside the
 * root, as if the root were `/`, and the final one too with `followFinal`.
 * From the first component that does not exist, or that is not a
 * directory, the rest is appended lexically (still inside the root), so
 * the result may not exist.
 *
 * Rejects with NotFound when the root cannot be opened, InvalidArgument
 * after more than 40 symlinks, and PermissionDenied when a directory on
 * the way cannot be opened.
 *
 * NOTE: the result is a plain path. Using it later is a new lookup by
 * name, which a concurrent change inside the container (a directory
 * replaced by a symlink) can redirect outside the root. Use it for stat
 * and messages; the archive functions never use paths this way.
 */
export async function resolveInRoot(
  root: string,
  path: string,
  options: ResolveOptions = {},
): Promise<string> {
  const rootHandle = await openContainerRoot(root);
  const walk = new DirectoryWalk([rootHandle]);
  const subject = displayPath(pathComponents(path));
  const symlinks = { count: 0 };
  try {
    let names = pathComponents(path);
    for (;;) {
      const last = names.at(-1);
      if (last === undefined || last === "" || last === "." || last === "..") {
        // The path names a directory: walk all of it.
        const rest = await walkDirectories(walk, names, {
          subject,
          stopAtMissing: true,
          symlinks,
        });
        return lexicalHostPath(walk, rest);
      }

      const rest = await walkDirectories(walk, names.slice(0, -1), {
        subject,
        stopAtMissing: true,
        symlinks,
      });
      if (rest.length > 0) {
        return lexicalHostPath(walk, [...rest, last]);
      }
      const target = options.followFinal
        ? await symlinkTarget(walk.current, last)
        : undefined;
      if (target === undefined) {
        return join(walk.current.hostPath, last);
      }

      symlinks.count++;
      if (symlinks.count > maxSymlinks) {
        throw tooManySymlinks(subject);
      }
      if (target.startsWith("/")) {
        await walk.toRoot();
      }
      names = target.split("/");
    }
  } finally {
    await walk.close();
    await closeDirectory(rootHandle);
  }
}

/**
 * Opens the root directory. A root that cannot be opened is reported
 * without its host path, which means nothing to a remote caller.
 */
export async function openContainerRoot(
  root: string,
): Promise<DirectoryHandle> {
  try {
    return await openRoot(root);
  } catch (error) {
    throw fileError(error, "open the container root", "/");
  }
}

/** A directory opened for the caller, with a function that closes it. */
export interface DirectoryLease {
  /** The directory. */
  directory: DirectoryHandle;
  /** Every handle from the root down to `directory`. */
  stack: DirectoryHandle[];
  /** Closes the handles this lease opened. */
  release(): Promise<void>;
}

/**
 * Opens the directory at `names` below the last handle of `base`
 * (`base[0]` is the root), following every symlink inside the root.
 * With `create`, missing directories are created with mode 0755 (before
 * umask), like `mkdir -p`.
 */
export async function openDirectory(
  base: readonly DirectoryHandle[],
  names: readonly string[],
  options: { subject: string; create?: boolean },
): Promise<DirectoryLease> {
  const walk = new DirectoryWalk(base);
  try {
    await walkDirectories(walk, names, options);
  } catch (error) {
    await walk.close();
    throw error;
  }
  return {
    directory: walk.current,
    stack: walk.stack(),
    release: () => walk.close(),
  };
}

/**
 * Opens the parent directory of `names` (which must not be empty) like
 * {@link openDirectory} and returns it with the final name, which is not
 * looked up.
 */
export async function openParent(
  base: readonly DirectoryHandle[],
  names: readonly string[],
  options: { subject: string; create?: boolean },
): Promise<DirectoryLease & { name: string }> {
  const name = names.at(-1);
  if (name === undefined) {
    throw new Error("openParent needs at least one component");
  }
  const lease = await openDirectory(base, names.slice(0, -1), options);
  return { ...lease, name };
}

/**
 * Joins the components left after a missing one to the walk's current
 * directory, cleaned lexically and kept inside the root. Unlike the
 * kernel, which fails on `missing/..`, this lets `..` cancel the missing
 * component.
 */
function lexicalHostPath(walk: DirectoryWalk, rest: string[]): string {
  const root = walk.stack()[0]!;
  const current = walk.current.components;
  return join(
    root.hostPath,
    ...pathComponents([...current, ...rest].join("/")),
  );
}
