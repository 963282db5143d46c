import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { adoptWithOwnReadBuffer } from "../../src/ttrpc/own-read-buffer.js";

test("accepted socket adopted reads and writes", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "ct-adopt-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "s.sock");
  const received: string[] = [];
  const adopted: net.Socket[] = [];
  const server = net.createServer({ pauseOnConnect: true }, (accepted) => {
    const socket = adoptWithOwnReadBuffer(accepted, (chunk) => {
      // The buffer is reused by the next read, so only a copy is kept.
      received.push(chunk.toString());
      socket?.write("pong");
    });
    assert.ok(socket, "the accepted socket was not adopted");
    adopted.push(socket);
  });
  server.listen(path);
  await once(server, "listening");

  const client = net.connect(path);
  client.write("ping");
  const [reply] = await once(client, "data");
  client.end();
  await once(client, "close");
  // Closing waits for every accepted connection, so it settles only if
  // the adopted socket's end was counted.
  await new Promise<void>((resolve) => server.close(() => resolve()));

  assert.equal(String(reply), "pong");
  assert.deepEqual(received, ["ping"]);
  assert.equal(adopted.length, 1);
});

test("socket without a handle not adopted", () => {
  const socket = new net.Socket();

  const adopted = adoptWithOwnReadBuffer(socket, () => {});

  assert.equal(adopted, undefined);
  assert.equal(socket.destroyed, false);
});
