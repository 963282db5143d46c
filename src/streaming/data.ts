/**
 * Encoding of the byte-stream messages. Data and its Any envelope are
 * encoded by hand so that a payload is copied once, into the encoding of
 * the Any, instead of twice through protobuf-es's writer. The bytes are
 * the same as `toBinary` of the Any for a non-empty payload.
 */
import { create, fromBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import {
  type Any,
  isAny,
  packAny,
  recordEncoding,
  typeNameOf,
} from "../any/index.js";
import { Code, TransferError } from "../errors/index.js";
import {
  DataSchema,
  WindowUpdateSchema,
} from "../gen/containerd/types/transfer/streaming_pb.js";
import { checkWindowUpdate } from "./window.js";

const dataTypeUrl = new TextEncoder().encode(DataSchema.typeName);

/**
 * Packs a Data message with `payload` into an Any. The Any's binary
 * encoding is built at the same time and recorded for the transports, and
 * the Any's value is a view into it, so the payload is copied once.
 */
export function packData(payload: Uint8Array): Any {
  const valueLength = 1 + varintSize(payload.length) + payload.length;
  // Every byte is written below, so the buffer need not be zeroed.
  const encoding = Buffer.allocUnsafe(
    1 +
      varintSize(dataTypeUrl.length) +
      dataTypeUrl.length +
      1 +
      varintSize(valueLength) +
      valueLength,
  );
  // Any: field 1 (type_url) and field 2 (value), both length-delimited.
  encoding[0] = 0x0a;
  let offset = writeVarint(encoding, 1, dataTypeUrl.length);
  encoding.set(dataTypeUrl, offset);
  offset += dataTypeUrl.length;
  encoding[offset++] = 0x12;
  offset = writeVarint(encoding, offset, valueLength);
  const valueStart = offset;
  // Data: field 1 (data), length-delimited.
  encoding[offset++] = 0x0a;
  offset = writeVarint(encoding, offset, payload.length);
  encoding.set(payload, offset);
  const any = create(AnySchema, {
    typeUrl: DataSchema.typeName,
    value: encoding.subarray(valueStart),
  });
  recordEncoding(any, AnySchema.typeName, encoding);
  return any;
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

/** Writes `n` as a varint at `offset` and returns the offset after it. */
function writeVarint(target: Uint8Array, offset: number, n: number): number {
  let position = offset;
  while (n >= 0x80) {
    target[position++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  target[position++] = n;
  return position;
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n >>>= 7;
    size++;
  }
  return size;
}
