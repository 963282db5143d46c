/**
 * The Request frame that opens every client call.
 */
import { create, type DescMethod, toBinary } from "@bufbuild/protobuf";
import { RequestSchema } from "../gen/ttrpc/request_pb.js";
import { checkMessageSize } from "./limits.js";
import { metadataFromHeaders } from "./metadata.js";

/** What goes into a call's Request besides the payload. */
export interface RequestEnvelope {
  method: DescMethod;
  /** Call headers after the interceptors ran. */
  header: Headers;
  /** Values of keys that the caller gave more than once. */
  repeated: Map<string, string[]>;
  /** `performance.now()` time of the deadline, if the call has one. */
  deadline: number | undefined;
  /** Maximum frame data length in bytes. */
  maxMessageBytes: number;
}

/**
 * Encodes the Request for a call. `timeout_nano` is the time left until
 * the deadline, at least 1 ns so that it never reads as "no deadline".
 * Throws ResourceExhausted if the Request exceeds the frame limit.
 */
export function encodeRequest(
  envelope: RequestEnvelope,
  payload: Uint8Array,
): Uint8Array {
  const { method } = envelope;
  let timeoutNano = 0n;
  if (envelope.deadline !== undefined) {
    const leftMs = Math.max(envelope.deadline - performance.now(), 1e-6);
    timeoutNano = BigInt(Math.ceil(leftMs * 1e6));
  }
  const request = toBinary(
    RequestSchema,
    create(RequestSchema, {
      service: method.parent.typeName,
      method: method.name,
      payload,
      timeoutNano,
      metadata: metadataFromHeaders(envelope.header, envelope.repeated),
    }),
  );
  checkMessageSize("request", request.length, envelope.maxMessageBytes);
  return request;
}
