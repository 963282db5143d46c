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
  type CopyOptions,
  type CopyProgress,
  type CopySummary,
  copyArchiveFromContainer,
  copyArchiveIntoContainer,
  copyFromContainer,
  copyIntoContainer,
} from "./copy.js";
export {
  type DeleteImageOptions,
  deleteImage,
  getImage,
  type ImageRecord,
  type ImageTarget,
  type ListImagesOptions,
  listImages,
} from "./image-list.js";
export {
  formatPlatform,
  hostPlatform,
  type PlatformInit,
  type PlatformSpec,
  parsePlatform,
} from "./image-platform.js";
export {
  type ExportImageOptions,
  exportImage,
  type ImageOperationOptions,
  type ImportImageOptions,
  type ImportImageResult,
  importImage,
  type TagImageOptions,
  tagImage,
} from "./images.js";
export * from "./registry.js";
export {
  type ContainerFileType,
  type ContainerPathStat,
  type StatOptions,
  statContainerPath,
} from "./stat.js";
