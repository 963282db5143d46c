/**
 * The three containerd calls behind ContainerdRoots: Containers.Get,
 * Tasks.Get and Snapshots.Mounts, each in the caller's namespace.
 */
import { type Client, createClient } from "@connectrpc/connect";
import { Code, TransferError } from "../errors/index.js";
import { Containers } from "../gen/containerd/services/containers/v1/containers_pb.js";
import { Snapshots } from "../gen/containerd/services/snapshots/v1/snapshots_pb.js";
import { Tasks } from "../gen/containerd/services/tasks/v1/tasks_pb.js";
import type { Mount } from "../gen/containerd/types/mount_pb.js";
import { Status } from "../gen/containerd/types/task/task_pb.js";
import { namespaceHeaderGrpc, type Transport } from "../transport/index.js";

/** The fields of a container that the server uses. */
export interface ContainerInfo {
  id: string;
  /** Runtime type, such as `io.containerd.runc.v2`. */
  runtime: string;
  snapshotter: string;
  /** Key of the rootfs snapshot, empty when the rootfs is not a snapshot. */
  snapshotKey: string;
  /** Whether the OCI spec sets `root.readonly`. */
  readOnlyRootfs: boolean;
}

/** A container's task: its init process. */
export interface TaskInfo {
  pid: number;
  status: Status;
}

export { Status as TaskStatus };

/** Deadline of each containerd call. */
const callTimeoutMs = 30_000;

export class ContainerdApi {
  readonly #containers: Client<typeof Containers>;
  readonly #tasks: Client<typeof Tasks>;
  readonly #snapshots: Client<typeof Snapshots>;

  constructor(transport: Transport) {
    this.#containers = createClient(Containers, transport);
    this.#tasks = createClient(Tasks, transport);
    this.#snapshots = createClient(Snapshots, transport);
  }

  /** Returns the container, or undefined when it does not exist. */
  async getContainer(
    namespace: string,
    id: string,
    signal: AbortSignal,
  ): Promise<ContainerInfo | undefined> {
    try {
      const { container } = await this.#containers.get(
        { id },
        callOptions(namespace, signal),
      );
      return {
        id,
        runtime: container?.runtime?.name ?? "",
        snapshotter: container?.snapshotter ?? "",
        snapshotKey: container?.snapshotKey ?? "",
        readOnlyRootfs: specReadOnly(container?.spec?.value),
      };
    } catch (error) {
      return undefinedIfNotFound(
        error,
        `get container "${id}" in namespace "${namespace}"`,
      );
    }
  }

  /** Returns the container's task, or undefined when it has none. */
  async getTask(
    namespace: string,
    containerId: string,
    signal: AbortSignal,
  ): Promise<TaskInfo | undefined> {
    try {
      const { process } = await this.#tasks.get(
        { containerId },
        callOptions(namespace, signal),
      );
      return {
        pid: process?.pid ?? 0,
        status: process?.status ?? Status.UNKNOWN,
      };
    } catch (error) {
      return undefinedIfNotFound(
        error,
        `get the task of container "${containerId}" in namespace ` +
          `"${namespace}"`,
      );
    }
  }

  /**
   * Returns the mounts of an existing snapshot. Rejects with NotFound when
   * the snapshot does not exist.
   */
  async snapshotMounts(
    namespace: string,
    snapshotter: string,
    key: string,
    signal: AbortSignal,
  ): Promise<Mount[]> {
    try {
      const { mounts } = await this.#snapshots.mounts(
        { snapshotter, key },
        callOptions(namespace, signal),
      );
      return mounts;
    } catch (error) {
      throw callFailed(
        error,
        `get the mounts of snapshot "${key}" of snapshotter ` +
          `"${snapshotter}" in namespace "${namespace}"`,
      );
    }
  }
}

/**
 * Reads `root.readonly` from an OCI runtime spec in JSON, which is how
 * containerd stores it. A spec that does not parse counts as writable:
 * its task could not start either.
 */
function specReadOnly(spec: Uint8Array | undefined): boolean {
  if (spec === undefined || spec.length === 0) {
    return false;
  }
  try {
    const parsed = JSON.parse(new TextDecoder().decode(spec)) as {
      root?: { readonly?: unknown };
    };
    return parsed.root?.readonly === true;
  } catch {
    return false;
  }
}

function callOptions(namespace: string, signal: AbortSignal) {
  return {
    headers: { [namespaceHeaderGrpc]: namespace },
    signal,
    timeoutMs: callTimeoutMs,
  };
}

function undefinedIfNotFound(error: unknown, action: string): undefined {
  const failure = TransferError.from(error);
  if (failure.code === Code.NotFound) {
    return undefined;
  }
  throw callFailed(failure, action);
}

/** Wraps a failed call with what was asked, keeping containerd's code. */
function callFailed(error: unknown, action: string): TransferError {
  const failure = TransferError.from(error);
  return new TransferError(
    `containerd failed to ${action}: ${failure.rawMessage}`,
    failure.code,
    error,
  );
}
