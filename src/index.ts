/**
 * containerd-transfer: copy files into and out of containers, and move
 * images, through containerd's Transfer service over gRPC or ttrpc.
 */
export * from "./client/index.js";
export {
  Code,
  codeName,
  type ErrorKind,
  TransferError,
} from "./errors/index.js";
export {
  ContainerdRoots,
  type ContainerdRootsOptions,
  type ContainerRoots,
  FolderRoots,
  type Logger,
  type Transferrer,
  TransferServer,
  type TransferServerOptions,
} from "./server/index.js";
export {
  type ByteSink,
  type ByteSource,
  createStreamCreator,
  type Stream,
  type StreamCreator,
} from "./streaming/index.js";
export * from "./transfer/index.js";
export type { Protocol } from "./transport/index.js";
