export {
  type ContainerRoots,
  checkContainerId,
  FolderRoots,
} from "./container-roots.js";
export {
  ContainerdRoots,
  type ContainerdRootsOptions,
} from "./containerd-roots.js";
export { debugLogger, type LogFields, type Logger } from "./logger.js";
export {
  type ListenOptions,
  TransferServer,
  type TransferServerOptions,
} from "./server.js";
export type { TransferEnd } from "./transfer-ends.js";
export type { TransferContext, Transferrer } from "./transferrer.js";
export { containerFsTransferrer } from "./transferrers/container-fs.js";
export { echoTransferrer } from "./transferrers/echo.js";
