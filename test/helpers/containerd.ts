/**
 * Finds the containerd 1.7 daemon that `ci/containerd-start.sh` started,
 * through the `peers.env` file it writes. Tests that need the daemon call
 * {@link requireContainerd}: without a usable daemon they are skipped on a
 * developer's machine, but fail when the `CI` environment variable is set,
 * so CI never passes by skipping them.
 */
import { readFileSync } from "node:fs";
import type { TestContext } from "node:test";

/** peers.env used when `CONTAINERD_TEST_ENV` is not set. */
export const defaultTestEnvPath = "/tmp/ctd-test/peers.env";

/** The daemon and test fixtures that `ci/containerd-start.sh` set up. */
export interface ContainerdEnv {
  /** The peers.env file these values come from. */
  file: string;
  /** gRPC socket path. */
  address: string;
  /** ttrpc socket path of the daemon. */
  ttrpcAddress: string;
  namespace: string;
  /** containerd's version as `ctr version` reports it, e.g. 1.7.24~ds1. */
  version: string;
  pid: number;
  /** Folder with bin/ctr, bin/runc and the other installed binaries. */
  prefix: string;
  /** Path of the `ctr` binary that matches the daemon. */
  ctr: string;
  runc: string;
  /** The busybox image imported at start, `example.test/bb:1`. */
  image: string;
  imageDigest: string;
  /** Running container `c1`, unless the daemon was started without it. */
  c1?: ContainerInfo;
  /** Loopback registries, when started with `--registry`. */
  registry?: RegistryInfo;
  /** Every KEY=VALUE line of the file. */
  values: Readonly<Record<string, string>>;
}

export interface ContainerInfo {
  id: string;
  /** The container's mounted root filesystem on the host. */
  rootfs: string;
  pid: number;
  shimAddress: string;
}

export interface RegistryInfo {
  /** host:port of the plain HTTP registry. */
  plain: string;
  /** host:port of the HTTPS registry that containerd trusts. */
  tls: string;
  /** PEM file of the throw-away CA behind `tls` and `auth`. */
  caFile: string;
  /** The HTTPS registry with basic auth, when started with credentials. */
  auth?: { address: string; user: string; password: string };
}

/** Whether this is a CI run, where tests must not skip for lack of peers. */
export function isCI(): boolean {
  const value = process.env.CI ?? "";
  return value !== "" && value !== "0" && value !== "false";
}

/**
 * Returns the running daemon's details, or skips the test when there is
 * none. Throws instead of skipping under CI, and also when
 * `CONTAINERD_TEST_ENV` names a file that is missing or stale, because
 * then a daemon was expected.
 */
export function requireContainerd(t: TestContext): ContainerdEnv | undefined {
  const explicit = process.env.CONTAINERD_TEST_ENV;
  const file = explicit || defaultTestEnvPath;
  const result = loadContainerdEnv(file);
  if (typeof result !== "string") {
    return result;
  }

  const message =
    `containerd 1.7 is not available: ${result}. Start it with the ` +
    "commands of README.md (ci/containerd-setup.sh, then " +
    "ci/containerd-start.sh with --registry and --registry-auth) and set " +
    "CONTAINERD_TEST_ENV to the peers.env it writes; without it, the " +
    `tests read ${defaultTestEnvPath}`;
  if (isCI() || explicit) {
    throw new Error(message);
  }
  t.skip(message);
  return undefined;
}

/**
 * Reads and checks a peers.env file. Returns the reason as a string when
 * the file is missing or the daemon it names is not running.
 */
export function loadContainerdEnv(file: string): ContainerdEnv | string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    return `cannot read ${file}: ${(error as Error).message}`;
  }
  const values = parseEnv(text);

  const missing = ["CONTAINERD_ADDRESS", "CONTAINERD_PID", "CTR"].filter(
    (key) => !values[key],
  );
  if (missing.length > 0) {
    return `${file} lacks ${missing.join(", ")}`;
  }
  const pid = Number(values.CONTAINERD_PID);
  if (!isRunning(pid)) {
    return `containerd pid ${pid} from ${file} is not running`;
  }

  const get = (key: string) => values[key] ?? "";
  return {
    file,
    address: get("CONTAINERD_ADDRESS"),
    ttrpcAddress: get("CONTAINERD_TTRPC_ADDRESS"),
    namespace: get("CONTAINERD_NAMESPACE") || "default",
    version: get("CONTAINERD_VERSION"),
    pid,
    prefix: get("CONTAINERD_PREFIX"),
    ctr: get("CTR"),
    runc: get("RUNC"),
    image: get("TEST_IMAGE"),
    imageDigest: get("TEST_IMAGE_DIGEST"),
    c1: values.C1_ID
      ? {
          id: get("C1_ID"),
          rootfs: get("C1_ROOTFS"),
          pid: Number(get("C1_PID")),
          shimAddress: get("C1_SHIM_ADDRESS"),
        }
      : undefined,
    registry: values.TEST_REGISTRY_TLS
      ? {
          plain: get("TEST_REGISTRY_PLAIN"),
          tls: get("TEST_REGISTRY_TLS"),
          caFile: get("TEST_REGISTRY_CA"),
          auth: values.TEST_REGISTRY_AUTH
            ? {
                address: get("TEST_REGISTRY_AUTH"),
                user: get("TEST_REGISTRY_USER"),
                password: get("TEST_REGISTRY_PASSWORD"),
              }
            : undefined,
        }
      : undefined,
    values,
  };
}

/** Parses KEY=VALUE lines; blank lines and `#` comments are ignored. */
function parseEnv(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) {
      continue;
    }
    const equals = trimmed.indexOf("=");
    if (equals > 0) {
      values[trimmed.slice(0, equals)] = trimmed.slice(equals + 1);
    }
  }
  return values;
}

function isRunning(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) {
    return false;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
