export { ContainerPath, type ContainerPathInit } from "./container-path.js";
export { ImageStore, type ImageStoreInit } from "./image-store.js";
export {
  type ImageExportOptions,
  ImageExportStream,
  type ImageImportOptions,
  ImageImportStream,
} from "./image-streams.js";
export {
  type CredentialsCallback,
  type HttpDebugLevel,
  OCIRegistry,
  type OCIRegistryOptions,
  type RegistryAuthRequest,
  type RegistryCredentials,
  type RegistryWarning,
  type RegistryWarningCode,
} from "./oci-registry.js";
export {
  type Progress,
  ProgressCallbackError,
  type ProgressWarning,
  progressWarning,
  readProgress,
  warningEvent,
} from "./progress.js";
export {
  ReadStream,
  type SendingOptions,
  tarMediaType,
} from "./read-stream.js";
export { TarTrailerDetector } from "./tar-trailer.js";
export {
  isStreaming,
  type MarshalOptions,
  type StreamingTransferObject,
  type TransferObject,
} from "./transfer-object.js";
export { type ReceivingOptions, WriteStream } from "./write-stream.js";
