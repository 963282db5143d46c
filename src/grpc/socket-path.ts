/**
 * Checks on the unix socket path a server is about to listen on.
 */
import { lstat, unlink } from "node:fs/promises";
import * as net from "node:net";
import { debuglog } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";

const debug = debuglog("grpc");

// Connecting to a stale socket fails at once with ECONNREFUSED. The timeout
// only bounds a connect that stays pending, and counts it as live.
const probeTimeoutMs = 1000;

/**
 * Makes `path` free for `listen()`: a socket file left behind by a process
 * that exited is removed. Rejects with AlreadyExists when a process still
 * accepts connections on it, and with InvalidArgument when the path is a
 * file of another type.
 */
export async function prepareSocketPath(path: string): Promise<void> {
  const stats = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") {
      return undefined;
    }
    throw error;
  });
  if (!stats) {
    return;
  }
  if (!stats.isSocket()) {
    throw new ConnectError(
      `cannot listen on ${path}: it exists and is not a socket`,
      Code.InvalidArgument,
    );
  }

  if (await acceptsConnections(path)) {
    throw new ConnectError(
      `cannot listen on ${path}: another process is listening on it`,
      Code.AlreadyExists,
    );
  }
  await unlink(path);
  debug("removed stale socket %s", path);
}

function acceptsConnections(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(path);
    const done = (accepted: boolean) => {
      socket.destroy();
      resolve(accepted);
    };
    socket.setTimeout(probeTimeoutMs, () => done(true));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}
