/**
 * Metadata of an archive entry as it is applied on extraction, with
 * values a hostile header could make invalid checked first.
 */
import type { ReadEntry } from "tar";
import { Code, TransferError } from "../errors/index.js";

/**
 * Returns the permission bits of an entry, with the sticky bit. setuid
 * and setgid are kept only with `keepSpecial`, which extraction sets when
 * it also sets the owner from the archive, and dropped otherwise: on a
 * file of another owner they would grant that owner's rights. The sticky
 * bit grants nothing, and a shared folder such as /tmp needs it.
 */
export function permissions(
  mode: number | undefined,
  fallback: number,
  keepSpecial = false,
): number {
  if (mode === undefined || !Number.isInteger(mode) || mode < 0) {
    return fallback;
  }
  return mode & (keepSpecial ? 0o7777 : 0o1777);
}

export function entryTimes(
  entry: ReadEntry,
): { atime: Date; mtime: Date } | undefined {
  const mtime = entry.mtime;
  if (!(mtime instanceof Date) || Number.isNaN(mtime.getTime())) {
    return undefined;
  }
  const atime = entry.atime;
  const validAtime = atime instanceof Date && !Number.isNaN(atime.getTime());
  return { atime: validAtime ? atime : mtime, mtime };
}

/**
 * Largest uid or gid that Linux can give a file: ids are 32-bit, and
 * 4294967295 is the (uid_t)-1 that chown(2) reads as "leave unchanged".
 */
export const maxOwnerId = 2 ** 32 - 2;

/**
 * Returns the numeric owner of an entry. Rejects with InvalidArgument an
 * id that is not an integer from 0 to {@link maxOwnerId}.
 */
export function ownerOf(
  entry: ReadEntry,
  where: string,
): { uid: number; gid: number } {
  const { uid, gid } = entry;
  const valid = (id: number | undefined): id is number =>
    id !== undefined && Number.isInteger(id) && id >= 0 && id <= maxOwnerId;
  for (const [name, id] of [
    ["uid", uid],
    ["gid", gid],
  ] as const) {
    if (!valid(id)) {
      throw new TransferError(
        `invalid owner of "${where}": ${name} ${id} is not an integer ` +
          `from 0 to ${maxOwnerId}`,
        Code.InvalidArgument,
      );
    }
  }
  return { uid: uid as number, gid: gid as number };
}
