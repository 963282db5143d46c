/**
 * Opens the root directory of a running task as its own processes see it:
 * `/proc/<pid>/root`, a magic link into the task's mount namespace. Below
 * it the container's volumes, bind mounts and tmpfs mounts are where the
 * container has them, because path lookups cross the mounts of that
 * namespace.
 *
 * A pid is only a number, and it can belong to another process once the
 * task exits. The root is therefore opened through a descriptor of the
 * `/proc/<pid>` directory, which stays bound to one process: lookups
 * through it fail once that process is gone, even when the pid is reused.
 */
import { constants } from "node:fs";
import { type FileHandle, open, stat } from "node:fs/promises";
import { Code, TransferError } from "../errors/index.js";

export interface OpenTaskRootOptions {
  /** The task's pid, as containerd reports it. */
  pid: number;
  /**
   * Checks with containerd, after `/proc/<pid>` was opened, that the task
   * still runs with the same pid. If the task ran with that pid both
   * before and after the open, the open reached the task's process.
   */
  stillRunning: () => Promise<boolean>;
  /**
   * Device of the container's rootfs mount when the server can see it,
   * such as the overlay that the runc shim mounts. The task's root must
   * be on it.
   */
  rootfsDevice?: bigint;
  /** Container id and namespace, for messages. */
  describe: string;
}

const directoryFlags = constants.O_RDONLY | constants.O_DIRECTORY;

/**
 * Opens the task's root directory and returns its descriptor, which keeps
 * the directory and its mounts reachable until it is closed. Returns
 * undefined when the task's process exited or changed on the way, so the
 * caller can look the task up again.
 *
 * Rejects with FailedPrecondition when the process shares the server's
 * mount namespace or root directory, or when its root is not on the
 * container's rootfs mount. Such a root is not the container's file
 * system, and writing there could reach the host.
 */
export async function openTaskRoot(
  options: OpenTaskRootOptions,
): Promise<FileHandle | undefined> {
  const procDirectory = await openOrMissing(`/proc/${options.pid}`);
  if (procDirectory === undefined) {
    return undefined;
  }

  let root: FileHandle | undefined;
  try {
    if (!(await options.stillRunning())) {
      return undefined;
    }
    const procPath = `/proc/self/fd/${procDirectory.fd}`;
    root = await openOrMissing(`${procPath}/root`);
    if (root === undefined) {
      return undefined;
    }
    await checkSeparateRoot(procPath, root, options);
    const checked = root;
    root = undefined;
    return checked;
  } finally {
    await root?.close();
    await procDirectory.close();
  }
}

/**
 * Rejects unless the process behind `procPath` has a mount namespace and
 * a root directory of its own, on the container's rootfs when known.
 */
async function checkSeparateRoot(
  procPath: string,
  root: FileHandle,
  options: OpenTaskRootOptions,
): Promise<void> {
  const [taskNamespace, ownNamespace] = await Promise.all([
    stat(`${procPath}/ns/mnt`, { bigint: true }),
    stat("/proc/self/ns/mnt", { bigint: true }),
  ]);
  if (taskNamespace.ino === ownNamespace.ino) {
    throw notContainerRoot(options, "it shares the server's mount namespace");
  }

  const [taskRoot, ownRoot] = await Promise.all([
    root.stat({ bigint: true }),
    stat("/", { bigint: true }),
  ]);
  if (taskRoot.dev === ownRoot.dev && taskRoot.ino === ownRoot.ino) {
    throw notContainerRoot(options, "it shares the server's root directory");
  }
  if (
    options.rootfsDevice !== undefined &&
    taskRoot.dev !== options.rootfsDevice
  ) {
    throw notContainerRoot(
      options,
      "it is not on the container's rootfs mount",
    );
  }
}

function notContainerRoot(
  options: OpenTaskRootOptions,
  reason: string,
): TransferError {
  return new TransferError(
    `the root directory of task pid ${options.pid} of ${options.describe} ` +
      `is not the container's file system: ${reason}`,
    Code.FailedPrecondition,
  );
}

/** Opens a directory, or returns undefined when the process is gone. */
async function openOrMissing(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, directoryFlags);
  } catch (error) {
    const errno = (error as NodeJS.ErrnoException).code;
    if (errno === "ENOENT" || errno === "ESRCH") {
      return undefined;
    }
    throw new TransferError(
      `failed to open ${path}: ${(error as Error).message}`,
      Code.Internal,
      error,
    );
  }
}
