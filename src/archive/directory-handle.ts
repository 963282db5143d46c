/**
 * Directories inside a container root, pinned by open descriptors.
 *
 * Node has no `openat`, but on Linux the magic link `/proc/self/fd/N`
 * leads to the exact directory that descriptor N refers to, wherever it
 * was moved since. A path `/proc/self/fd/N/name` is therefore looked up
 * in that directory only, like `openat(N, name)`, and a concurrent rename
 * or symlink swap of an ancestor cannot redirect it. Every lookup below
 * the root goes through {@link childPath} with a single component, so
 * only that last component is looked up by name.
 *
 * NOTE: where `/proc/self/fd` does not work (macOS, or Linux without
 * /proc), handles contain host paths instead (path mode). Each component
 * is still checked with O_NOFOLLOW, but a concurrent rename or symlink
 * swap of an ancestor between that check and a later call can redirect
 * the call, even outside the root.
 */
import { type BigIntStats, constants } from "node:fs";
import { type FileHandle, lstat, open, stat } from "node:fs/promises";
import { join } from "node:path";

/** A directory reached inside the root. */
export interface DirectoryHandle {
  /** Open descriptor that pins the directory, or undefined in path mode. */
  readonly file: FileHandle | undefined;
  /** Host path of the directory when it was reached, for messages. */
  readonly hostPath: string;
  /** Components of the directory's container path, from the root. */
  readonly components: readonly string[];
}

const directoryFlags =
  constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

let pathModeForced = false;

/**
 * Forces path mode even where `/proc/self/fd` works, so that tests can
 * cover both modes. Internal: not part of the package API.
 */
export function forcePathMode(forced: boolean): void {
  pathModeForced = forced;
}

/**
 * Opens the root directory. The root path itself is trusted and followed
 * if it is a symlink. Rejects with the Node error when it cannot be
 * opened.
 */
export async function openRoot(root: string): Promise<DirectoryHandle> {
  const file = await open(root, constants.O_RDONLY | constants.O_DIRECTORY);
  let pinned = false;
  try {
    pinned = !pathModeForced && (await procLinkWorks(file));
  } finally {
    if (!pinned) {
      await file.close();
    }
  }
  return { file: pinned ? file : undefined, hostPath: root, components: [] };
}

/** Returns the path that names `name` inside `directory` and nowhere else. */
export function childPath(directory: DirectoryHandle, name: string): string {
  if (directory.file === undefined) {
    return join(directory.hostPath, name);
  }
  return `/proc/self/fd/${directory.file.fd}/${name}`;
}

/** Returns the path that names the directory itself, for `readdir`. */
export function selfPath(directory: DirectoryHandle): string {
  if (directory.file === undefined) {
    return directory.hostPath;
  }
  return `/proc/self/fd/${directory.file.fd}`;
}

/**
 * Returns the directory's own status: `fstat` of its descriptor, or in
 * path mode `lstat` of its path. (`lstat` of `/proc/self/fd/N` would
 * describe the magic link, not the directory.)
 */
export async function statDirectory(
  directory: DirectoryHandle,
): Promise<BigIntStats> {
  if (directory.file === undefined) {
    return await lstat(directory.hostPath, { bigint: true });
  }
  return await directory.file.stat({ bigint: true });
}

/**
 * Opens the child directory `name` without following a symlink there.
 * Rejects with ENOTDIR or ELOOP when the child is a symlink or not a
 * directory, and with ENOENT when it is missing.
 */
export async function openChildDirectory(
  parent: DirectoryHandle,
  name: string,
): Promise<DirectoryHandle> {
  const file = await open(childPath(parent, name), directoryFlags);
  const hostPath = join(parent.hostPath, name);
  const components = [...parent.components, name];
  if (parent.file === undefined) {
    // Path mode keeps no descriptor: the open only checked the type.
    await file.close();
    return { file: undefined, hostPath, components };
  }
  return { file, hostPath, components };
}

/** Closes the descriptor of a handle, if it has one (not in path mode). */
export async function closeDirectory(
  directory: DirectoryHandle,
): Promise<void> {
  // A failed close leaves nothing to recover: the descriptor is gone.
  await directory.file?.close().catch(() => {});
}

async function procLinkWorks(file: FileHandle): Promise<boolean> {
  const viaProc = await stat(`/proc/self/fd/${file.fd}`).catch(() => undefined);
  if (viaProc === undefined || !viaProc.isDirectory()) {
    return false;
  }
  const direct = await file.stat();
  return viaProc.dev === direct.dev && viaProc.ino === direct.ino;
}
