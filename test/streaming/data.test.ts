import assert from "node:assert/strict";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { encodeMessage, encodeMessageParts } from "../../src/any/index.js";
import { Code, TransferError } from "../../src/errors/index.js";
import {
  DataSchema,
  WindowUpdateSchema,
} from "../../src/gen/containerd/types/transfer/streaming_pb.js";
import {
  packData,
  unpackData,
  unpackWindowUpdate,
} from "../../src/streaming/index.js";

test("packData encoding matches toBinary", () => {
  for (const size of [1, 127, 128, 16_384, 300_000]) {
    const payload = Buffer.alloc(size, size % 251);
    const any = packData(payload);
    const recorded = encodeMessage(AnySchema, any);
    assert.deepEqual(
      Buffer.from(recorded),
      Buffer.from(toBinary(AnySchema, { ...any })),
      `recorded Any encoding of a ${size}-byte payload`,
    );
    assert.deepEqual(
      Buffer.from(any.value),
      Buffer.from(
        toBinary(DataSchema, { $typeName: DataSchema.typeName, data: payload }),
      ),
      `Data value of a ${size}-byte payload`,
    );
    assert.deepEqual(Buffer.from(unpackData(any)), payload);
  }
});

test("encodeMessage ignores another schema", () => {
  const any = packData(Buffer.from("abc"));
  const encoded = encodeMessage(DataSchema, {
    $typeName: DataSchema.typeName,
    data: Buffer.from("xyz"),
  });
  assert.deepEqual(
    Buffer.from(encoded),
    Buffer.from([0x0a, 3, 0x78, 0x79, 0x7a]),
  );
  assert.ok(any.value.length > 0);
});

test("packData records the payload uncopied", () => {
  const payload = Buffer.alloc(100_000, 3);
  const parts = encodeMessageParts(AnySchema, packData(payload));
  assert.equal(parts.length, 2);
  assert.equal(parts[1], payload);
});

test("packData copies a Go-sized payload", () => {
  const payload = Buffer.alloc(32 * 1024, 5);
  const any = packData(payload);
  const parts = encodeMessageParts(AnySchema, any);
  assert.equal(parts.length, 1);
  assert.notEqual(parts[0]!.buffer, payload.buffer);
  assert.deepEqual(
    Buffer.from(parts[0]!),
    Buffer.from(toBinary(AnySchema, { ...any })),
  );
});

test("undecodable WindowUpdate is InvalidArgument", () => {
  const any = create(AnySchema, {
    typeUrl: WindowUpdateSchema.typeName,
    value: new Uint8Array([0x08, 0xff]),
  });

  assert.throws(
    () => unpackWindowUpdate(any),
    (error) =>
      error instanceof TransferError && error.code === Code.InvalidArgument,
  );
});
