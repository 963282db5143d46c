/**
 * Mounts the snapshot of a container that has no running task, for the
 * time of one or more concurrent copies. A MountHelper makes the mounts
 * in a private mount namespace, so they never appear in the host's mount
 * table, and the server reaches them through `/proc/<helper pid>/root`.
 */
import { constants } from "node:fs";
import { type FileHandle, mkdtemp, open, rmdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, orAbort, TransferError } from "../errors/index.js";
import { type Mount, MountSchema } from "../gen/containerd/types/mount_pb.js";
import { MountHelper } from "./containerd-mount-helper.js";
import { findOverlayMount, readMountInfo } from "./containerd-mountinfo.js";
import type { Logger } from "./logger.js";

export interface SnapshotMountsOptions {
  log: Logger;
  /** Directory in which mount points are created. */
  mountDirectory: string;
  /** The unshare(1) command. Default "unshare", looked up in PATH. */
  unshareCommand?: string;
}

/** A mounted root, valid until `release` is called. */
export interface SnapshotLease {
  /** Path of the mounted root: `/proc/self/fd/N` of a pinned descriptor. */
  path: string;
  /** Ends this use, and unmounts when it was the last one. */
  release(): Promise<void>;
}

/** A snapshot to mount, with the ids used in logs and messages. */
export interface SnapshotRequest {
  /** Identifies the snapshot: namespace, snapshotter and key. */
  key: string;
  mounts: Mount[];
  /** Whether to mount read-only: the container's spec says its rootfs is. */
  readOnly: boolean;
  /** Container id and namespace, for messages. */
  describe: string;
}

interface SharedMount {
  ready: Promise<MountedRoot>;
  users: number;
}

interface MountedRoot {
  root: FileHandle;
  close(): Promise<void>;
}

/**
 * Mounts snapshots and shares each mount between the copies that use the
 * same snapshot at the same time, because two overlay mounts with one
 * upper directory behave undefined. A snapshot that is already mounted in
 * the server's mount namespace, such as the rootfs of a stopped task that
 * containerd has not deleted yet, is used where it is.
 */
export class SnapshotMounts {
  readonly #options: SnapshotMountsOptions;
  readonly #shared = new Map<string, SharedMount>();

  constructor(options: SnapshotMountsOptions) {
    this.#options = options;
  }

  /** Mounts the snapshot, or joins a mount of it that is in use. */
  async acquire(
    request: SnapshotRequest,
    signal: AbortSignal,
  ): Promise<SnapshotLease> {
    let shared = this.#shared.get(request.key);
    if (shared === undefined) {
      shared = { ready: this.#mount(request), users: 0 };
      this.#shared.set(request.key, shared);
    }
    shared.users++;

    const entry = shared;
    let released = false;
    const release = async () => {
      if (released) {
        return;
      }
      released = true;
      entry.users--;
      if (entry.users > 0) {
        return;
      }
      this.#shared.delete(request.key);
      // A failed mount cleaned up after itself.
      const mounted = await entry.ready.catch(() => undefined);
      await mounted?.close();
    };

    try {
      const mounted = await orAbort(entry.ready, signal);
      return { path: `/proc/self/fd/${mounted.root.fd}`, release };
    } catch (error) {
      await release();
      throw error;
    }
  }

  async #mount(request: SnapshotRequest): Promise<MountedRoot> {
    const existing = findOverlayMount(await readMountInfo(), request.mounts);
    if (existing === undefined) {
      return this.#mountPrivately(
        request,
        request.readOnly ? request.mounts.map(readOnlyMount) : request.mounts,
      );
    }

    this.#options.log.info("using mounted snapshot", {
      snapshot: request.key,
      mountPoint: existing.mountPoint,
    });
    if (request.readOnly) {
      // A read-only bind mount of the existing mount, not a second
      // overlay on the same upper directory.
      return this.#mountPrivately(request, [
        readOnlyMount(bindMount(existing.mountPoint)),
      ]);
    }
    const root = await open(
      existing.mountPoint,
      constants.O_RDONLY | constants.O_DIRECTORY,
    );
    const info = await root.stat({ bigint: true });
    if (info.dev !== existing.device) {
      await root.close();
      throw new TransferError(
        `the snapshot of ${request.describe} was unmounted from ` +
          `${existing.mountPoint} while it was opened: try again`,
        Code.Unavailable,
      );
    }
    return { root, close: () => root.close() };
  }

  async #mountPrivately(
    request: SnapshotRequest,
    mounts: readonly Mount[],
  ): Promise<MountedRoot> {
    const target = await mkdtemp(
      join(this.#options.mountDirectory, "containerd-transfer-"),
    );
    const helper = new MountHelper(
      this.#options.unshareCommand ?? "unshare",
      target,
      mounts,
    );
    let root: FileHandle | undefined;
    try {
      await helper.mounted();
      root = await open(
        `/proc/${helper.pid}/root${target}`,
        constants.O_RDONLY | constants.O_DIRECTORY,
      );
      if (!(await isMountedOver(root, target))) {
        throw new Error(`nothing is mounted on ${target} in the helper`);
      }
    } catch (error) {
      await root?.close();
      await this.#stop(helper, target, request);
      throw new TransferError(
        `failed to mount the snapshot of ${request.describe}: ` +
          TransferError.from(error).rawMessage,
        Code.Internal,
        error,
      );
    }

    this.#options.log.info("mounted snapshot", {
      snapshot: request.key,
      helperPid: helper.pid,
      mountPoint: target,
    });
    const mountedRoot = root;
    return {
      root: mountedRoot,
      close: async () => {
        await mountedRoot.close();
        await this.#stop(helper, target, request);
      },
    };
  }

  /** Ends the helper, which unmounts, and removes the mount point. */
  async #stop(
    helper: MountHelper,
    target: string,
    request: SnapshotRequest,
  ): Promise<void> {
    const { log } = this.#options;
    const failure = await helper.stop();
    if (failure !== undefined) {
      // The namespace ends with the helper, which detaches what is left.
      log.error("failed to unmount snapshot", {
        snapshot: request.key,
        helperPid: helper.pid,
        error: failure,
      });
    } else if (helper.reportedMounted) {
      log.info("unmounted snapshot", { snapshot: request.key });
    }
    await rmdir(target).catch((error: Error) =>
      log.warn("failed to remove mount point", {
        mountPoint: target,
        error: error.message,
      }),
    );
  }
}

/** Returns a bind mount of the host directory `source`. */
function bindMount(source: string): Mount {
  return create(MountSchema, { type: "bind", source, options: ["rbind"] });
}

/** Returns `mount` with `ro` in place of any `rw` option. */
function readOnlyMount(mount: Mount): Mount {
  const options = mount.options.filter((o) => o !== "rw" && o !== "ro");
  return create(MountSchema, {
    type: mount.type,
    source: mount.source,
    options: [...options, "ro"],
  });
}

/**
 * Checks that `root` is a mounted file system and not the empty mount
 * point below it.
 */
async function isMountedOver(
  root: FileHandle,
  mountPoint: string,
): Promise<boolean> {
  const [mounted, underneath] = await Promise.all([
    root.stat({ bigint: true }),
    stat(mountPoint, { bigint: true }),
  ]);
  return mounted.dev !== underneath.dev || mounted.ino !== underneath.ino;
}
