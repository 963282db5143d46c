/**
 * Reuse of sent chunks over a real gRPC connection: chunks come back to
 * their owner, and every byte arrives as sent while the source refills
 * each buffer as soon as it comes back.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { type TestContext, test } from "node:test";
import { createServiceImplSpec } from "@connectrpc/connect";
import { Streaming } from "../../src/gen/containerd/services/streaming/v1/streaming_pb.js";
import {
  createStreamCreator,
  largeWindowBytes,
  receiveBytes,
  reuseAfterSend,
  type Stream,
  StreamRegistry,
  sendBytes,
} from "../../src/streaming/index.js";
import { startPair } from "../grpc/harness.js";

const namespace = "reuse";
// A chunk of the largest piece size goes out as it is, never copied.
const chunkBytes = 1024 * 1024;

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
    "containerd-namespace": namespace,
  });
  const client = await creator.create("data");
  const server = registry.claim(namespace, client.id);
  t.after(() => {
    client.abort();
    server.abort();
  });
  return { client, server };
}

/** Fills `buffer` with bytes that depend on their offset in the stream. */
function fill(buffer: Buffer, streamOffset: number): void {
  for (let index = 0; index < buffer.length; index += 4) {
    buffer.writeUInt32LE((streamOffset + index) >>> 0, index);
  }
}

test("chunks reused only after gRPC wrote them", async (t) => {
  const { client, server } = await openPair(t);
  const count = 32;
  const free: Buffer[] = [];
  let allocated = 0;
  let reused = 0;

  // Refills a buffer as soon as it comes back, so the bytes of a buffer
  // given back too early could change before the socket writes them.
  async function* source(): AsyncGenerator<Buffer> {
    for (let index = 0; index < count; index++) {
      let buffer = free.pop();
      if (buffer === undefined) {
        buffer = Buffer.allocUnsafe(chunkBytes);
        allocated++;
      } else {
        reused++;
      }
      fill(buffer, index * chunkBytes);
      const chunk = buffer;
      reuseAfterSend(chunk, () => free.push(chunk));
      yield chunk;
    }
  }
  let received = 0;
  let firstBad: number | undefined;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (let index = 0; index + 4 <= chunk.length; index += 4) {
        const expected = (received + index) >>> 0;
        if (firstBad === undefined && chunk.readUInt32LE(index) !== expected) {
          firstBad = received + index;
        }
      }
      received += chunk.length;
      callback();
    },
  });

  const [sent] = await Promise.all([
    sendBytes(client, source()),
    // A large window lets the sender send whole 1 MiB chunks.
    receiveBytes(server, sink, { windowBytes: largeWindowBytes }),
  ]);

  assert.equal(sent, count * chunkBytes);
  assert.equal(received, count * chunkBytes);
  assert.equal(firstBad, undefined, `wrong bytes at offset ${firstBad}`);
  assert.ok(reused > 0, `no buffer came back: ${allocated} allocated`);
});
