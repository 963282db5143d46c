export { createGrpcTransport, type GrpcTransportOptions } from "./client.js";
export {
  createGrpcServer,
  createServiceSpec,
  type GrpcServer,
  type GrpcServerOptions,
  type GrpcService,
} from "./server.js";
