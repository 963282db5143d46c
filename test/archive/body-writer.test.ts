import assert from "node:assert/strict";
import { mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { BodyWriter } from "../../src/archive/body-writer.js";
import {
  lendReceivedMemory,
  releaseReceivedMemory,
} from "../../src/util/received-memory.js";

async function tempFile(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "body-writer-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return join(dir, "file");
}

test("pieces written in order", async (t) => {
  const path = await tempFile(t);
  const file = await open(path, "w");
  const pieces = Array.from({ length: 50 }, (_, i) =>
    Buffer.alloc(1000 + i * 3000, i),
  );
  const writer = new BodyWriter(file, "file");

  for (const piece of pieces) {
    await writer.add(piece);
  }
  await writer.finish();
  await file.close();

  assert.equal(writer.bytes, Buffer.concat(pieces).length);
  assert.ok((await readFile(path)).equals(Buffer.concat(pieces)));
});

test("received memory released after write", async (t) => {
  const path = await tempFile(t);
  const file = await open(path, "w");
  const piece = Buffer.allocUnsafeSlow(64 * 1024).fill(3);
  let released = false;
  lendReceivedMemory(piece, () => {
    released = true;
  });
  const writer = new BodyWriter(file, "file");

  // The writer takes over the lend's one holder, as the extractor's
  // receiver would release it once the extractor held it.
  await writer.add(piece);
  assert.equal(released, false, "released before the write settled");
  await writer.finish();
  await file.close();

  assert.equal(released, true);
});

test("write failure rejects and releases", async (t) => {
  const path = await tempFile(t);
  await writeFile(path, "");
  const file = await open(path, "r");
  const piece = Buffer.allocUnsafeSlow(64 * 1024).fill(1);
  let released = false;
  lendReceivedMemory(piece, () => {
    released = true;
  });
  const writer = new BodyWriter(file, "file");

  await writer.add(piece).catch(() => {});
  await assert.rejects(writer.finish(), /failed to write "file"/);
  await assert.rejects(writer.add(Buffer.from("more")), /failed to write/);
  await file.close();

  assert.equal(released, true);
});

test("settle releases unwritten pieces", async (t) => {
  const path = await tempFile(t);
  await writeFile(path, "");
  const file = await open(path, "r");
  const writer = new BodyWriter(file, "file");
  const pieces = [0, 1, 2].map(() => Buffer.allocUnsafeSlow(600 * 1024));
  let released = 0;
  for (const piece of pieces) {
    lendReceivedMemory(piece, () => released++);
  }

  for (const piece of pieces) {
    await writer.add(piece).catch(() => {});
  }
  await writer.settle();
  await file.close();

  assert.equal(released, pieces.length);
  releaseReceivedMemory(pieces[0]!);
  assert.equal(released, pieces.length, "released twice");
});
