/**
 * A transfer endpoint: the Transfer and Streaming services, served over
 * ttrpc, gRPC or both, with pluggable transferrers.
 */
import type { Stats } from "node:fs";
import {
  chmod,
  chown,
  link,
  lstat,
  mkdtemp,
  rmdir,
  unlink,
} from "node:fs/promises";
import { dirname, join } from "node:path";
import { createServiceImplSpec } from "@connectrpc/connect";
import { Code, codeOfNodeError, TransferError } from "../errors/index.js";
import { Streaming } from "../gen/containerd/services/streaming/v1/streaming_pb.js";
import { Transfer } from "../gen/containerd/services/transfer/v1/transfer_pb.js";
import { createGrpcServer } from "../grpc/index.js";
import {
  checkReceiveOptions,
  largeWindowBytes,
  StreamRegistry,
  type StreamRegistryOptions,
} from "../streaming/index.js";
import {
  checkSocketPathLength,
  removeStaleSocket,
  socketInUse,
} from "../transport/socket-path.js";
import { createTtrpcServer } from "../ttrpc/index.js";
import { type ContainerRoots, FolderRoots } from "./container-roots.js";
import { debugLogger, type Logger } from "./logger.js";
import { createTransferService } from "./transfer-service.js";
import type { Transferrer } from "./transferrer.js";
import { containerFsTransferrer } from "./transferrers/container-fs.js";
import { echoTransferrer } from "./transferrers/echo.js";

export interface TransferServerOptions {
  /** Folder whose `<container id>/rootfs` folders are the containers. */
  root?: string;
  /** Source of the container roots; overrides `root`. */
  containers?: ContainerRoots;
  /** Transferrers tried before the built-in ones. */
  transferrers?: Transferrer[];
  /**
   * Bytes granted to client senders at a time, 1 to 1073741823. Default
   * 4 MiB. A Go client
   * still sends its 32 KiB chunks within it.
   */
  windowBytes?: number;
  streams?: StreamRegistryOptions;
  log?: Logger;
}

export interface ListenOptions {
  /** Unix socket path for ttrpc. */
  ttrpc?: string;
  /** Unix socket path for gRPC. */
  grpc?: string;
  /**
   * Group id allowed to connect: the sockets get mode 0660 and this
   * group. Without it they get mode 0600, for the owner only.
   */
  gid?: number;
}

interface Listener {
  close(): Promise<void>;
}

interface SocketServer extends Listener {
  listen(path: string): Promise<void>;
}

export class TransferServer {
  readonly registry: StreamRegistry;
  readonly log: Logger;
  readonly #services;
  readonly #listeners: Listener[] = [];

  constructor(options: TransferServerOptions = {}) {
    this.log = options.log ?? debugLogger;
    this.registry = new StreamRegistry(options.streams);
    const containers =
      options.containers ??
      (options.root === undefined ? undefined : new FolderRoots(options.root));
    // Checked with or without containers, so that a bad value fails here
    // rather than when containers are added.
    const windowBytes = checkReceiveOptions({
      windowBytes: options.windowBytes ?? largeWindowBytes,
    });
    const transferrers = [
      ...(options.transferrers ?? []),
      ...(containers
        ? [containerFsTransferrer(containers, { windowBytes })]
        : []),
      echoTransferrer(),
    ];
    const streaming = this.registry.service();
    const log = this.log;
    this.#services = [
      createServiceImplSpec<typeof Streaming>(Streaming, {
        stream: (requests, context) =>
          logRejected(streaming.stream(requests, context), log),
      }),
      createServiceImplSpec<typeof Transfer>(
        Transfer,
        createTransferService({
          registry: this.registry,
          transferrers,
          log: this.log,
        }),
      ),
    ];
  }

  /**
   * Starts serving on the given sockets. A socket file left by a server
   * that exited is replaced. Rejects with AlreadyExists when a server
   * still accepts connections on one of the paths.
   */
  async listen(options: ListenOptions): Promise<void> {
    checkListenOptions(options);
    const sockets: [string, string, () => SocketServer][] = [];
    if (options.ttrpc) {
      sockets.push([
        "ttrpc",
        options.ttrpc,
        () => createTtrpcServer({ services: this.#services }),
      ]);
    }
    if (options.grpc) {
      sockets.push([
        "gRPC",
        options.grpc,
        () => createGrpcServer({ services: this.#services }),
      ]);
    }
    // Either every socket listens or none does: a failure closes the
    // sockets this call opened before it.
    const opened: Listener[] = [];
    try {
      for (const [protocol, path, create] of sockets) {
        opened.push(await listenOnSocket(create(), path, options.gid));
        this.log.info(`serving ${protocol}`, { socket: path });
      }
    } catch (error) {
      await Promise.allSettled(opened.map((l) => l.close()));
      throw error;
    }
    this.#listeners.push(...opened);
  }

  /** Stops serving and aborts every open stream. */
  async close(): Promise<void> {
    this.registry.close();
    const listeners = this.#listeners.splice(0);
    await Promise.all(listeners.map((l) => l.close()));
    // A server that never listened did not start, so it does not stop.
    if (listeners.length > 0) {
      this.log.info("server stopped");
    }
  }
}

/**
 * Throws InvalidArgument for listen options that name no socket, the same
 * path twice, or a group id that is not one.
 */
function checkListenOptions(options: ListenOptions): void {
  if (!options.ttrpc && !options.grpc) {
    throw new TransferError(
      "nothing to listen on: give a socket path as the ttrpc or grpc option",
      Code.InvalidArgument,
    );
  }
  if (options.ttrpc && options.ttrpc === options.grpc) {
    throw new TransferError(
      `cannot listen for ttrpc and gRPC on the same socket ${options.ttrpc}: ` +
        "give each protocol its own path",
      Code.InvalidArgument,
    );
  }
  const gid = options.gid;
  if (
    gid !== undefined &&
    !(Number.isInteger(gid) && gid >= 0 && gid < 2 ** 32 - 1)
  ) {
    throw new TransferError(
      `invalid group id ${gid}: give a whole number from 0 to ${2 ** 32 - 2}`,
      Code.InvalidArgument,
    );
  }
}

/**
 * Returns the error for a failed system call while listening on `path`.
 * The staging folder beside the socket is an internal step, so a failure
 * there names the socket's folder instead.
 */
function listenError(error: unknown, path: string): TransferError {
  const code = (error as NodeJS.ErrnoException).code;
  let reason = (error as Error).message;
  if (code === "ENOENT") {
    reason = `folder ${dirname(path)} does not exist; create it first`;
  } else if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
    reason = `cannot create a socket in folder ${dirname(path)} (${code})`;
  }
  return new TransferError(
    `cannot listen on ${path}: ${reason}`,
    codeOfNodeError(error) ?? Code.Unknown,
    error,
  );
}

/**
 * Makes `server` listen on `path` with the final mode and group from the
 * first moment. The server listens in a new private directory beside
 * `path`, the socket gets its mode and group there, and a hard link then
 * puts it at `path`. A link never replaces a file, so two servers starting
 * together cannot both take the path. Closing the listener removes `path`
 * unless another socket has replaced it.
 */
async function listenOnSocket(
  server: SocketServer,
  path: string,
  gid: number | undefined,
): Promise<Listener> {
  try {
    checkSocketPathLength(path);
  } catch (error) {
    throw TransferError.from(error);
  }
  await removeStaleSocket(path).catch((error: unknown) => {
    // A system call that failed carries its name, unlike the errors that
    // removeStaleSocket raises itself.
    if ((error as NodeJS.ErrnoException).syscall !== undefined) {
      throw listenError(error, path);
    }
    throw TransferError.from(error);
  });
  let staging: string | undefined;
  let linked: Stats;
  try {
    staging = await mkdtemp(join(dirname(path), ".ct"));
    const stagedPath = join(staging, "s");
    await server.listen(stagedPath);
    await chmod(stagedPath, gid === undefined ? 0o600 : 0o660);
    if (gid !== undefined) {
      await chown(stagedPath, -1, gid);
    }
    await link(stagedPath, path).catch((error: NodeJS.ErrnoException) => {
      throw error.code === "EEXIST"
        ? TransferError.from(socketInUse(path))
        : error;
    });
    linked = await lstat(stagedPath);
  } catch (error) {
    await server.close();
    throw error instanceof TransferError ? error : listenError(error, path);
  } finally {
    if (staging !== undefined) {
      await unlink(join(staging, "s")).catch(() => {});
      await rmdir(staging).catch(() => {});
    }
  }

  return {
    async close() {
      await server.close();
      const current = await lstat(path).catch(() => undefined);
      if (current?.dev === linked.dev && current.ino === linked.ino) {
        await unlink(path).catch(() => {});
      }
    },
  };
}

/**
 * Passes on the messages of a Streaming call. A ResourceExhausted failure,
 * such as a full stream registry, is logged before it is rethrown, since
 * it fails every client while the server is otherwise silent.
 */
async function* logRejected<T>(
  messages: AsyncIterable<T>,
  log: Logger,
): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (error) {
    const failure = TransferError.from(error);
    if (failure.code === Code.ResourceExhausted) {
      log.warn("stream rejected", {
        code: failure.kind,
        error: failure.rawMessage,
      });
    }
    throw error;
  }
}
