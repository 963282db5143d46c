/**
 * Image imports and exports whose Node source or sink emits 'error'
 * before the transfer reads or writes it: the operation rejects with that
 * error, and the process does not crash on an unhandled 'error' event.
 */
import assert from "node:assert/strict";
import { createReadStream, createWriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { exportImage, getImage, importImage } from "../../src/client/index.js";
import { Code, TransferError } from "../../src/errors/index.js";
import { openDaemon } from "./daemon.js";

/** A path under a folder that does not exist. */
const absent = join(tmpdir(), `streams-absent-${process.pid}`, "image.tar");

/** Asserts a NotFound TransferError whose message names `absent`. */
function notFoundNamingPath(error: unknown): boolean {
  assert.ok(error instanceof TransferError, String(error));
  assert.equal(error.code, Code.NotFound, error.message);
  assert.ok(error.message.includes(absent), error.message);
  return true;
}

test("export to missing folder", async (t) => {
  const daemon = openDaemon(t);
  if (!daemon) {
    return;
  }

  await assert.rejects(
    exportImage(daemon.client, [daemon.env.image], createWriteStream(absent)),
    notFoundNamingPath,
  );
});

test("import from missing file", async (t) => {
  const daemon = openDaemon(t);
  if (!daemon) {
    return;
  }
  const name = daemon.name("absent:1");
  daemon.cleanUp(name);

  await assert.rejects(
    importImage(daemon.client, createReadStream(absent), { name }),
    notFoundNamingPath,
  );
  await assert.rejects(getImage(daemon.client, name), { kind: "not found" });
});
