/**
 * Byte streams between a sender and a receiver of this package over a
 * real ttrpc connection on a unix socket.
 */
import assert from "node:assert/strict";
import { Readable, Writable } from "node:stream";
import { type TestContext, test } from "node:test";
import { createServiceImplSpec } from "@connectrpc/connect";
import { Streaming } from "../../src/gen/containerd/services/streaming/v1/streaming_pb.js";
import {
  createStreamCreator,
  goMaxChunkBytes,
  largeWindowBytes,
  receiveBytes,
  type Stream,
  StreamRegistry,
  sendBytes,
} from "../../src/streaming/index.js";
import { startPair } from "../ttrpc/harness.js";

const namespace = "bytes";

/** Opens a stream over ttrpc and returns its client and server ends. */
async function openPair(
  t: TestContext,
): Promise<{ client: Stream; server: Stream }> {
  const registry = new StreamRegistry();
  const { transport } = await startPair(t, {
    services: [
      createServiceImplSpec<typeof Streaming>(Streaming, registry.service()),
    ],
  });
  const creator = createStreamCreator(transport, {
    "containerd-namespace-ttrpc": namespace,
  });
  const client = await creator.create("data");
  const server = registry.claim(namespace, client.id);
  t.after(() => {
    client.abort();
    server.abort();
  });
  return { client, server };
}

/** Returns `length` bytes in which every 4-byte word contains its offset. */
function pattern(length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let offset = 0; offset + 4 <= length; offset += 4) {
    bytes.writeUInt32LE(offset, offset);
  }
  return bytes;
}

/**
 * Returns a sink that keeps a copy of every chunk, and whose first write
 * completes only after `firstWriteDelayMs`.
 */
function collectingSink(firstWriteDelayMs = 0): {
  sink: Writable;
  chunks: Buffer[];
} {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      // Copied, so that a later reuse of the chunk's memory would show.
      chunks.push(Buffer.from(chunk));
      if (chunks.length === 1 && firstWriteDelayMs > 0) {
        setTimeout(callback, firstWriteDelayMs);
      } else {
        callback();
      }
    },
  });
  return { sink, chunks };
}

test("large window selects 1 MiB chunks", async (t) => {
  const { client, server } = await openPair(t);
  const payload = pattern(6 * 1024 * 1024 + 3);
  const { sink, chunks } = collectingSink();
  const [sent, received] = await Promise.all([
    sendBytes(client, Readable.from([payload])),
    receiveBytes(server, sink, { windowBytes: largeWindowBytes }),
  ]);
  assert.equal(sent, payload.length);
  assert.equal(received, payload.length);
  assert.equal(Math.max(...chunks.map((c) => c.length)), 1024 * 1024);
  assert.ok(Buffer.concat(chunks).equals(payload), "payload differs");
});

test("Go-sized chunks fill a large window", async (t) => {
  // A Go sender sends 32 KiB whatever the grant, so one 4 MiB window is
  // 128 messages. The sink delays the first one for longer than the 1 s
  // that a full ttrpc stream buffer may pause reading, so the rest of the
  // window has to fit in that buffer.
  const { client, server } = await openPair(t);
  const payload = pattern(2 * largeWindowBytes);
  const { sink, chunks } = collectingSink(1500);
  const [sent, received] = await Promise.all([
    sendBytes(client, Readable.from([payload]), {
      maxChunkBytes: goMaxChunkBytes,
      largeChunkBytes: goMaxChunkBytes,
    }),
    receiveBytes(server, sink, { windowBytes: largeWindowBytes }),
  ]);
  assert.equal(sent, payload.length);
  assert.equal(received, payload.length);
  assert.equal(Math.max(...chunks.map((c) => c.length)), goMaxChunkBytes);
  assert.ok(Buffer.concat(chunks).equals(payload), "payload differs");
});

test("source chunks are sent as they were", async (t) => {
  // A source may yield the same buffer many times, and each must arrive
  // intact.
  const { client, server } = await openPair(t);
  const block = pattern(3 * 1024 * 1024 + 5);
  const { sink, chunks } = collectingSink();
  const source = [block, block.subarray(7, 70_000), block, Buffer.from([9])];
  const [sent, received] = await Promise.all([
    sendBytes(client, source),
    receiveBytes(server, sink, { windowBytes: largeWindowBytes }),
  ]);
  const expected = Buffer.concat(source);
  assert.equal(sent, expected.length);
  assert.equal(received, expected.length);
  assert.ok(Buffer.concat(chunks).equals(expected), "payload differs");
});
