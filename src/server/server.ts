/**
 * A transfer endpoint: the Transfer and Streaming services, served over
 * ttrpc, gRPC or both, with pluggable transferrers.
 */
import { createServiceImplSpec } from "@connectrpc/connect";
import { Streaming } from "../gen/containerd/services/streaming/v1/streaming_pb.js";
import { Transfer } from "../gen/containerd/services/transfer/v1/transfer_pb.js";
import { createGrpcServer } from "../grpc/index.js";
import {
  StreamRegistry,
  type StreamRegistryOptions,
} from "../streaming/index.js";
import { createTtrpcServer } from "../ttrpc/index.js";
import { type ContainerRoots, FolderRoots } from "./container-roots.js";
import { debugLogger, type Logger } from "./logger.js";
import { createTransferService } from "./transfer-service.js";
import { containerFsTransferrer } from "./transferrers/container-fs.js";
import { echoTransferrer } from "./transferrers/echo.js";
import type { Transferrer } from "./transferrer.js";

export interface TransferServerOptions {
  /** Folder whose `<container id>/rootfs` folders are the containers. */
  root?: string;
  /** Where container roots come from; overrides `root`. */
  containers?: ContainerRoots;
  /** Transferrers tried before the built-in ones. */
  transferrers?: Transferrer[];
  /** Bytes granted to client senders at a time. Default 64 KiB. */
  windowBytes?: number;
  streams?: StreamRegistryOptions;
  log?: Logger;
}

export interface ListenOptions {
  /** Unix socket path for ttrpc. */
  ttrpc?: string;
  /** Unix socket path for gRPC. */
  grpc?: string;
}

interface Listener {
  close(): Promise<void>;
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
    const transferrers = [
      ...(options.transferrers ?? []),
      ...(containers
        ? [
            containerFsTransferrer(containers, {
              windowBytes: options.windowBytes,
            }),
          ]
        : []),
      echoTransferrer(),
    ];
    this.#services = [
      createServiceImplSpec<typeof Streaming>(
        Streaming,
        this.registry.service(),
      ),
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

  /** Starts serving on the given sockets. */
  async listen(options: ListenOptions): Promise<void> {
    if (options.ttrpc) {
      const server = createTtrpcServer({ services: this.#services });
      await server.listen(options.ttrpc);
      this.#listeners.push(server);
      this.log.info("serving ttrpc", { socket: options.ttrpc });
    }
    if (options.grpc) {
      const server = createGrpcServer({ services: this.#services });
      await server.listen(options.grpc);
      this.#listeners.push(server);
      this.log.info("serving gRPC", { socket: options.grpc });
    }
  }

  /** Stops serving and aborts every open stream. */
  async close(): Promise<void> {
    this.registry.close();
    await Promise.all(this.#listeners.splice(0).map((l) => l.close()));
    this.log.info("server stopped");
  }
}
