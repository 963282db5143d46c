/**
 * Packing and unpacking of google.protobuf.Any the way containerd does it:
 * the type URL is the bare full message name
 * (`containerd.types.transfer.Data`), because containerd's Transfer and
 * Streaming services match it by exact string. On input a prefixed URL
 * (`type.googleapis.com/...`) is accepted by taking the text after the last
 * slash.
 */
import {
  create,
  createRegistry,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { type Any, AnySchema, EmptySchema } from "@bufbuild/protobuf/wkt";
import { Code, TransferError } from "../errors/index.js";
import { StreamInitSchema } from "../gen/containerd/services/streaming/v1/streaming_pb.js";
import { ContainerPathSchema } from "../gen/containerd/types/transfer/container_pb.js";
import { ImageStoreSchema } from "../gen/containerd/types/transfer/imagestore_pb.js";
import {
  ImageExportStreamSchema,
  ImageImportStreamSchema,
} from "../gen/containerd/types/transfer/importexport_pb.js";
import { ProgressSchema } from "../gen/containerd/types/transfer/progress_pb.js";
import {
  AuthRequestSchema,
  AuthResponseSchema,
  OCIRegistrySchema,
} from "../gen/containerd/types/transfer/registry_pb.js";
import {
  DataSchema,
  ReadStreamSchema,
  WindowUpdateSchema,
  WriteStreamSchema,
} from "../gen/containerd/types/transfer/streaming_pb.js";

export type { Any };

/** Every message this package sends or receives inside an Any. */
export const knownTypes = createRegistry(
  EmptySchema,
  StreamInitSchema,
  DataSchema,
  WindowUpdateSchema,
  ReadStreamSchema,
  WriteStreamSchema,
  ContainerPathSchema,
  ImageStoreSchema,
  ImageImportStreamSchema,
  ImageExportStreamSchema,
  ProgressSchema,
  OCIRegistrySchema,
  AuthRequestSchema,
  AuthResponseSchema,
);

/** Packs a message into an Any with the bare message name as type URL. */
export function packAny<Desc extends DescMessage>(
  schema: Desc,
  message: MessageInitShape<Desc>,
): Any {
  const value = toBinary(schema, create(schema, message));
  return create(AnySchema, { typeUrl: schema.typeName, value });
}

/** Returns the message name of an Any, without any URL prefix. */
export function typeNameOf(any: Any): string {
  return any.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1);
}

/** Whether the Any contains a message of the given type. */
export function isAny(any: Any, schema: DescMessage): boolean {
  return typeNameOf(any) === schema.typeName;
}

/**
 * Unpacks an Any that must contain the given type. A different type is an
 * InvalidArgument error that names both.
 */
export function unpackAny<Desc extends DescMessage>(
  any: Any,
  schema: Desc,
): MessageShape<Desc> {
  const name = typeNameOf(any);
  if (name !== schema.typeName) {
    throw new TransferError(
      `unexpected message type "${any.typeUrl}": expected ${schema.typeName}`,
      Code.InvalidArgument,
    );
  }
  return decode(schema, any.value, name);
}

/**
 * Unpacks an Any of any type known to this package. An unknown type is a
 * NotFound error that names the type URL, the same kind containerd returns.
 */
export function unpackKnownAny(any: Any): {
  schema: DescMessage;
  message: MessageShape<DescMessage>;
} {
  const name = typeNameOf(any);
  const schema = knownTypes.getMessage(name);
  if (!schema) {
    throw new TransferError(
      `type with url "${any.typeUrl}" is not known: send one of ${[
        ...knownTypeNames(),
      ].join(", ")}`,
      Code.NotFound,
    );
  }
  return { schema, message: decode(schema, any.value, name) };
}

function* knownTypeNames(): Iterable<string> {
  for (const type of knownTypes) {
    if (type.kind === "message") {
      yield type.typeName;
    }
  }
}

function decode<Desc extends DescMessage>(
  schema: Desc,
  value: Uint8Array,
  name: string,
): MessageShape<Desc> {
  try {
    return fromBinary(schema, value);
  } catch (cause) {
    throw new TransferError(
      `invalid ${name} message: ${(cause as Error).message}`,
      Code.InvalidArgument,
      cause,
    );
  }
}
