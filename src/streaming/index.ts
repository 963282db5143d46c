export {
  checkReceiveOptions,
  maxWindowBytes,
  type ReceiveBytesOptions,
  receiveBytes,
} from "./byte-receiver.js";
export {
  checkSendOptions,
  type SendBytesOptions,
  sendBytes,
} from "./byte-sender.js";
export { type OpenStreamOptions, openStream } from "./client-stream.js";
export {
  packData,
  packWindowUpdate,
  unpackData,
  unpackWindowUpdate,
} from "./data.js";
export { readFileChunks } from "./file-source.js";
export {
  type ByteSink,
  type ByteSource,
  readSource,
  reuseAfterSend,
  sinkError,
  watchedError,
  watchStream,
} from "./io.js";
export { StreamRegistry, type StreamRegistryOptions } from "./registry.js";
export type { Stream } from "./stream.js";
export {
  createStreamCreator,
  newStreamId,
  type StreamCreator,
} from "./stream-creator.js";
export {
  checkWindowUpdate,
  goMaxChunkBytes,
  goWindowBytes,
  largeWindowBytes,
  maxCredit,
} from "./window.js";
