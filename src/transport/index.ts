/**
 * The contract between the RPC transports and everything above them. Both
 * transports implement connect-es's `Transport`, so one generated service
 * descriptor gives the same typed client over gRPC and over ttrpc, and both
 * servers host the same connect-es `ServiceImpl`.
 */
import type { DescService } from "@bufbuild/protobuf";
import {
  createServiceImplSpec,
  type ServiceImpl,
  type ServiceImplSpec,
  type Transport,
} from "@connectrpc/connect";

export type {
  HandlerContext,
  ServiceImpl,
  Transport,
} from "@connectrpc/connect";

export type Protocol = "grpc" | "ttrpc";

/**
 * Pairs a service descriptor with its implementation, for either server,
 * checking the implementation's methods against the descriptor.
 */
export function createServiceSpec<T extends DescService>(
  service: T,
  implementation: Partial<ServiceImpl<T>>,
): ServiceImplSpec {
  return createServiceImplSpec<T>(service, implementation);
}

/** A client transport that owns its connection. */
export interface ClientTransport extends Transport {
  readonly protocol: Protocol;
  /** Closes the connection; pending calls fail with Unavailable. Idempotent. */
  close(): Promise<void>;
}

/** Metadata key that carries the containerd namespace over gRPC. */
export const namespaceHeaderGrpc = "containerd-namespace";
/** Metadata key that carries the containerd namespace over ttrpc. */
export const namespaceHeaderTtrpc = "containerd-namespace-ttrpc";
/** Metadata key that carries a containerd lease id (gRPC only). */
export const leaseHeader = "containerd-lease";

/** Returns the metadata key for the namespace on a protocol. */
export function namespaceHeader(protocol: Protocol): string {
  return protocol === "ttrpc" ? namespaceHeaderTtrpc : namespaceHeaderGrpc;
}

/** Returns the namespace a call carries under either protocol's key. */
export function namespaceOf(headers: Headers): string | undefined {
  return (
    headers.get(namespaceHeaderGrpc) ??
    headers.get(namespaceHeaderTtrpc) ??
    undefined
  );
}
