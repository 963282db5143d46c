/**
 * The gRPC message reader: messages split anywhere across chunks, and
 * reuse of the buffers of large split messages once they are released.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { EnvelopeReader, envelopePrefix } from "../../src/grpc/envelope.js";
import {
  holdReceivedMemory,
  releaseReceivedMemory,
} from "../../src/util/received-memory.js";

const limit = 4 * 1024 * 1024;

function envelope(body: Buffer): Buffer {
  return Buffer.concat([envelopePrefix(body.length), body]);
}

/** Pushes `bytes` in chunks of the given sizes and collects each message. */
function readChunked(
  reader: EnvelopeReader,
  bytes: Buffer,
  chunkSizes: number[],
): Uint8Array[] {
  const messages: Uint8Array[] = [];
  let offset = 0;
  for (let index = 0; offset < bytes.length; index++) {
    const size = chunkSizes[index % chunkSizes.length]!;
    // A copy, as the transport hands over chunks of its own.
    reader.push(Buffer.from(bytes.subarray(offset, offset + size)));
    offset += size;
    for (let message = reader.next(); message; message = reader.next()) {
      messages.push(message);
    }
  }
  return messages;
}

/** Reads one message of `length` bytes of `fill`, pushed in 16 KiB chunks. */
function readLargeMessage(
  reader: EnvelopeReader,
  length: number,
  fill: number,
): Uint8Array {
  const messages = readChunked(reader, envelope(Buffer.alloc(length, fill)), [
    16 * 1024,
  ]);
  assert.equal(messages.length, 1);
  return messages[0]!;
}

test("messages split anywhere decode whole", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 200 * 1024 }), {
        minLength: 1,
        maxLength: 5,
      }),
      fc.array(fc.integer({ min: 1, max: 70 * 1024 }), {
        minLength: 1,
        maxLength: 4,
      }),
      (lengths, chunkSizes) => {
        const bodies = lengths.map((length, index) =>
          Buffer.alloc(length, index + 1),
        );
        const reader = new EnvelopeReader(limit, "test message");

        const messages = readChunked(
          reader,
          Buffer.concat(bodies.map(envelope)),
          chunkSizes,
        );

        assert.deepEqual(
          messages.map((message) => Buffer.from(message)),
          bodies,
        );
        assert.equal(reader.pendingBytes, 0);
      },
    ),
    { numRuns: 60 },
  );
});

test("whole message is a view of its chunk", () => {
  const reader = new EnvelopeReader(limit, "test message");
  const chunk = envelope(Buffer.alloc(100 * 1024, 3));

  reader.push(chunk);
  const message = reader.next();

  assert.equal(message?.buffer, chunk.buffer);
  assert.equal(message?.length, 100 * 1024);
});

test("released message buffer reused", () => {
  const reader = new EnvelopeReader(limit, "test message");

  const first = readLargeMessage(reader, 100 * 1024, 9);
  releaseReceivedMemory(first);
  const second = readLargeMessage(reader, 90 * 1024, 8);

  assert.equal(second.buffer, first.buffer);
  assert.equal(second.length, 90 * 1024);
  assert.ok(second.every((byte) => byte === 8));
});

test("held message buffer not reused", () => {
  const reader = new EnvelopeReader(limit, "test message");

  const first = readLargeMessage(reader, 100 * 1024, 9);
  holdReceivedMemory(first);
  releaseReceivedMemory(first);
  const second = readLargeMessage(reader, 100 * 1024, 8);

  assert.notEqual(second.buffer, first.buffer);
  assert.ok(first.every((byte) => byte === 9));
});

test("small split message never lent", () => {
  const reader = new EnvelopeReader(limit, "test message");

  // Under 8 KiB, and over the 4 KiB that Node.js cuts from shared slabs.
  const first = readLargeMessage(reader, 6 * 1024, 1);
  releaseReceivedMemory(first);
  const second = readLargeMessage(reader, 6 * 1024, 2);

  assert.notEqual(second.buffer, first.buffer);
  assert.ok(first.every((byte) => byte === 1));
});
