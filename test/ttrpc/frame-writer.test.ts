import assert from "node:assert/strict";
import { once } from "node:events";
import * as net from "node:net";
import { test } from "node:test";
import { MessageType } from "../../src/ttrpc/frame.js";
import { FrameWriter } from "../../src/ttrpc/frame-writer.js";
import { FrameDecoder, type FrameHeader } from "../../src/ttrpc/index.js";
import { tempSocket } from "./harness.js";

test("frame writer joins data parts", async (t) => {
  const path = await tempSocket(t);
  const received: Buffer[] = [];
  let ended!: () => void;
  const allReceived = new Promise<void>((resolve) => {
    ended = resolve;
  });
  const server = net.createServer((connection) => {
    connection.on("data", (chunk: Buffer) => received.push(chunk));
    connection.on("end", ended);
  });
  server.listen(path);
  await once(server, "listening");
  t.after(() => server.close());
  const socket = net.connect(path);
  await once(socket, "connect");

  const large = Buffer.alloc(100_000, 0x61);
  const parts = [
    Buffer.from("prefix"),
    new Uint8Array(0),
    large,
    Buffer.from("tail"),
    new Uint8Array(0),
  ];
  const writer = new FrameWriter(socket);
  writer.writeParts(5, MessageType.Data, 0, parts);
  writer.write(7, MessageType.Data, 0, Buffer.from("second"));
  socket.end();
  await allReceived;

  const frames: { header: FrameHeader; data: Buffer }[] = [];
  const decoder = new FrameDecoder(1 << 20, {
    onFrame: (header, data) => frames.push({ header, data: Buffer.from(data) }),
    onOversized: () => assert.fail("unexpected oversized frame"),
  });
  decoder.push(Buffer.concat(received));
  assert.equal(frames.length, 2);
  assert.equal(frames[0]!.header.streamId, 5);
  assert.equal(frames[0]!.header.length, 6 + 100_000 + 4);
  assert.ok(frames[0]!.data.equals(Buffer.concat(parts)), "first frame data");
  assert.equal(frames[1]!.header.streamId, 7);
  assert.equal(frames[1]!.data.toString(), "second");
});
