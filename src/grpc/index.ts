export { createServiceSpec } from "../transport/index.js";
export { createGrpcTransport, type GrpcTransportOptions } from "./client.js";
export {
  createGrpcServer,
  type GrpcServer,
  type GrpcServerOptions,
  type GrpcService,
} from "./server.js";
