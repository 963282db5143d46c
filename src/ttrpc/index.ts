/**
 * ttrpc, containerd's RPC protocol for shims, over unix sockets: a client
 * transport for connect-es clients and a server for connect-es service
 * implementations. docs/PROTOCOL.md describes the wire format and the
 * stream states.
 */
export { createServiceSpec } from "../transport/index.js";
export {
  createTtrpcTransport,
  type TtrpcTransportOptions,
} from "./client.js";
export {
  closeFlags,
  decodeFrameHeader,
  encodeFrameHeader,
  Flag,
  type FrameHeader,
  MessageType,
  messageHeaderLength,
  messageLengthMax,
} from "./frame.js";
export { FrameDecoder, type FrameSink } from "./frame-decoder.js";
export {
  createTtrpcServer,
  type TtrpcServer,
  type TtrpcServerOptions,
  type TtrpcService,
} from "./server.js";
