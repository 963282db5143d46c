export {
  checkNamespace,
  defaultAddress,
  defaultNamespace,
  socketPath,
} from "./address.js";
export {
  Client,
  type ClientOptions,
  connect,
  type TransferOptions,
} from "./client.js";
export {
  type ContainerLocation,
  copyArchiveFromContainer,
  copyArchiveIntoContainer,
  copyFromContainer,
  copyIntoContainer,
  type CopyOptions,
  type CopySummary,
} from "./copy.js";
