import { execFile } from "node:child_process";
import { lstat } from "node:fs/promises";
import { resolve } from "node:path";
import { promisify } from "node:util";
import type { Command } from "commander";
import { TransferError } from "../errors/index.js";
import {
  ContainerdRoots,
  type ContainerRoots,
  type Logger,
  TransferServer,
} from "../server/index.js";
import { checkSocketPathLength } from "../transport/socket-path.js";
import { stderrLogger } from "./stderr-logger.js";
import { usageError } from "./usage.js";

export interface ServeFlags {
  root?: string;
  containerd?: string;
  ttrpc?: string;
  grpc?: string;
  group?: string;
}

/** Adds the `serve` command to `program`. */
export function addServeCommand(program: Command, signal: AbortSignal): void {
  program
    .command("serve")
    .description(
      "serve the Transfer and Streaming services for the containers of a " +
        "containerd daemon, or for containers under a root folder",
    )
    .addHelpText(
      "after",
      "\nGive exactly one of --containerd and --root, and at least one of " +
        "--ttrpc and --grpc.\nThe server runs until SIGINT, SIGTERM or " +
        "SIGHUP stops it.",
    )
    .option(
      "--containerd <socket>",
      "containerd's gRPC socket: copy into and out of its containers",
    )
    .option("--root <dir>", "folder whose <id>/rootfs are containers")
    .option("--ttrpc <socket>", "serve ttrpc on this unix socket")
    .option("--grpc <socket>", "serve gRPC on this unix socket")
    .option(
      "--group <group>",
      "group name or id allowed to connect: sockets get mode 0660 and this " +
        "group (default: mode 0600, owner only)",
    )
    .action((flags: ServeFlags) => runServe(flags, signal));
}

/** Serves until `signal` aborts, then closes every stream and socket. */
export async function runServe(
  flags: ServeFlags,
  signal: AbortSignal,
): Promise<void> {
  if (!flags.ttrpc && !flags.grpc) {
    throw usageError(
      "missing socket: give --ttrpc SOCKET, --grpc SOCKET or both",
    );
  }
  if (
    flags.ttrpc !== undefined &&
    flags.grpc !== undefined &&
    resolve(flags.ttrpc) === resolve(flags.grpc)
  ) {
    throw usageError(
      `invalid sockets: --ttrpc and --grpc both name ${flags.ttrpc}. Give ` +
        "each protocol its own socket",
    );
  }
  for (const socket of [flags.ttrpc, flags.grpc]) {
    try {
      if (socket !== undefined) {
        checkSocketPathLength(socket);
      }
    } catch (error) {
      throw usageError(TransferError.from(error).rawMessage, error);
    }
  }
  if ((flags.root === undefined) === (flags.containerd === undefined)) {
    throw usageError(
      "give exactly one of --containerd SOCKET (containerd's containers) " +
        "and --root DIR (folders as containers)",
    );
  }
  if (flags.root !== undefined) {
    await checkRoot(flags.root);
  }
  const gid =
    flags.group === undefined ? undefined : await groupId(flags.group);

  const log = stderrLogger();
  const containers = await containerRoots(flags, log);
  const server = new TransferServer({
    root: flags.root,
    containers,
    log,
  });
  try {
    await server.listen({ ttrpc: flags.ttrpc, grpc: flags.grpc, gid });
    log.info("server started", {
      ...(flags.containerd === undefined
        ? { root: flags.root }
        : { containerd: flags.containerd }),
      ...(flags.group === undefined ? {} : { group: flags.group }),
      pid: process.pid,
    });
    await new Promise<void>((resolve) => {
      if (signal.aborted) {
        resolve();
      }
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
    log.info("stopping", { reason: String(signal.reason?.message ?? "") });
  } finally {
    await server.close();
    await containers?.close();
  }
}

async function containerRoots(
  flags: ServeFlags,
  log: Logger,
): Promise<(ContainerRoots & { close(): Promise<void> }) | undefined> {
  if (flags.containerd === undefined) {
    return undefined;
  }
  const info = await lstat(flags.containerd).catch(() => undefined);
  if (info === undefined) {
    log.warn("containerd socket not found; copies fail until it exists", {
      containerd: flags.containerd,
    });
  } else if (!info.isSocket()) {
    throw usageError(
      `invalid --containerd ${flags.containerd}: not a unix socket`,
    );
  }
  return new ContainerdRoots(flags.containerd, { log });
}

/** Resolves a group name or numeric id with getent(1), which queries NSS. */
async function groupId(group: string): Promise<number> {
  if (/^\d+$/.test(group)) {
    return Number(group);
  }
  const output = await promisify(execFile)("getent", ["group", group]).then(
    (result) => result.stdout,
    () => "",
  );
  const gid = output.split(":")[2];
  if (gid === undefined || !/^\d+$/.test(gid)) {
    throw usageError(
      `invalid --group ${group}: no such group (getent group ${group} ` +
        "found nothing)",
    );
  }
  return Number(gid);
}

/** Rejects unless `root` is a directory, naming what it is instead. */
async function checkRoot(root: string): Promise<void> {
  const info = await lstat(root).catch((error: NodeJS.ErrnoException) => {
    throw usageError(
      `invalid --root ${root}: ${error.code === "ENOENT" ? "no such directory" : error.message}. ` +
        "Give the folder that holds <container id>/rootfs",
      error,
    );
  });
  if (!info.isDirectory()) {
    throw usageError(
      `invalid --root ${root}: not a directory. Give the folder that ` +
        "holds <container id>/rootfs",
    );
  }
}
