import { stat } from "node:fs/promises";
import { join } from "node:path";
import { Code, TransferError } from "../errors/index.js";

/** Finds the host folder of a container's root filesystem. */
export interface ContainerRoots {
  /**
   * Runs `work` with the host path of the container's root filesystem,
   * which stays valid until `work` settles. A container that does not exist
   * is NotFound.
   */
  withRoot<T>(
    namespace: string,
    containerId: string,
    work: (rootfs: string) => Promise<T>,
    signal: AbortSignal,
  ): Promise<T>;
}

const idPattern = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;

/** Checks a container id with containerd's identifier rules. */
export function checkContainerId(id: string): void {
  if (id.length === 0 || id.length > 76 || !idPattern.test(id)) {
    throw new TransferError(
      `invalid container id "${id}": use 1 to 76 letters and digits, ` +
        "separated by single '.', '_' or '-'",
      Code.InvalidArgument,
    );
  }
}

/**
 * Containers laid out as folders: `ROOT/<container id>/rootfs` is each
 * container's filesystem, whatever the namespace.
 */
export class FolderRoots implements ContainerRoots {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  async withRoot<T>(
    namespace: string,
    containerId: string,
    work: (rootfs: string) => Promise<T>,
  ): Promise<T> {
    checkContainerId(containerId);
    const rootfs = join(this.root, containerId, "rootfs");
    const info = await stat(rootfs).catch(() => undefined);
    if (!info?.isDirectory()) {
      throw new TransferError(
        `container "${containerId}" not found in namespace "${namespace}": ` +
          `no folder ${rootfs}`,
        Code.NotFound,
      );
    }
    return work(rootfs);
  }
}
