/**
 * The helper process behind snapshot mounts: a shell in a private mount
 * namespace (`unshare --mount --propagation private`) that runs mount(8),
 * reports the mounts done, and unmounts when its standard input gets a
 * line or ends. The namespace ends with the helper, so its mounts never
 * outlive it, even when the server is killed.
 */
import { type ChildProcess, spawn } from "node:child_process";
import type { Mount } from "../gen/containerd/types/mount_pb.js";

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
export class MountHelper {
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
