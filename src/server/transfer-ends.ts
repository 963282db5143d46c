/**
 * Server-side view of the ends of a Transfer request: each Any is decoded
 * and the streams it names are claimed from the registry.
 */
import { type Any, typeNameOf, unpackAny } from "../any/index.js";
import { Code, TransferError } from "../errors/index.js";
import { ContainerPathSchema } from "../gen/containerd/types/transfer/container_pb.js";
import {
  ReadStreamSchema,
  WriteStreamSchema,
} from "../gen/containerd/types/transfer/streaming_pb.js";
import type { Stream, StreamRegistry } from "../streaming/index.js";

export type TransferEnd =
  | {
      type: "ContainerPath";
      containerId: string;
      path: string;
      noWalk: boolean;
      preserveOwnership: boolean;
    }
  | { type: "ReadStream"; stream: Stream; mediaType: string }
  | { type: "WriteStream"; stream: Stream; mediaType: string }
  | { type: "other"; typeUrl: string };

/** Short name of an end for logs and errors. */
export function describeEnd(end: TransferEnd): string {
  switch (end.type) {
    case "ContainerPath":
      return `container ${end.containerId}:${end.path}`;
    case "ReadStream":
    case "WriteStream":
      return `${end.type} ${end.stream.id}`;
    default:
      return end.typeUrl;
  }
}

/**
 * Decodes one end. Ends naming a stream claim it, so an unknown stream is
 * NotFound before any transferrer runs.
 */
export function decodeEnd(
  any: Any | undefined,
  role: "source" | "destination",
  registry: StreamRegistry,
  namespace: string,
): TransferEnd {
  if (!any || any.typeUrl === "") {
    throw new TransferError(`missing transfer ${role}`, Code.InvalidArgument);
  }
  switch (typeNameOf(any)) {
    case ContainerPathSchema.typeName: {
      const message = unpackAny(any, ContainerPathSchema);
      if (message.path.includes("\0")) {
        throw new TransferError(
          `invalid container path ${JSON.stringify(message.path)} in the ` +
            `transfer ${role}: it contains a NUL byte`,
          Code.InvalidArgument,
        );
      }
      return { type: "ContainerPath", ...message };
    }
    case ReadStreamSchema.typeName: {
      const message = unpackAny(any, ReadStreamSchema);
      const stream = registry.claim(namespace, message.stream);
      return { type: "ReadStream", stream, mediaType: message.mediaType };
    }
    case WriteStreamSchema.typeName: {
      const message = unpackAny(any, WriteStreamSchema);
      const stream = registry.claim(namespace, message.stream);
      return { type: "WriteStream", stream, mediaType: message.mediaType };
    }
    default:
      return { type: "other", typeUrl: any.typeUrl };
  }
}

/** Streams an end holds, to release when the transfer is over. */
export function streamsOf(end: TransferEnd): Stream[] {
  return end.type === "ReadStream" || end.type === "WriteStream"
    ? [end.stream]
    : [];
}
