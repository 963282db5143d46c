/**
 * Encoding of the byte-stream messages. Data is encoded by hand so that a
 * payload is copied once into the message instead of through protobuf-es's
 * writer; the bytes are the same as `toBinary(DataSchema, ...)`.
 */
import { create, fromBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { type Any, isAny, packAny, typeNameOf } from "../any/index.js";
import { Code, TransferError } from "../errors/index.js";
import {
  DataSchema,
  WindowUpdateSchema,
} from "../gen/containerd/types/transfer/streaming_pb.js";
import { checkWindowUpdate } from "./window.js";

/** Packs a Data message with `payload` into an Any. */
export function packData(payload: Uint8Array): Any {
  const lengthBytes = varintSize(payload.length);
  const value = new Uint8Array(1 + lengthBytes + payload.length);
  value[0] = 0x0a; // field 1, wire type 2 (length-delimited)
  let offset = 1;
  for (let n = payload.length; ; ) {
    if (n < 0x80) {
      value[offset++] = n;
      break;
    }
    value[offset++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  value.set(payload, offset);
  return create(AnySchema, { typeUrl: DataSchema.typeName, value });
}

/** Returns the payload of a Data Any; a different type is an error. */
export function unpackData(any: Any): Uint8Array {
  if (!isAny(any, DataSchema)) {
    throw unexpected(any, DataSchema.typeName);
  }
  try {
    return fromBinary(DataSchema, any.value).data;
  } catch (cause) {
    throw new TransferError(
      `invalid Data message: ${(cause as Error).message}`,
      Code.InvalidArgument,
      cause,
    );
  }
}

/** Packs a WindowUpdate that grants `bytes` more. */
export function packWindowUpdate(bytes: number): Any {
  checkWindowUpdate(bytes);
  return packAny(WindowUpdateSchema, { update: bytes });
}

/** Returns the checked grant of a WindowUpdate Any. */
export function unpackWindowUpdate(any: Any): number {
  if (!isAny(any, WindowUpdateSchema)) {
    throw unexpected(any, WindowUpdateSchema.typeName);
  }
  const { update } = fromBinary(WindowUpdateSchema, any.value);
  checkWindowUpdate(update);
  return update;
}

function unexpected(any: Any, expected: string): TransferError {
  return new TransferError(
    `unexpected ${typeNameOf(any) || "empty"} message on a byte stream: ` +
      `expected ${expected}`,
    Code.InvalidArgument,
  );
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n >>>= 7;
    size++;
  }
  return size;
}
