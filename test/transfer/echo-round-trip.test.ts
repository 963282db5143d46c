import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { ReadStream, WriteStream } from "../../src/transfer/index.js";
import {
  patternBytes,
  protocols,
  seededRandom,
  startEndpoint,
} from "../helpers/endpoint.js";

const kib = 1024;
// Around the 32 KiB chunk and 64 KiB window of Go peers, and a large one.
const sizes = [
  0,
  1,
  32 * kib - 1,
  32 * kib,
  32 * kib + 1,
  64 * kib - 1,
  64 * kib,
  64 * kib + 1,
  128 * kib + 1,
  40 * 1024 * kib,
];

/** Yields `payload` in chunks of random size from 1 byte to 100 KiB. */
async function* randomChunks(payload: Buffer, random: () => number) {
  for (let offset = 0; offset < payload.length; ) {
    const size = 1 + Math.floor(random() ** 3 * 100 * kib);
    yield payload.subarray(offset, offset + size);
    offset += size;
    if (random() < 0.05) {
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

/** A sink with a random buffer size that sometimes takes its time. */
function collectingSink(random: () => number) {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    highWaterMark: 1 + Math.floor(random() * 256 * kib),
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk);
      if (random() < 0.1) {
        setTimeout(done, 1);
      } else {
        done();
      }
    },
  });
  return { sink, bytes: () => Buffer.concat(chunks) };
}

for (const protocol of protocols) {
  for (const size of sizes) {
    test(`echo ${size} bytes over ${protocol}`, async (t) => {
      const { client } = await startEndpoint(t, protocol);
      const payload = patternBytes(size);
      const random = seededRandom(size + 1);
      const { sink, bytes } = collectingSink(random);

      await client.transfer(
        new ReadStream(
          randomChunks(payload, random),
          "application/octet-stream",
        ),
        new WriteStream(sink, "application/octet-stream"),
      );

      assert.equal(bytes().length, size);
      assert.ok(bytes().equals(payload), "echoed bytes differ");
    });
  }

  test(`echo random chunkings over ${protocol}`, async (t) => {
    const { client, server } = await startEndpoint(t, protocol);
    const random = seededRandom(42);
    for (let round = 0; round < 25; round++) {
      const payload = patternBytes(
        Math.floor(random() ** 2 * 600 * kib),
        round,
      );
      const { sink, bytes } = collectingSink(random);
      await client.transfer(
        new ReadStream(
          randomChunks(payload, random),
          "application/octet-stream",
        ),
        new WriteStream(sink, "application/octet-stream"),
      );
      assert.ok(bytes().equals(payload), `round ${round} differs`);
    }
    assert.equal(server.registry.size, 0, "streams left registered");
  });

  test(`concurrent echoes over ${protocol}`, async (t) => {
    const { client } = await startEndpoint(t, protocol);
    const random = seededRandom(7);
    const jobs = Array.from({ length: 16 }, async (_, i) => {
      const payload = patternBytes(100 * kib + i * 3333, i);
      const { sink, bytes } = collectingSink(random);
      await client.transfer(
        new ReadStream(
          randomChunks(payload, random),
          "application/octet-stream",
        ),
        new WriteStream(sink, "application/octet-stream"),
      );
      assert.ok(bytes().equals(payload), `job ${i} differs`);
    });
    await Promise.all(jobs);
  });
}
