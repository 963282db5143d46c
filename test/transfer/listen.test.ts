/**
 * TransferServer.listen: either every socket it was given listens or
 * none does.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Code, type TransferError, TransferServer } from "../../src/index.js";

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

async function tempDir(t: { after(fn: () => Promise<void>): void }) {
  const dir = await mkdtemp(join(tmpdir(), "ct-listen-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function refusesConnections(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect(path);
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });
}

test("a failed second socket closes the first", async (t) => {
  const dir = await tempDir(t);
  const server = new TransferServer({ root: dir, log: quiet });
  t.after(() => server.close());
  const ttrpc = join(dir, "t.sock");

  await assert.rejects(
    server.listen({ ttrpc, grpc: join(dir, "missing", "g.sock") }),
    (error: TransferError) =>
      error.code === Code.NotFound && /missing/.test(error.message),
  );

  assert.equal(existsSync(ttrpc), false, "ttrpc socket left behind");
  assert.equal(await refusesConnections(ttrpc), true);
  await server.listen({ ttrpc });
  assert.equal(await refusesConnections(ttrpc), false);
});

test("listen options that name nothing usable are refused", async (t) => {
  const dir = await tempDir(t);
  const server = new TransferServer({ root: dir, log: quiet });
  t.after(() => server.close());
  const path = join(dir, "s.sock");

  for (const [options, pattern] of [
    [{}, /nothing to listen on/],
    [{ ttrpc: path, grpc: path }, /same socket/],
    [{ ttrpc: path, gid: -5 }, /invalid group id -5/],
    [{ ttrpc: path, gid: 1.5 }, /invalid group id 1\.5/],
  ] as const) {
    await assert.rejects(
      server.listen(options),
      (error: TransferError) =>
        error.code === Code.InvalidArgument && pattern.test(error.message),
      JSON.stringify(options),
    );
  }
  assert.equal(existsSync(path), false);
});
