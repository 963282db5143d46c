import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { readFileChunks } from "../../src/streaming/index.js";
import { takeReuseCallback } from "../../src/streaming/io.js";

test("file chunks reuse given-back buffers", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "file-source-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const content = randomBytes(5 * 256 * 1024 + 77);
  await writeFile(join(dir, "data"), content);

  const copies: Buffer[] = [];
  const buffers = new Set<ArrayBufferLike>();
  for await (const chunk of readFileChunks(join(dir, "data"))) {
    copies.push(Buffer.from(chunk));
    buffers.add(chunk.buffer);
    takeReuseCallback(chunk)?.();
  }

  assert.ok(Buffer.concat(copies).equals(content));
  assert.equal(buffers.size, 1, `${buffers.size} buffers for 6 reads`);
});

test("file chunks kept without give-back", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "file-source-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const content = randomBytes(3 * 256 * 1024);
  await writeFile(join(dir, "data"), content);

  const heldChunks: Uint8Array[] = [];
  for await (const chunk of readFileChunks(join(dir, "data"))) {
    heldChunks.push(chunk);
  }

  assert.ok(Buffer.concat(heldChunks).equals(content));
});

test("missing file rejects", async () => {
  await assert.rejects(
    readFileChunks("/nonexistent/containerd-transfer-test").next(),
    { code: "ENOENT" },
  );
});
