/**
 * Makes a unix socket path free for a server to listen on.
 */
import { statSync } from "node:fs";
import { lstat, unlink } from "node:fs/promises";
import { connect, type Server } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Maximum length of a unix socket path in bytes. Linux's `sun_path` has
 * room for 108 bytes, the last of them the terminating zero.
 */
export const socketPathMaxBytes = 107;

/**
 * Throws InvalidArgument for a socket path longer than
 * {@link socketPathMaxBytes}, which no process could connect to.
 */
export function checkSocketPathLength(path: string): void {
  const bytes = Buffer.byteLength(path);
  if (bytes > socketPathMaxBytes) {
    throw new ConnectError(
      `invalid socket path ${path}: it is ${bytes} bytes long and a unix ` +
        `socket path holds at most ${socketPathMaxBytes}. Choose a shorter path`,
      Code.InvalidArgument,
    );
  }
}

/**
 * Returns the socket path of a client's address option, a path or
 * `unix://PATH`. Throws InvalidArgument when it names no path, which
 * `net.connect` would take as a TCP connection to the local host.
 */
export function unixPath(option: string): string {
  const path =
    typeof option === "string" && option.startsWith("unix://")
      ? option.slice("unix://".length)
      : option;
  if (typeof path !== "string" || path === "") {
    throw new ConnectError(
      `invalid socket path ${JSON.stringify(option)}: give the path of a ` +
        "unix socket, alone or as unix://PATH",
      Code.InvalidArgument,
    );
  }
  return path;
}

/** How long a connect that neither succeeds nor fails may stay pending. */
const probeTimeoutMs = 1000;

/**
 * Removes a socket file that no process accepts connections on, as a
 * server that exited without closing leaves behind. A missing path is
 * left as it is. Rejects with AlreadyExists when a server still listens
 * on `path`, and with InvalidArgument when `path` is not a socket.
 */
export async function removeStaleSocket(path: string): Promise<void> {
  const info = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") {
      return undefined;
    }
    throw error;
  });
  if (info === undefined) {
    return;
  }
  if (!info.isSocket()) {
    throw new ConnectError(
      `cannot listen on ${path}: it exists and is not a socket. Remove it ` +
        "or choose another path",
      Code.InvalidArgument,
    );
  }
  if (await acceptsConnections(path)) {
    throw socketInUse(path);
  }
  await unlink(path);
}

/**
 * Makes `server` listen on the unix socket `path`, after removing a stale
 * socket file there. Rejects as {@link removeStaleSocket} does, or with the
 * error of `listen()`.
 */
export async function listenOnPath(
  server: Server,
  path: string,
): Promise<void> {
  await removeStaleSocket(path);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/** Returns the error for a socket path that another server listens on. */
export function socketInUse(path: string): ConnectError {
  return new ConnectError(
    `cannot listen on ${path}: another server is listening on it. Stop ` +
      "that server or choose another path",
    Code.AlreadyExists,
  );
}

/**
 * Tries to connect. A socket without a listener refuses at once with
 * ECONNREFUSED. A connect still pending after the probe timeout counts as
 * a live server, and any other error is passed on.
 */
function acceptsConnections(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const settle = (accepting: boolean) => {
      socket.destroy();
      resolve(accepting);
    };
    socket.setTimeout(probeTimeoutMs, () => settle(true));
    socket.once("connect", () => settle(true));
    socket.once("error", (error: NodeJS.ErrnoException) => {
      socket.destroy();
      if (error.code === "ECONNREFUSED" || error.code === "ENOENT") {
        resolve(false);
      } else {
        reject(error);
      }
    });
  });
}

/**
 * Returns what to do after a failed connect to the unix socket `path`,
 * judged from the system error code found in `error` or its causes.
 */
export function connectHint(path: string, error: unknown): string {
  switch (systemErrorCode(error)) {
    case "ENOENT":
      return (
        "no socket exists at that path: check the path, and that the " +
        "daemon or `containerd-transfer serve` is running"
      );
    case "ECONNREFUSED":
      if (!isSocket(path)) {
        return "it is not a socket: name the socket the daemon listens on";
      }
      return (
        "nothing accepts connections on it: start the daemon or " +
        "`containerd-transfer serve`"
      );
    case "EACCES":
      return "permission denied: run as a user that may open it, often root";
    default:
      return "check that the daemon is running and the socket path is right";
  }
}

function systemErrorCode(error: unknown): string | undefined {
  for (let cause = error, depth = 0; depth < 8; depth++) {
    if (!(cause instanceof Error)) {
      return undefined;
    }
    const code = (cause as NodeJS.ErrnoException).code;
    if (typeof code === "string" && code.startsWith("E")) {
      return code;
    }
    cause = cause.cause;
  }
  return undefined;
}

function isSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}
