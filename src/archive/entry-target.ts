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

import { randomFillSync } from "node:crypto";
import {
  type BigIntStats,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  futimesSync,
  lstatSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writevSync,
} from "node:fs";
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
import { fileKind } from "./file-kind.js";

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
    if (keepsItsName(existing)) {
      throw conflict(where, "a file", existing!);
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
  const prefix = tempPrefix(parent.name);
  for (let attempt = 0; ; attempt++) {
    checkAttempts(attempt, where);
    const temp = tempSibling(parent, prefix);
    const file = await open(temp.path, createTempFlags, 0o600).catch((error) =>
      ignoreErrno(error, "EEXIST", "create", where),
    );
    if (file !== undefined) {
      return { temp, file };
    }
  }
}

/** Flags that create a new file and fail on any existing name. */
const createTempFlags =
  constants.O_WRONLY |
  constants.O_CREAT |
  constants.O_EXCL |
  constants.O_NOFOLLOW;

/**
 * Returns the start of a hidden name for `name`: at most 100 bytes of it,
 * so that the hidden name stays within the 255-byte limit of a file name.
 */
function tempPrefix(name: string): string {
  return Buffer.from(name).subarray(0, 100).toString();
}

/** Random bytes for hidden names, filled 4 KiB at a time. */
const randomPool = Buffer.alloc(4096);
let randomOffset = randomPool.length;

/** Returns a hidden sibling `.PREFIX.ct-` plus 12 random hex digits. */
function tempSibling(parent: EntryParent, prefix: string): EntryParent {
  if (randomOffset + 6 > randomPool.length) {
    randomFillSync(randomPool);
    randomOffset = 0;
  }
  const suffix = randomPool.toString("hex", randomOffset, randomOffset + 6);
  randomOffset += 6;
  const name = `.${prefix}.ct-${suffix}`;
  return {
    directory: parent.directory,
    name,
    path: childPath(parent.directory, name),
  };
}

/** Metadata that {@link writeSmallFile} applies before the rename. */
export interface SmallFileMetadata {
  /** Permission bits. */
  mode: number;
  owner: { uid: number; gid: number } | undefined;
  times: { atime: Date; mtime: Date } | undefined;
}

/**
 * Writes a whole file with synchronous calls. When nothing has the name
 * `parent.name`, the file is created under it at once. Otherwise a new
 * hidden sibling as in {@link createTempSibling} gets the content, owner,
 * mode and times, and then the rename to `parent.name` as in
 * {@link placeFile}. On a local file system each call usually takes
 * microseconds, less than the hop to the thread pool that an asynchronous
 * call makes.
 *
 * Returns undefined once the file has its name. When the name is a mount
 * point that a rename cannot replace, returns the complete hidden file,
 * which the caller passes to {@link placeFile}. On failure the new file is
 * removed.
 *
 * NOTE: a file system that stalls (a hung network or FUSE mount) stalls
 * the whole process here, not only this copy.
 */
export function writeSmallFile(
  parent: EntryParent,
  body: Buffer[],
  metadata: SmallFileMetadata,
  where: string,
  onRemove: () => void,
): EntryParent | undefined {
  // A new name needs no hidden sibling and no rename. O_EXCL with
  // O_NOFOLLOW creates it only if nothing, not even a symlink, has it.
  let direct: number | undefined;
  try {
    direct = openSync(parent.path, createTempFlags, 0o600);
  } catch (error) {
    ignoreErrno(error, "EEXIST", "create", where);
  }
  if (direct !== undefined) {
    try {
      writeSmallBody(direct, body, metadata, where);
    } catch (error) {
      removeQuietly(parent.path);
      throw error;
    }
    return undefined;
  }

  const prefix = tempPrefix(parent.name);
  let temp: EntryParent | undefined;
  let fd: number | undefined;
  for (let attempt = 0; fd === undefined; attempt++) {
    checkAttempts(attempt, where);
    temp = tempSibling(parent, prefix);
    try {
      fd = openSync(temp.path, createTempFlags, 0o600);
    } catch (error) {
      ignoreErrno(error, "EEXIST", "create", where);
    }
  }
  const hidden = temp!;
  try {
    writeSmallBody(fd, body, metadata, where);
    const existing = lstatChildSync(parent, where);
    if (keepsItsName(existing)) {
      throw conflict(where, "a file", existing!);
    }
    if (isMountPoint(parent, existing)) {
      return hidden;
    }
    try {
      renameSync(hidden.path, parent.path);
    } catch (error) {
      ignoreErrno(error, "EBUSY", "rename", where);
      return hidden;
    }
    if (existing !== undefined) {
      onRemove();
    }
    return undefined;
  } catch (error) {
    removeQuietly(hidden.path);
    throw error;
  }
}

/** Writes the content, owner, mode and times of a new file, and closes it. */
function writeSmallBody(
  fd: number,
  body: Buffer[],
  metadata: SmallFileMetadata,
  where: string,
): void {
  try {
    writeAllSync(fd, body, where);
    if (metadata.owner !== undefined) {
      const { uid, gid } = metadata.owner;
      syncCall(() => fchownSync(fd, uid, gid), "change the owner of", where);
    }
    syncCall(() => fchmodSync(fd, metadata.mode), "set the mode of", where);
    const times = metadata.times;
    if (times !== undefined) {
      syncCall(
        () => futimesSync(fd, times.atime, times.mtime),
        "set the times of",
        where,
      );
    }
  } finally {
    closeSync(fd);
  }
}

function writeAllSync(fd: number, body: Buffer[], where: string): void {
  let pending = body.filter((chunk) => chunk.length > 0);
  while (pending.length > 0) {
    const written = syncCall(() => writevSync(fd, pending), "write", where);
    pending = dropWritten(pending, written);
  }
}

/** Returns what is left of `chunks` after the first `bytes` bytes. */
export function dropWritten(chunks: Buffer[], bytes: number): Buffer[] {
  let skipped = bytes;
  let index = 0;
  while (index < chunks.length && skipped >= chunks[index]!.length) {
    skipped -= chunks[index]!.length;
    index++;
  }
  const rest = chunks.slice(index);
  if (skipped > 0 && rest.length > 0) {
    rest[0] = rest[0]!.subarray(skipped);
  }
  return rest;
}

/** Runs a synchronous file call and names `where` in its error. */
function syncCall<T>(call: () => T, action: string, where: string): T {
  try {
    return call();
  } catch (error) {
    throw fileError(error, action, where);
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // The hidden file is gone already, or its directory was removed.
  }
}

function lstatChildSync(
  parent: EntryParent,
  where: string,
): BigIntStats | undefined {
  try {
    return lstatSync(parent.path, { bigint: true });
  } catch (error) {
    if (errnoOf(error) === "ENOENT") {
      return undefined;
    }
    throw fileError(error, "stat", where);
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
  let renamed = false;
  try {
    const existing = await lstatChild(parent, where);
    if (keepsItsName(existing)) {
      throw conflict(where, "a file", existing!);
    }
    if (isMountPoint(parent, existing)) {
      await copyInto(temp, parent, where, onRemove);
      return;
    }
    renamed =
      (await rename(temp.path, parent.path).then(
        () => true,
        (error) => ignoreErrno(error, "EBUSY", "rename", where),
      )) === true;
    if (renamed) {
      if (existing !== undefined) {
        onRemove();
      }
      return;
    }
    await copyInto(temp, parent, where, onRemove);
  } finally {
    // After a rename the hidden name is gone, and another file may take it.
    if (!renamed) {
      await unlink(temp.path).catch(() => {});
    }
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
    if (keepsItsName(existing)) {
      throw conflict(where, "a symlink", existing!);
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
 * Returns whether an entry other than a directory must leave `existing`
 * in place. Only a directory entry merges into a directory. An archive
 * never replaces a device, FIFO or socket, so that a copy cannot turn a
 * container's /dev/null into a file.
 */
function keepsItsName(existing: BigIntStats | undefined): boolean {
  return existing !== undefined && fileKind(existing) !== "other";
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
  if (isMountPoint(parent, await lstatChild(parent, where))) {
    throw new TransferError(
      `cannot replace "${where}": a file is mounted there, so only ` +
        "the content of a file can be copied to it",
      Code.FailedPrecondition,
    );
  }
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
    if (keepsItsName(existing)) {
      throw conflict(where, "a hard link", existing!);
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

/**
 * Returns whether the regular file `existing` at `parent.name` is a mount
 * point, such as a file bind-mounted into a container. A rename or unlink
 * over a mount point fails with EBUSY only in the mount namespace that
 * contains the mount. In any other namespace, such as the server's view of
 * a running container through `/proc/<pid>/root`, the kernel detaches the
 * mount with no error, so the container silently loses it. A mount point
 * has a mount id other than its directory's (or, without fdinfo, a device).
 */
export function isMountPoint(
  parent: EntryParent,
  existing: BigIntStats | undefined,
): boolean {
  if (existing === undefined || !existing.isFile()) {
    return false;
  }
  let fd: number;
  try {
    // O_PATH opens no file: a device node swapped in since the lstat is
    // not opened, and the descriptor still has a mount id and a stat.
    fd = openSync(parent.path, pathOnlyFlag | constants.O_NOFOLLOW);
  } catch {
    // The name is gone or changed since the lstat, and the caller's next
    // step handles that.
    return false;
  }
  try {
    const directoryFd = parent.directory.file?.fd;
    if (directoryFd !== undefined) {
      const fileMount = mountIdOf(fd);
      const directoryMount = mountIdOf(directoryFd);
      if (fileMount !== undefined && directoryMount !== undefined) {
        return fileMount !== directoryMount;
      }
    }
    const directoryDev =
      directoryFd !== undefined
        ? fstatSync(directoryFd, { bigint: true }).dev
        : lstatSync(parent.directory.hostPath, { bigint: true }).dev;
    return fstatSync(fd, { bigint: true }).dev !== directoryDev;
  } finally {
    closeSync(fd);
  }
}

/** Linux's O_PATH, which `fs.constants` does not list. */
const pathOnlyFlag = 0o10000000;

/** Returns the mount id of a descriptor, from `/proc/self/fdinfo`. */
function mountIdOf(fd: number): string | undefined {
  try {
    const info = readFileSync(`/proc/self/fdinfo/${fd}`, "utf8");
    return /^mnt_id:\s*(\d+)$/m.exec(info)?.[1];
  } catch {
    return undefined;
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

/**
 * Writes the whole chunk, at `position` when given and otherwise at the
 * file's current offset.
 */
export async function writeAll(
  file: FileHandle,
  chunk: Buffer,
  where: string,
  position?: number,
): Promise<void> {
  let offset = 0;
  while (offset < chunk.length) {
    const at = position === undefined ? null : position + offset;
    const { bytesWritten } = await file
      .write(chunk, offset, chunk.length - offset, at)
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
  const kind = fileKind(existing);
  const existingKind = kind === "other" ? "non-directory" : kind;
  return new TransferError(
    `cannot replace the ${existingKind} "${where}" with ${entryKind}; ` +
      "remove it first",
    Code.FailedPrecondition,
  );
}
