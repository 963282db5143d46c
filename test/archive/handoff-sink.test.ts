/**
 * HandoffSink and extraction from memory that is reused: each chunk is
 * lent like a received ttrpc frame and overwritten as soon as its last
 * holder releases it, so a premature release shows as corrupt files.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { extractArchive, HandoffSink } from "../../src/archive/index.js";
import {
  lendReceivedMemory,
  releaseReceivedMemory,
} from "../../src/util/received-memory.js";
import { makeLayout, rawArchive } from "./fixtures.js";

/** Writes `chunk` and resolves once its write callback ran. */
function writeAndWait(sink: HandoffSink, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) =>
    sink.write(chunk, (error) => (error ? reject(error) : resolve())),
  );
}

test("write callback waits for next read", async () => {
  const sink = new HandoffSink();
  const reader = sink[Symbol.asyncIterator]();
  let calledBack = false;
  sink.write(Buffer.from("a"), () => {
    calledBack = true;
  });

  const first = await reader.next();
  assert.equal(first.value?.toString(), "a");
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(calledBack, false, "called back before the next read");

  const second = reader.next();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(calledBack, true);
  sink.end();
  assert.equal((await second).done, true);
});

test("destroy with error rejects waiting read", async () => {
  const sink = new HandoffSink();
  const read = sink[Symbol.asyncIterator]().next();

  sink.destroy(new Error("receive failed"));

  await assert.rejects(read, /receive failed/);
});

test("second concurrent read rejected", async () => {
  const sink = new HandoffSink();
  const reader = sink[Symbol.asyncIterator]();
  const first = reader.next();

  await assert.rejects(reader.next(), /one reader/);

  sink.end();
  assert.equal((await first).done, true);
});

test("extract correct while chunk memory is reused", async (t) => {
  const layout = await makeLayout(t);
  const large = randomBytes(3 * 1024 * 1024 + 100);
  const smalls = Array.from({ length: 40 }, (_, i) => randomBytes(i * 97));
  const archive = rawArchive([
    { path: "large.bin", body: large },
    ...smalls.map((body, i) => ({
      path: `small-${i}-${"n".repeat(i % 2 === 0 ? 150 : 10)}`,
      body,
      pax: i % 2 === 0,
    })),
    { path: "after.bin", body: large.subarray(0, 70_000) },
  ]);
  // Sizes that split headers, PAX records and bodies at odd places.
  const sizes = [700, 64 * 1024 + 3, 511, 1, 256 * 1024, 4096, 1300];

  const sink = new HandoffSink();
  const extracting = extractArchive(layout.root, "/", sink);
  let overwritten = 0;
  let offset = 0;
  for (let i = 0; offset < archive.length; i++) {
    const size = sizes[i % sizes.length]!;
    const piece = archive.subarray(offset, offset + size);
    offset += piece.length;
    const chunk = Buffer.allocUnsafeSlow(piece.length);
    piece.copy(chunk);
    lendReceivedMemory(chunk, () => {
      chunk.fill(0xaa);
      overwritten++;
    });
    await writeAndWait(sink, chunk);
    releaseReceivedMemory(chunk);
  }
  sink.end();
  await extracting;

  assert.ok(overwritten > 10, `only ${overwritten} chunks were overwritten`);
  assert.ok((await readFile(join(layout.root, "large.bin"))).equals(large));
  for (const [i, body] of smalls.entries()) {
    const name = `small-${i}-${"n".repeat(i % 2 === 0 ? 150 : 10)}`;
    const written = await readFile(join(layout.root, name));
    assert.ok(written.equals(body), `${name} differs`);
  }
  const after = await readFile(join(layout.root, "after.bin"));
  assert.ok(after.equals(large.subarray(0, 70_000)));
});
