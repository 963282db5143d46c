/**
 * Set-up for tests against a real containerd 1.7 with runc, started by
 * ci/containerd-start.sh and found by test/helpers/containerd.ts. Without
 * it a test is skipped, except under CI, where it fails.
 *
 * Each helper that creates something (a server, a container, a task, a
 * namespace) removes it again when the test ends.
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Writable } from "node:stream";
import type { TestContext } from "node:test";
import { promisify } from "node:util";
import { Parser, type ReadEntry } from "tar";
import { type Client, connect } from "../../src/client/index.js";
import {
  ContainerdRoots,
  type LogFields,
  type Logger,
  TransferServer,
} from "../../src/server/index.js";
import {
  ContainerPath,
  ReadStream,
  WriteStream,
} from "../../src/transfer/index.js";
import { requireContainerd } from "../helpers/containerd.js";
import { type RawEntry, rawTar } from "../helpers/raw-tar.js";

const run = promisify(execFile);

/** The facts of peers.env that these tests use. */
export interface ContainerdEnv {
  /** containerd's gRPC socket. */
  address: string;
  ctr: string;
  runc: string;
  image: string;
  /** Folder of peers.env: containerd's root, state and runc root. */
  workdir: string;
}

/**
 * Finds the CI containerd with requireContainerd: returns undefined after
 * marking the test skipped when there is none, and throws under CI.
 */
export function containerdEnv(t: TestContext): ContainerdEnv | undefined {
  const env = requireContainerd(t);
  if (env === undefined) {
    return undefined;
  }
  return {
    address: env.address,
    ctr: env.ctr,
    runc: env.runc,
    image: env.image,
    workdir: dirname(env.file),
  };
}

/** Runs ctr in `namespace` and returns its standard output. */
export async function ctr(
  env: ContainerdEnv,
  namespace: string,
  ...args: string[]
): Promise<string> {
  try {
    const { stdout } = await run(
      env.ctr,
      ["--address", env.address, "--namespace", namespace, ...args],
      { timeout: 60_000 },
    );
    return stdout;
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new Error(`ctr ${args.join(" ")} failed: ${stderr ?? error}`);
  }
}

/** Returns a container id that no other test run uses. */
export function uniqueId(name: string): string {
  return `ctt-${name}-${randomBytes(3).toString("hex")}`;
}

/** Log lines of a server, for checks on what it did. */
export class RecordingLogger implements Logger {
  readonly lines: { level: string; message: string; fields: LogFields }[] = [];

  info(message: string, fields: LogFields = {}): void {
    this.lines.push({ level: "info", message, fields });
  }

  warn(message: string, fields: LogFields = {}): void {
    this.lines.push({ level: "warn", message, fields });
  }

  error(message: string, fields: LogFields = {}): void {
    this.lines.push({ level: "error", message, fields });
  }

  count(message: string): number {
    return this.lines.filter((line) => line.message === message).length;
  }
}

export interface Served {
  server: TransferServer;
  client: Client;
  socket: string;
  log: RecordingLogger;
  /** The folder in which the server creates snapshot mount points. */
  mountDirectory: string;
  /** Opens another client on the server's socket in `namespace`. */
  clientIn(namespace: string): Client;
}

/**
 * Starts a TransferServer backed by containerd on a temporary ttrpc
 * socket, with a client in the `default` namespace.
 */
export async function serveContainerd(
  t: TestContext,
  env: ContainerdEnv,
): Promise<Served> {
  const dir = await mkdtemp(join(tmpdir(), "ctt-"));
  const mountDirectory = join(dir, "mounts");
  await run("mkdir", ["-m", "0700", mountDirectory]);
  const socket = join(dir, "transfer.sock");
  const log = new RecordingLogger();
  const roots = new ContainerdRoots(env.address, { log, mountDirectory });
  const server = new TransferServer({ containers: roots, log });
  await server.listen({ ttrpc: socket });

  const clients: Client[] = [];
  const clientIn = (namespace: string) => {
    const client = connect({ address: socket, protocol: "ttrpc", namespace });
    clients.push(client);
    return client;
  };
  const client = clientIn("default");
  t.after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await server.close();
    await roots.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { server, client, socket, log, mountDirectory, clientIn };
}

export interface RunOptions {
  /** `ctr run --mount` values, such as `type=tmpfs,src=tmpfs,dst=/data`. */
  mounts?: string[];
  readOnly?: boolean;
  /** Creates the container without starting a task. */
  noTask?: boolean;
  namespace?: string;
}

/**
 * Runs `sleep` in a new container of the test image with the runc, runc
 * root and cgroup parent of ci/containerd-start.sh, or only creates the
 * container with `noTask`. The task and the container are deleted when
 * the test ends.
 */
export async function runContainer(
  t: TestContext,
  env: ContainerdEnv,
  id: string,
  options: RunOptions = {},
): Promise<void> {
  const namespace = options.namespace ?? "default";
  const flags = [
    ...(options.mounts ?? []).flatMap((mount) => ["--mount", mount]),
    ...(options.readOnly ? ["--read-only"] : []),
  ];
  t.after(() => removeContainer(env, namespace, id));
  if (options.noTask) {
    await ctr(env, namespace, "containers", "create", ...flags, env.image, id);
    return;
  }
  const cgroup = `/ctd-${createHash("sha256").update(env.workdir).digest("hex").slice(0, 12)}/${id}`;
  await ctr(
    env,
    namespace,
    "run",
    "-d",
    "--runc-binary",
    env.runc,
    "--runc-root",
    join(env.workdir, "runc"),
    "--cgroup",
    cgroup,
    ...flags,
    env.image,
    id,
    "sleep",
    "3600",
  );
}

/** Kills and deletes the task of `id`, if any, and deletes the container. */
export async function removeContainer(
  env: ContainerdEnv,
  namespace: string,
  id: string,
): Promise<void> {
  await stopTask(env, namespace, id);
  await ctr(env, namespace, "tasks", "delete", id).catch(() => {});
  await ctr(env, namespace, "containers", "delete", id).catch(() => {});
}

/** Kills the task of `id` and waits until it is STOPPED (at most 10 s). */
export async function stopTask(
  env: ContainerdEnv,
  namespace: string,
  id: string,
): Promise<void> {
  await ctr(env, namespace, "tasks", "kill", "-s", "SIGKILL", id).catch(
    () => {},
  );
  for (let i = 0; i < 100; i++) {
    const status = await taskStatus(env, namespace, id);
    if (status === undefined || status === "STOPPED") {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`task ${id} did not stop within 10 s`);
}

/** Returns the task's status from `ctr tasks ls`, or undefined. */
export async function taskStatus(
  env: ContainerdEnv,
  namespace: string,
  id: string,
): Promise<string | undefined> {
  const listing = await ctr(env, namespace, "tasks", "ls");
  const row = listing
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .find((fields) => fields[0] === id);
  return row?.[2];
}

/** Runs a command in the running task of `id` and returns its output. */
export async function exec(
  env: ContainerdEnv,
  id: string,
  ...command: string[]
): Promise<string> {
  // ctr tasks exec may exit before it has copied all of the process's
  // output. So the command writes its output to a file on the container's
  // /dev tmpfs, which stays writable on a read-only root, and this reads
  // the file through the task's /proc root.
  const execId = `e-${randomBytes(4).toString("hex")}`;
  const output = `/dev/.ctt-${execId}.out`;
  await ctr(
    env,
    "default",
    "tasks",
    "exec",
    "--exec-id",
    execId,
    id,
    "sh",
    "-c",
    'out="$1"; shift; "$@" > "$out"',
    "sh",
    output,
    ...command,
  );
  const hostPath = `/proc/${await taskPid(env, id)}/root${output}`;
  try {
    return await readFile(hostPath, "utf8");
  } finally {
    await rm(hostPath, { force: true });
  }
}

/** Returns the host pid of the task of container `id`. */
async function taskPid(env: ContainerdEnv, id: string): Promise<number> {
  const listing = await ctr(env, "default", "tasks", "ls");
  for (const line of listing.split("\n").slice(1)) {
    const [task, pid] = line.trim().split(/\s+/);
    if (task === id && pid !== undefined) {
      return Number(pid);
    }
  }
  throw new Error(`no task ${id} in: ${listing}`);
}

/** Extracts a tar archive of `entries` under `path` in the container. */
export async function copyIn(
  client: Client,
  containerId: string,
  path: string,
  entries: RawEntry[],
): Promise<void> {
  await client.transfer(
    new ReadStream([rawTar(entries)]),
    new ContainerPath({ containerId, path }),
  );
}

/** An entry of an archive copied out. */
export interface TarEntry {
  type: string;
  body: string;
  linkpath: string | undefined;
}

/** Copies `path` out of the container and returns the archive's entries. */
export async function copyOut(
  client: Client,
  containerId: string,
  path: string,
): Promise<Map<string, TarEntry>> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk);
      done();
    },
  });
  await client.transfer(
    new ContainerPath({ containerId, path }),
    new WriteStream(sink),
  );
  return listArchive(Buffer.concat(chunks));
}

/** Parses an archive into its entries by path. */
export function listArchive(archive: Buffer): Promise<Map<string, TarEntry>> {
  const entries = new Map<string, TarEntry>();
  return new Promise((resolve, reject) => {
    const parser = new Parser({
      onReadEntry: (entry: ReadEntry) => {
        const body: Buffer[] = [];
        entry.on("data", (chunk: Buffer) => body.push(chunk));
        entry.on("end", () => {
          entries.set(entry.path.replace(/\/$/, ""), {
            type: entry.type,
            body: Buffer.concat(body).toString(),
            linkpath: entry.linkpath,
          });
        });
      },
    });
    parser.on("error", reject);
    parser.on("end", () => resolve(entries));
    parser.end(archive);
  });
}

/** Lists what is left in the server's mount point folder. */
export function leftoverMountPoints(served: Served): Promise<string[]> {
  return readdir(served.mountDirectory);
}

/** Returns the pids whose command line contains `text`. */
export async function processesMentioning(text: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) {
      continue;
    }
    const cmdline = await readFile(`/proc/${name}/cmdline`, "utf8").catch(
      () => "",
    );
    if (cmdline.includes(text)) {
      found.push(Number(name));
    }
  }
  return found;
}
