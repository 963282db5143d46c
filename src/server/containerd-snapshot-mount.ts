/**
 * Mounts the snapshot of a container that has no running task, for the
 * time of one or more concurrent copies.
 *
 * The mounts are made with mount(8) by a helper process in a private
 * mount namespace (`unshare --mount --propagation private`), so they
 * never appear in the host's mount table. The server reaches them through
 * `/proc/<helper pid>/root`. The helper unmounts them when its standard
 * input gets a line or ends, and its namespace goes away when it exits,
 * so the mounts also disappear when the server itself is killed.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { constants } from "node:fs";
import { type FileHandle, mkdtemp, open, rmdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { abortReason, Code, TransferError } from "../errors/index.js";
import { type Mount, MountSchema } from "../gen/containerd/types/mount_pb.js";
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

/** Time allowed for mount(8) to finish. */
const mountTimeoutMs = 30_000;
/** Time allowed for the helper to unmount and exit before SIGKILL. */
const unmountTimeoutMs = 10_000;
/** Bytes of the helper's standard error kept for messages. */
const maxErrorBytes = 4096;
/**
 * Length of the mount options from which the overlay `lowerdir` paths are
 * made relative: mount(2) reads at most one page of options, 4096 bytes
 * on x86-64.
 */
const maxOptionsBytes = 4000;

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
      const mounted = await untilAborted(entry.ready, signal);
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

/**
 * The shell program of the helper. Arguments: the target, then four per
 * mount: type, source, options and the directory to run mount(8) in
 * (relative overlay `lowerdir` paths are resolved from there).
 */
const helperScript = `set -eu
target=$1
shift
count=0
while [ "$#" -ge 4 ]; do
  (cd "$4" && mount -t "$1" -o "$3" -- "$2" "$target")
  count=$((count + 1))
  shift 4
done
echo mounted
read -r _ || :
while [ "$count" -gt 0 ]; do
  umount -R -- "$target"
  count=$((count - 1))
done
`;

/** One helper process and the mounts in its namespace. */
class MountHelper {
  readonly #child: ChildProcess;
  readonly #exited: Promise<number | string>;
  #stderr = "";
  #reportedMounted = false;
  #hasExited = false;

  constructor(unshare: string, target: string, mounts: readonly Mount[]) {
    const args = mounts.flatMap((mount) => mountArguments(mount));
    // detached: a terminal's SIGINT to the server's process group must not
    // end the helper while a copy still uses its mounts.
    this.#child = spawn(
      unshare,
      [
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        helperScript,
        "sh",
        target,
        ...args,
      ],
      { stdio: ["pipe", "pipe", "pipe"], detached: true },
    );
    this.#child.stderr?.setEncoding("utf8");
    this.#child.stderr?.on("data", (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-maxErrorBytes);
    });
    // A helper that exited closes the pipe; `exited` reports why.
    this.#child.stdin?.on("error", () => {});
    this.#exited = new Promise((resolve) => {
      this.#child.once("error", (error) => {
        this.#hasExited = true;
        resolve(error.message);
      });
      this.#child.once("exit", (code, signal) => {
        this.#hasExited = true;
        resolve(code ?? `${signal}`);
      });
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Whether the helper reported its mounts done. */
  get reportedMounted(): boolean {
    return this.#reportedMounted;
  }

  /**
   * Resolves once the helper reports every mount done. Rejects when it
   * exits first, with mount(8)'s error output, or after 30 s.
   */
  async mounted(): Promise<void> {
    const stdout = this.#child.stdout!;
    stdout.setEncoding("utf8");
    let output = "";
    const reported = new Promise<void>((resolve) => {
      stdout.on("data", (chunk: string) => {
        output += chunk;
        if (output.includes("mounted\n")) {
          resolve();
        }
      });
    });

    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), mountTimeoutMs);
    });
    const outcome = await Promise.race([
      reported.then(() => "mounted" as const),
      this.#exited.then((status) => ({ status })),
      timedOut,
    ]);
    clearTimeout(timer);

    if (outcome === "mounted") {
      this.#reportedMounted = true;
      return;
    }
    if (outcome === "timeout") {
      throw new Error(`mount(8) did not finish in ${mountTimeoutMs} ms`);
    }
    throw new Error(
      `the mount helper exited with ${outcome.status}: ${this.#errorText()}`,
    );
  }

  /**
   * Asks the helper to unmount and exit, and kills it after 10 s, or at
   * once when it never reported its mounts.
   * Resolves with what failed, or undefined.
   */
  async stop(): Promise<string | undefined> {
    this.#child.stdin?.end("\n");
    if (!this.#reportedMounted) {
      this.#kill();
    }
    const timer = setTimeout(() => this.#kill(), unmountTimeoutMs);
    const status = await this.#exited;
    clearTimeout(timer);
    if (status === 0 || !this.#reportedMounted) {
      return undefined;
    }
    return `the mount helper exited with ${status}: ${this.#errorText()}`;
  }

  /** Kills the helper's process group, including a hanging mount(8). */
  #kill(): void {
    // Once the helper is reaped, its pid may name another process group.
    const pid = this.#child.pid;
    if (pid === undefined || this.#hasExited) {
      return;
    }
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // The group is gone already.
    }
  }

  #errorText(): string {
    return this.#stderr.trim() || "no error output";
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

/** Returns the four helper arguments of one mount. */
export function mountArguments(mount: Mount): string[] {
  const options = [...mount.options];
  let directory = "/";
  if (mount.type === "overlay" && options.join(",").length > maxOptionsBytes) {
    directory = relativeLowerDirs(options);
  }
  return [mount.type, mount.source, options.join(","), directory];
}

/**
 * Rewrites the `lowerdir` option in place with paths relative to their
 * longest common parent directory, and returns that directory. Image
 * layers sit side by side in one snapshotter folder, so this shortens
 * each path to a few characters.
 */
export function relativeLowerDirs(options: string[]): string {
  const index = options.findIndex((o) => o.startsWith("lowerdir="));
  if (index < 0) {
    return "/";
  }
  const paths = options[index]!.slice("lowerdir=".length).split(":");
  let common = paths[0] ?? "";
  for (const path of paths) {
    while (!path.startsWith(common)) {
      common = common.slice(0, -1);
    }
  }
  common = common.slice(0, common.lastIndexOf("/") + 1);
  if (common.length <= 1) {
    return "/";
  }
  const relative = paths.map((path) => path.slice(common.length));
  options[index] = `lowerdir=${relative.join(":")}`;
  return common;
}

/** Waits for `promise`, or rejects as soon as `signal` aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    return Promise.reject(abortReason(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
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
