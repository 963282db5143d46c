/**
 * Errors of the archive layer. File system errors are reported with the
 * container path, never the host path: host paths of the handles look like
 * `/proc/self/fd/12/name` and mean nothing to the caller.
 */
import { Code, codeOfNodeError, TransferError } from "../errors/index.js";
import { shortPath } from "./container-path.js";

export { errnoOf } from "../errors/index.js";

const errnoText: Record<string, string> = {
  EACCES: "permission denied",
  EBUSY: "device or resource busy",
  EDQUOT: "disk quota exceeded",
  EEXIST: "file exists",
  EIO: "input/output error",
  EISDIR: "is a directory",
  ELOOP: "too many levels of symbolic links",
  EMFILE: "too many open files",
  ENAMETOOLONG: "file name too long",
  ENOENT: "no such file or directory",
  ENOSPC: "no space left on device",
  ENOTDIR: "not a directory",
  ENOTEMPTY: "directory not empty",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
  EXDEV: "cross-device link",
};

/**
 * Actions that create a name in a directory the archive layer has open,
 * where ENOENT cannot mean a missing parent. Linux's procfs returns ENOENT
 * for every new name, and so does a directory removed while open.
 */
const createActions = new Set(["create", "create directory", "create symlink"]);

/**
 * Converts a caught file system error to a TransferError whose message
 * names the failed action and the container path, such as
 * `failed to open "/etc/shadow": permission denied`. The code comes from
 * {@link codeOfNodeError}; a TransferError passes through unchanged.
 */
export function fileError(
  error: unknown,
  action: string,
  containerPath: string,
): TransferError {
  if (error instanceof TransferError) {
    return error;
  }
  const errno = (error as NodeJS.ErrnoException | undefined)?.code;
  const reason =
    errno === undefined
      ? String(error instanceof Error ? error.message : error)
      : (errnoText[errno] ?? errno);
  const hint =
    errno === "ENOENT" && createActions.has(action)
      ? " (its directory exists but takes no new names: a file system " +
        "such as /proc, or a directory removed during the copy)"
      : "";
  return new TransferError(
    `failed to ${action} "${shortPath(containerPath)}": ${reason}${hint}`,
    codeOfNodeError(error) ?? Code.Unknown,
    error,
  );
}
