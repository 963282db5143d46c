/**
 * Container roots from a containerd daemon: a container is looked up in
 * the namespace of the request, then reached through its running task's
 * view of its file system or, without one, through its mounted snapshot.
 */
import { tmpdir } from "node:os";
import { checkNamespace } from "../client/address.js";
import { Code, TransferError } from "../errors/index.js";
import { createGrpcTransport } from "../grpc/index.js";
import type { ClientTransport, Transport } from "../transport/index.js";
import { type ContainerRoots, checkContainerId } from "./container-roots.js";
import {
  ContainerdApi,
  type ContainerInfo,
  type TaskInfo,
  TaskStatus,
} from "./containerd-api.js";
import { findOverlayMount, readMountInfo } from "./containerd-mountinfo.js";
import { SnapshotMounts } from "./containerd-snapshot-mount.js";
import { openTaskRoot } from "./containerd-task-root.js";
import { debugLogger, type Logger } from "./logger.js";

export interface ContainerdRootsOptions {
  log?: Logger;
  /**
   * Directory for the mount points of containers without a running task.
   * The mounts themselves live in a private mount namespace. Default the
   * system's temporary directory.
   */
  mountDirectory?: string;
  /** The unshare(1) command. Default "unshare", looked up in PATH. */
  unshareCommand?: string;
}

/** Task states in which the task's init process exists. */
const liveStatuses = new Set([
  TaskStatus.CREATED,
  TaskStatus.RUNNING,
  TaskStatus.PAUSED,
  TaskStatus.PAUSING,
]);

/**
 * Runtimes whose task pid is a host process inside the container: runc
 * and the shims that drive it. A VM or sandbox runtime (Kata, gVisor)
 * reports a pid whose `/proc/<pid>/root` is not the container's.
 */
const processRuntimes = /^io\.containerd\.(runc\.v[12]|runtime\.v1\.linux)$/;

/** Times a task may change state under a lookup before it fails. */
const maxTaskLookups = 3;

/**
 * Finds container roots through containerd's Containers, Tasks and
 * Snapshots services.
 *
 * A container with a live task (created, running or paused) is reached
 * at `/proc/<pid>/root` of the task's init process, so its volumes, bind
 * mounts and tmpfs mounts are part of the copy. A container without one
 * has its rootfs snapshot mounted for the time of the copy, and only the
 * snapshot: mounts from its spec are not mounted.
 */
export class ContainerdRoots implements ContainerRoots {
  readonly #api: ContainerdApi;
  readonly #ownTransport: ClientTransport | undefined;
  readonly #snapshots: SnapshotMounts;
  readonly #log: Logger;

  /**
   * `containerd` is the path of containerd's gRPC socket, or a gRPC
   * transport to it. A transport passed in stays open on `close()`.
   */
  constructor(
    containerd: string | Transport,
    options: ContainerdRootsOptions = {},
  ) {
    if (typeof containerd === "string") {
      this.#ownTransport = createGrpcTransport({
        path: containerd,
        ttrpcPeerHint:
          "The server needs containerd's gRPC socket, such as " +
          "/run/containerd/containerd.sock, not its .ttrpc socket",
      });
      this.#api = new ContainerdApi(this.#ownTransport);
    } else {
      this.#api = new ContainerdApi(containerd);
    }
    this.#log = options.log ?? debugLogger;
    this.#snapshots = new SnapshotMounts({
      log: this.#log,
      mountDirectory: options.mountDirectory ?? tmpdir(),
      unshareCommand: options.unshareCommand,
    });
  }

  /**
   * Runs `work` with the container's root directory, given as a path of
   * the form `/proc/self/fd/N` that stays valid until `work` settles.
   * Rejects with NotFound when the container does not exist in
   * `namespace`, and with FailedPrecondition when it has neither a live
   * task of a runc runtime nor a snapshot.
   */
  async withRoot<T>(
    namespace: string,
    containerId: string,
    work: (rootfs: string) => Promise<T>,
    signal: AbortSignal,
  ): Promise<T> {
    checkContainerId(containerId);
    if (namespace === "") {
      throw new TransferError(
        "missing namespace: send it in the containerd-namespace (gRPC) or " +
          "containerd-namespace-ttrpc (ttrpc) header",
        Code.InvalidArgument,
      );
    }
    checkNamespace(namespace);

    const describe = `container "${containerId}" in namespace "${namespace}"`;
    const container = await this.#api.getContainer(
      namespace,
      containerId,
      signal,
    );
    if (container === undefined) {
      throw new TransferError(
        `container "${containerId}" not found in namespace "${namespace}"`,
        Code.NotFound,
      );
    }

    for (let lookup = 1; lookup <= maxTaskLookups; lookup++) {
      const task = await this.#api.getTask(namespace, containerId, signal);
      if (task === undefined || !liveStatuses.has(task.status)) {
        return this.#withSnapshot(namespace, container, describe, work, signal);
      }

      const root = await this.#openTaskRoot(
        namespace,
        container,
        task,
        describe,
        signal,
      );
      if (root !== undefined) {
        this.#log.info("using the task's root", {
          namespace,
          container: containerId,
          pid: task.pid,
        });
        try {
          return await work(`/proc/self/fd/${root.fd}`);
        } finally {
          await root.close();
        }
      }
    }
    throw new TransferError(
      `the task of ${describe} changed ${maxTaskLookups} times while its ` +
        "root was opened: try again",
      Code.Unavailable,
    );
  }

  /** Closes the connection to containerd if this object opened it. */
  async close(): Promise<void> {
    await this.#ownTransport?.close();
  }

  async #openTaskRoot(
    namespace: string,
    container: ContainerInfo,
    task: TaskInfo,
    describe: string,
    signal: AbortSignal,
  ) {
    if (!processRuntimes.test(container.runtime)) {
      throw new TransferError(
        `${describe} has a running task of runtime "${container.runtime}", ` +
          "whose file system the server cannot reach: only runc runtimes " +
          "(io.containerd.runc.v1, io.containerd.runc.v2) are supported " +
          "while the task runs",
        Code.FailedPrecondition,
      );
    }
    return openTaskRoot({
      pid: task.pid,
      describe,
      rootfsDevice: await this.#rootfsDevice(namespace, container, signal),
      stillRunning: async () => {
        const now = await this.#api.getTask(namespace, container.id, signal);
        return (
          now !== undefined &&
          now.pid === task.pid &&
          liveStatuses.has(now.status)
        );
      },
    });
  }

  /**
   * Returns the device of the container's rootfs mount when the server
   * finds it in its own mount table, which is the case for the overlay
   * that the runc shim mounts while it shares the server's namespace.
   */
  async #rootfsDevice(
    namespace: string,
    container: ContainerInfo,
    signal: AbortSignal,
  ): Promise<bigint | undefined> {
    if (container.snapshotKey === "" || container.snapshotter === "") {
      return undefined;
    }
    const mounts = await this.#api.snapshotMounts(
      namespace,
      container.snapshotter,
      container.snapshotKey,
      signal,
    );
    return findOverlayMount(await readMountInfo(), mounts)?.device;
  }

  async #withSnapshot<T>(
    namespace: string,
    container: ContainerInfo,
    describe: string,
    work: (rootfs: string) => Promise<T>,
    signal: AbortSignal,
  ): Promise<T> {
    if (container.snapshotKey === "" || container.snapshotter === "") {
      throw new TransferError(
        `${describe} has no running task and its rootfs is not a ` +
          "snapshot, so there is nothing to mount: start its task first",
        Code.FailedPrecondition,
      );
    }
    const mounts = await this.#api.snapshotMounts(
      namespace,
      container.snapshotter,
      container.snapshotKey,
      signal,
    );
    const lease = await this.#snapshots.acquire(
      {
        key:
          `${namespace}/${container.snapshotter}/${container.snapshotKey}` +
          (container.readOnlyRootfs ? " (read-only)" : ""),
        mounts,
        readOnly: container.readOnlyRootfs,
        describe,
      },
      signal,
    );
    this.#log.info("using the container's snapshot", {
      namespace,
      container: container.id,
      snapshotter: container.snapshotter,
      snapshot: container.snapshotKey,
    });
    try {
      return await work(lease.path);
    } finally {
      await lease.release();
    }
  }
}
