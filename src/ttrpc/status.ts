/**
 * Conversions between a ttrpc Response's `google.rpc.Status` and
 * connect-es's `ConnectError`, in the same way connect-es converts the
 * `grpc-status-details-bin` trailer of gRPC, and the error for frames that
 * cannot be decoded.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { toConnectError } from "../errors/index.js";
import { type Status, StatusSchema } from "../gen/google/rpc/status_pb.js";
import { ResponseSchema } from "../gen/ttrpc/request_pb.js";

/**
 * Returns the error for a Response status whose code is not OK. A code
 * outside the gRPC range becomes Unknown, with the original code in the
 * message.
 */
export function errorFromStatus(status: Status): ConnectError {
  const known = status.code > 0 && status.code <= Code.Unauthenticated;
  const message = known
    ? status.message
    : `status code ${status.code}: ${status.message}`;
  const error = new ConnectError(message, known ? status.code : Code.Unknown);
  error.details = status.details.map((any) => ({
    type: any.typeUrl.substring(any.typeUrl.lastIndexOf("/") + 1),
    value: any.value,
  }));
  return error;
}

/**
 * Returns the status a server sends for a handler's error. A ConnectError
 * keeps its code, message and details; any other value is converted with
 * `toConnectError`, which maps TransferErrors and Node.js system errors.
 */
export function statusFromError(reason: unknown): Status {
  const error = toConnectError(reason);
  return create(StatusSchema, {
    code: error.code,
    message: error.rawMessage,
    details: error.details.map((detail) =>
      "desc" in detail
        ? anyPack(detail.desc, create(detail.desc, detail.value))
        : {
            typeUrl: `type.googleapis.com/${detail.type}`,
            value: detail.value,
          },
    ),
  });
}

/** Encodes a ttrpc Response that carries the status for `reason`. */
export function encodeStatusResponse(reason: unknown): Uint8Array {
  const status = statusFromError(reason);
  return toBinary(ResponseSchema, create(ResponseSchema, { status }));
}

/**
 * Returns the error for a message that cannot be decoded: Internal for
 * what the peer sent in reply, InvalidArgument for a request on a server.
 */
export function decodeError(
  what: string,
  cause: unknown,
  code: Code = Code.Internal,
): ConnectError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new ConnectError(
    `failed to decode ${what}: ${reason}`,
    code,
    undefined,
    undefined,
    cause,
  );
}
