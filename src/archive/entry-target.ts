/**
 * Operations on the final component of an entry, inside its opened
 * parent directory. None of them follows a symlink at that name: files
 * are opened with O_NOFOLLOW (and created with O_EXCL), an existing
 * non-directory is unlinked before it is replaced, and `link` links a
 * symlink itself. Each retries a bounded number of times when another
 * process changes the name in between.
 *
 * `where` is the entry's container path, for messages. `onRemove` is
 * called after an existing name was unlinked.
 */

import { randomBytes } from "node:crypto";
import { type BigIntStats, constants } from "node:fs";
import {
  type FileHandle,
  link,
  lstat,
  mkdir,
  open,
  rename,
  symlink,
  unlink,
} from "node:fs/promises";
import { Code, TransferError } from "../errors/index.js";
import { childPath, type DirectoryHandle } from "./directory-handle.js";
import { errnoOf, fileError } from "./file-error.js";

/** Attempts at one name that other processes keep changing. */
const maxAttempts = 8;

/** Flags that open a directory and fail on a symlink. */
export const noFollowDirectory =
  constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/**
 * Opens the final component for writing. An existing regular file is
 * truncated in place, so that a bind-mounted file keeps working. Any
 * other non-directory there, such as a symlink, is removed first.
 */
export async function openForWriting(
  parent: EntryParent,
  where: string,
  onRemove: () => void,
): Promise<FileHandle> {
  const { O_WRONLY, O_TRUNC, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } =
    constants;
  for (let attempt = 0; ; attempt++) {
    checkAttempts(attempt, where);
    const existing = await lstatChild(parent, where);
    if (existing?.isDirectory()) {
      throw conflict(where, "a file", existing);
    }
    if (existing !== undefined && !existing.isFile()) {
      await removeExisting(parent, where, onRemove);
      continue;
    }

    // O_NONBLOCK: a FIFO swapped in after the lstat fails with ENXIO
    // instead of blocking the open.
    const flags =
      existing === undefined
        ? O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW
        : O_WRONLY | O_TRUNC | O_NOFOLLOW | O_NONBLOCK;
    const file = await open(parent.path, flags, 0o600).catch((error) =>
      ignoreErrno(error, ["EEXIST", "ENOENT", "ELOOP", "ENXIO"], "open", where),
    );
    if (file === undefined) {
      continue;
    }
    const opened = await file.stat();
    if (opened.isFile()) {
      return file;
    }
    await file.close();
  }
}

/**
 * Creates a new file beside `parent.name` under a hidden name that no
 * other writer uses. A file's content goes there first and takes its
 * name only once it is complete, so that a failed or concurrent write
 * never leaves a partial file under the name.
 */
export async function createTempSibling(
  parent: EntryParent,
  where: string,
): Promise<{ temp: EntryParent; file: FileHandle }> {
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;
  // At most 100 bytes of the name, so that the hidden name stays within
  // the 255-byte limit of a file name.
  const prefix = Buffer.from(parent.name).subarray(0, 100).toString();
  for (let attempt = 0; ; attempt++) {
    checkAttempts(attempt, where);
    const name = `.${prefix}.ct-${randomBytes(6).toString("hex")}`;
    const temp = {
      directory: parent.directory,
      name,
      path: childPath(parent.directory, name),
    };
    const file = await open(
      temp.path,
      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW,
      0o600,
    ).catch((error) => ignoreErrno(error, "EEXIST", "create", where));
    if (file !== undefined) {
      return { temp, file };
    }
  }
}

/**
 * Gives the complete file `temp` the name `parent.name`, replacing a
 * non-directory there. A name that cannot be replaced because it is a
 * mount point, such as a file bind-mounted into a container, gets the
 * content copied into it instead. `temp` is removed either way.
 */
export async function placeFile(
  temp: EntryParent,
  parent: EntryParent,
  where: string,
  onRemove: () => void,
): Promise<void> {
  try {
    const existing = await lstatChild(parent, where);
    if (existing?.isDirectory()) {
      throw conflict(where, "a file", existing);
    }
    const renamed = await rename(temp.path, parent.path).then(
      () => true,
      (error) => ignoreErrno(error, "EBUSY", "rename", where),
    );
    if (renamed) {
      if (existing !== undefined) {
        onRemove();
      }
      return;
    }
    await copyInto(temp, parent, where, onRemove);
  } finally {
    await unlink(temp.path).catch(() => {});
  }
}

/** Copies the content, mode and times of `temp` into the file `parent`. */
async function copyInto(
  temp: EntryParent,
  parent: EntryParent,
  where: string,
  onRemove: () => void,
): Promise<void> {
  const source = await open(temp.path, constants.O_RDONLY);
  const target = await openForWriting(parent, where, onRemove);
  try {
    const chunk = Buffer.allocUnsafe(256 * 1024);
    for (;;) {
      const { bytesRead } = await source.read(chunk, 0, chunk.length);
      if (bytesRead === 0) {
        break;
      }
      await writeAll(target, chunk.subarray(0, bytesRead), where);
    }
    const info = await source.stat();
    await target.chmod(info.mode & 0o7777).catch((error) => {
      throw fileError(error, "set the mode of", where);
    });
    await target.utimes(info.atime, info.mtime).catch((error) => {
      throw fileError(error, "set the times of", where);
    });
  } finally {
    await target.close();
    await source.close();
  }
}

/**
 * Creates the symlink `parent.name` with the literal target `linkTarget`,
 * replacing a non-directory there.
 */
export async function createSymlink(
  parent: EntryParent,
  linkTarget: string,
  where: string,
  onRemove: () => void,
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    checkAttempts(attempt, where);
    const existing = await lstatChild(parent, where);
    if (existing?.isDirectory()) {
      throw conflict(where, "a symlink", existing);
    }
    if (existing !== undefined) {
      await removeExisting(parent, where, onRemove);
      continue;
    }
    const done = await symlink(linkTarget, parent.path).then(
      () => true,
      (error) => ignoreErrno(error, "EEXIST", "create symlink", where),
    );
    if (done) {
      return;
    }
  }
}

/**
 * Creates the directory `parent.name` (mode 0700 until the caller sets
 * the mode) or keeps an existing one, and opens it without following a
 * symlink. Fails when a non-directory is there.
 */
export async function openOrCreateDirectory(
  parent: EntryParent,
  where: string,
): Promise<{ directory: FileHandle; created: boolean }> {
  let created = false;
  for (let attempt = 0; ; attempt++) {
    checkAttempts(attempt, where);
    const existing = await lstatChild(parent, where);
    if (existing === undefined) {
      const createdNow = await mkdir(parent.path, 0o700).then(
        () => true,
        (error) => ignoreErrno(error, "EEXIST", "create directory", where),
      );
      created ||= createdNow === true;
      continue;
    }
    if (!existing.isDirectory()) {
      throw conflict(where, "a directory", existing);
    }
    const directory = await open(parent.path, noFollowDirectory).catch(
      (error) =>
        ignoreErrno(error, ["ENOENT", "ENOTDIR", "ELOOP"], "open", where),
    );
    if (directory !== undefined) {
      return { directory, created };
    }
  }
}

async function removeExisting(
  parent: EntryParent,
  where: string,
  onRemove: () => void,
): Promise<void> {
  await unlink(parent.path).catch((error) =>
    ignoreErrno(error, "ENOENT", "replace", where),
  );
  onRemove();
}

/**
 * Links `parent.name` to the file at `targetPath`, replacing a
 * non-directory there. Does nothing when the name is already that file.
 */
export async function createHardLink(
  targetPath: string,
  target: BigIntStats,
  parent: EntryParent,
  where: string,
  onRemove: () => void,
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    checkAttempts(attempt, where);
    const existing = await lstatChild(parent, where);
    if (existing?.isDirectory()) {
      throw conflict(where, "a hard link", existing);
    }
    if (existing?.ino === target.ino && existing.dev === target.dev) {
      return;
    }
    if (existing !== undefined) {
      await removeExisting(parent, where, onRemove);
      continue;
    }
    const done = await link(targetPath, parent.path).then(
      () => true,
      (error) => ignoreErrno(error, "EEXIST", "create hard link", where),
    );
    if (done) {
      return;
    }
  }
}

/** The parent directory of an entry and the path of the entry in it. */
export interface EntryParent {
  directory: DirectoryHandle;
  name: string;
  /** `childPath(directory, name)`. */
  path: string;
}

export async function lstatChild(
  parent: EntryParent,
  where: string,
): Promise<BigIntStats | undefined> {
  try {
    return await lstat(parent.path, { bigint: true });
  } catch (error) {
    if (errnoOf(error) === "ENOENT") {
      return undefined;
    }
    throw fileError(error, "stat", where);
  }
}

/**
 * Returns undefined for the expected errno codes, which mean "look again",
 * and throws any other error with the action and path.
 */
export function ignoreErrno(
  error: unknown,
  expected: string | string[],
  action: string,
  where: string,
): undefined {
  const errno = errnoOf(error);
  if (errno !== undefined && [expected].flat().includes(errno)) {
    return undefined;
  }
  throw fileError(error, action, where);
}

export async function writeAll(
  file: FileHandle,
  chunk: Buffer,
  where: string,
): Promise<void> {
  let offset = 0;
  while (offset < chunk.length) {
    const { bytesWritten } = await file
      .write(chunk, offset, chunk.length - offset)
      .catch((error) => {
        throw fileError(error, "write", where);
      });
    offset += bytesWritten;
  }
}

export function checkAttempts(attempt: number, where: string): void {
  if (attempt >= maxAttempts) {
    throw new TransferError(
      `failed to write "${where}": it kept changing while it was written; ` +
        "retry when the container is idle",
      Code.Aborted,
    );
  }
}

export function conflict(
  where: string,
  entryKind: string,
  existing: BigIntStats,
) {
  const existingKind = existing.isDirectory() ? "directory" : "non-directory";
  return new TransferError(
    `cannot replace the ${existingKind} "${where}" with ${entryKind}; ` +
      "remove it first",
    Code.FailedPrecondition,
  );
}
