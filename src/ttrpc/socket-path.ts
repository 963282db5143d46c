/**
 * Makes a unix socket path free for a server to listen on.
 */
import { lstat, unlink } from "node:fs/promises";
import * as net from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Removes a socket file that no process accepts connections on, as a
 * server that exited without closing leaves behind. Rejects with
 * AlreadyExists when a process accepts connections on `path`, and with
 * InvalidArgument when `path` is a file of another type. A missing path
 * is left as it is.
 */
export async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      return;
    }
    throw error;
  }
  if (!isSocket) {
    throw new ConnectError(
      `cannot listen on ${path}: the path exists and is not a socket`,
      Code.InvalidArgument,
    );
  }

  if (await isAccepting(path)) {
    throw new ConnectError(
      `cannot listen on ${path}: a process accepts connections on it`,
      Code.AlreadyExists,
    );
  }
  await unlink(path);
}

/**
 * Whether a connection to `path` succeeds. A stale socket refuses at once
 * (ECONNREFUSED); a live listener that does not accept within 1 s counts
 * as live.
 */
function isAccepting(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect({ path });
    const settle = (accepting: boolean) => {
      probe.destroy();
      resolve(accepting);
    };
    probe.setTimeout(1000, () => settle(true));
    probe.once("connect", () => settle(true));
    probe.once("error", () => settle(false));
  });
}
