import assert from "node:assert/strict";
import { Readable, Writable } from "node:stream";
import { test } from "node:test";
import { createRouterTransport } from "@connectrpc/connect";
import { Streaming } from "../../src/gen/containerd/services/streaming/v1/streaming_pb.js";
import {
  createStreamCreator,
  receiveBytes,
  StreamRegistry,
  sendBytes,
} from "../../src/streaming/index.js";

test("router smoke send and receive", async () => {
  const registry = new StreamRegistry();
  const transport = createRouterTransport(({ service }) => {
    service(Streaming, registry.service());
  });
  const creator = createStreamCreator(transport, {
    "containerd-namespace": "ns",
  });
  const client = await creator.create("data");
  const server = registry.claim("ns", client.id);
  const payload = Buffer.alloc(200_000, 7);
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(c, _e, cb) {
      chunks.push(c);
      cb();
    },
  });
  const [sent, received] = await Promise.all([
    sendBytes(client, Readable.from([payload])),
    receiveBytes(server, sink),
  ]);
  assert.equal(sent, payload.length);
  assert.equal(received, payload.length);
  assert.deepEqual(Buffer.concat(chunks), payload);
});
