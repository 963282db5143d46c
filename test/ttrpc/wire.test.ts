import assert from "node:assert/strict";
import * as net from "node:net";
import { test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Any, EmptySchema } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  createClient,
  createServiceImplSpec,
  type HandlerContext,
} from "@connectrpc/connect";
import { packAny } from "../../src/any/index.js";
import {
  StreamInitSchema,
  Streaming,
} from "../../src/gen/containerd/services/streaming/v1/streaming_pb.js";
import { Transfer } from "../../src/gen/containerd/services/transfer/v1/transfer_pb.js";
import {
  RequestSchema,
  ResponseSchema,
} from "../../src/gen/ttrpc/request_pb.js";
import { createTtrpcTransport, MessageType } from "../../src/ttrpc/index.js";
import {
  collect,
  deferred,
  hex,
  RawPeer,
  rawFrame,
  rawServer,
  rejection,
  sleep,
  startPair,
  tempSocket,
  textAny,
} from "./harness.js";

// The frames of one Streaming.Stream call on stream id 1, as computed by
// hand from the ttrpc frame layout and the protobuf encoding.
const streamingName = Buffer.from("containerd.services.streaming.v1.Streaming");
const streamInitName = Buffer.from(
  "containerd.services.streaming.v1.StreamInit",
);
const openBytes = Buffer.concat([
  hex("00 00 00 34  00 00 00 01  01  02  0a 2a"),
  streamingName,
  hex("12 06"),
  Buffer.from("Stream"),
]);
const streamInitBytes = Buffer.concat([
  hex("00 00 00 37  00 00 00 01  03  00  0a 2b"),
  streamInitName,
  hex("12 08 0a 06"),
  Buffer.from("data-1"),
]);
const ackBytes = Buffer.concat([
  hex("00 00 00 17  00 00 00 01  03  00  0a 15"),
  Buffer.from("google.protobuf.Empty"),
]);
const closeSendBytes = hex("00 00 00 00  00 00 00 01  03  05");

test("client writes exact stream bytes", async (t) => {
  const path = await tempSocket(t);
  const received = deferred<Buffer>();
  await rawServer(t, path, (peer) => {
    void (async () => {
      await peer.frame(1);
      peer.socket.write(ackBytes);
      await peer.frame(2);
      peer.socket.write(closeSendBytes);
      received.resolve(peer.received);
    })();
  });
  const transport = createTtrpcTransport({ path });
  t.after(() => transport.close());
  const client = createClient(Streaming, transport);
  const acked = deferred();
  async function* handshake(): AsyncIterable<Any> {
    yield packAny(StreamInitSchema, { id: "data-1" });
    await acked.promise;
  }

  const replies: Any[] = [];
  for await (const reply of client.stream(handshake())) {
    replies.push(reply);
    acked.resolve();
  }

  assert.equal(replies.length, 1);
  assert.equal(replies[0]?.typeUrl, "google.protobuf.Empty");
  assert.deepEqual(
    (await received.promise).toString("hex"),
    Buffer.concat([openBytes, streamInitBytes, closeSendBytes]).toString("hex"),
  );
});

test("server writes exact stream bytes", async (t) => {
  const { path } = await startPair(t, {
    services: [
      createServiceImplSpec<typeof Streaming>(Streaming, {
        async *stream(requests) {
          for await (const _ of requests) {
            yield packAny(EmptySchema, {});
          }
        },
      }),
    ],
  });
  const peer = await RawPeer.connect(t, path);

  peer.socket.write(Buffer.concat([openBytes, streamInitBytes]));
  await peer.frame(0);
  peer.socket.write(closeSendBytes);
  await peer.frame(1);

  assert.deepEqual(
    peer.received.toString("hex"),
    Buffer.concat([ackBytes, closeSendBytes]).toString("hex"),
  );
});

test("client stream ids are odd increasing", async (t) => {
  const path = await tempSocket(t);
  const ids: number[] = [];
  await rawServer(t, path, (peer) => {
    void (async () => {
      for (let index = 0; index < 3; index++) {
        const frame = await peer.frame(index);
        ids.push(frame.header.streamId);
        peer.send(frame.header.streamId, MessageType.Response, 0);
      }
    })();
  });
  const transport = createTtrpcTransport({ path });
  t.after(() => transport.close());
  const client = createClient(Transfer, transport);

  await client.transfer({});
  await client.transfer({});
  await client.transfer({});

  assert.deepEqual(ids, [1, 3, 5]);
});

for (const ending of ["end", "error"] as const) {
  test(`client silent after server ${ending}`, async (t) => {
    const path = await tempSocket(t);
    let server: RawPeer | undefined;
    const ended = deferred();
    await rawServer(t, path, (peer) => {
      server = peer;
      void peer.frame(0).then((frame) => {
        if (ending === "end") {
          peer.send(frame.header.streamId, MessageType.Data, 0x05);
        } else {
          const response = create(ResponseSchema, {
            status: { code: Code.Unimplemented, message: "method Stream" },
          });
          peer.send(
            frame.header.streamId,
            MessageType.Response,
            0,
            toBinary(ResponseSchema, response),
          );
        }
        ended.resolve();
      });
    });
    const transport = createTtrpcTransport({ path });
    t.after(() => transport.close());
    const client = createClient(Streaming, transport);
    // Offers input only after the server's final frame went out.
    async function* lateInput(): AsyncIterable<Any> {
      await ended.promise;
      await sleep(20);
      for (let i = 0; i < 3; i++) {
        yield textAny(`late${i}`);
      }
    }

    const reading = collect(client.stream(lateInput()));
    if (ending === "end") {
      assert.deepEqual(await reading, []);
    } else {
      const error = await rejection(reading);
      assert.ok(error instanceof ConnectError);
      assert.equal(error.code, Code.Unimplemented);
    }
    await sleep(100);

    const frames = server?.frames.map((frame) => frame.header.type) ?? [];
    assert.deepEqual(frames, [MessageType.Request]);
  });
}

test("abort sends one CloseSend", async (t) => {
  const path = await tempSocket(t);
  let server: RawPeer | undefined;
  const connected = deferred<RawPeer>();
  await rawServer(t, path, (peer) => {
    server = peer;
    connected.resolve(peer);
  });
  const transport = createTtrpcTransport({ path });
  t.after(() => transport.close());
  const client = createClient(Streaming, transport);
  const controller = new AbortController();
  async function* waiting(): AsyncIterable<Any> {
    await new Promise(() => {});
  }

  const reading = collect(
    client.stream(waiting(), { signal: controller.signal }),
  );
  await (await connected.promise).frame(0);
  controller.abort();
  const error = await rejection(reading);
  // A frame for the abandoned id is dropped, and the connection goes on.
  server?.send(
    1,
    MessageType.Data,
    0,
    toBinary(EmptySchema, create(EmptySchema)),
  );
  const next = client.stream(waiting(), { timeoutMs: 50 });
  await rejection(collect(next));
  await sleep(50);

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.Canceled);
  const frames = server?.frames.map((frame) => [
    frame.header.streamId,
    frame.header.type,
    frame.header.flags,
    frame.data.length,
  ]);
  assert.deepEqual(frames, [
    [1, MessageType.Request, 0x02, openBytes.length - 10],
    [1, MessageType.Data, 0x05, 0],
    [3, MessageType.Request, 0x02, frames?.[2]?.[3]],
    [3, MessageType.Data, 0x05, 0],
  ]);
});

test("server rejects even stream ids", async (t) => {
  const { path } = await startPair(t, { services: [[Transfer, {}]] });
  const peer = await RawPeer.connect(t, path);

  peer.send(2, MessageType.Request, 0, unaryRequest());
  const frame = await peer.frame(0);

  assert.equal(frame.header.streamId, 2);
  assert.equal(statusOf(frame.data).code, Code.InvalidArgument);
});

test("server rejects reused stream ids", async (t) => {
  const { path } = await startPair(t, {
    services: [[Transfer, { transfer: () => ({}) }]],
  });
  const peer = await RawPeer.connect(t, path);

  peer.send(5, MessageType.Request, 0, unaryRequest());
  const first = await peer.frame(0);
  peer.send(3, MessageType.Request, 0, unaryRequest());
  const second = await peer.frame(1);
  peer.send(5, MessageType.Request, 0, unaryRequest());
  const third = await peer.frame(2);
  peer.send(7, MessageType.Request, 0, unaryRequest());
  const fourth = await peer.frame(3);

  assert.equal(statusOf(first.data).code, 0);
  assert.equal(second.header.streamId, 3);
  assert.equal(statusOf(second.data).code, Code.InvalidArgument);
  assert.match(statusOf(second.data).message, /ids must increase/);
  assert.equal(statusOf(third.data).code, Code.InvalidArgument);
  assert.equal(fourth.header.streamId, 7);
  assert.equal(statusOf(fourth.data).code, 0);
});

test("server drops data for unknown streams", async (t) => {
  const { path } = await startPair(t, {
    services: [[Transfer, { transfer: () => ({}) }]],
  });
  const peer = await RawPeer.connect(t, path);

  peer.send(9, MessageType.Data, 0, hex("0a 00"));
  peer.send(9, MessageType.Data, 0x05);
  peer.send(11, MessageType.Request, 0, unaryRequest());
  const frame = await peer.frame(0);
  await sleep(50);

  assert.equal(frame.header.streamId, 11);
  assert.equal(peer.frames.length, 1);
});

test("oversized data fails only its stream", async (t) => {
  const handlerReason = deferred<unknown>();
  const { path } = await startPair(t, {
    maxMessageBytes: 1024,
    services: [
      createServiceImplSpec<typeof Streaming>(Streaming, {
        async *stream(requests, context: HandlerContext) {
          // The oversized frame may fail the call before the handler runs.
          if (context.signal.aborted) {
            handlerReason.resolve(context.signal.reason);
          }
          context.signal.addEventListener("abort", () =>
            handlerReason.resolve(context.signal.reason),
          );
          for await (const request of requests) {
            yield request;
          }
        },
      }),
      [Transfer, { transfer: () => ({}) }],
    ],
  });
  const peer = await RawPeer.connect(t, path);

  peer.socket.write(openBytes);
  peer.send(1, MessageType.Data, 0, Buffer.alloc(5000));
  const failed = await peer.frame(0);
  peer.send(3, MessageType.Request, 0, unaryRequest());
  const next = await peer.frame(1);

  assert.equal(failed.header.streamId, 1);
  assert.equal(failed.header.type, MessageType.Response);
  assert.equal(statusOf(failed.data).code, Code.ResourceExhausted);
  const reason = await handlerReason.promise;
  assert.ok(reason instanceof ConnectError);
  assert.equal(reason.code, Code.ResourceExhausted);
  assert.equal(next.header.streamId, 3);
  assert.equal(statusOf(next.data).code, 0);
});

function unaryRequest(): Uint8Array {
  return toBinary(
    RequestSchema,
    create(RequestSchema, { service: Transfer.typeName, method: "Transfer" }),
  );
}

function statusOf(data: Uint8Array): { code: number; message: string } {
  const status = fromBinary(ResponseSchema, data).status;
  return { code: status?.code ?? 0, message: status?.message ?? "" };
}

for (const limit of ["bytes", "messages"] as const) {
  test(`unread stream fails at its ${limit} limit`, async (t) => {
    const handlerStarted = deferred();
    const { path } = await startPair(t, {
      streamBufferBytes: limit === "bytes" ? 64 * 1024 : 1024 ** 3,
      streamBufferMessages: limit === "messages" ? 4 : 1000,
      streamBufferTimeoutMs: 200,
      services: [
        createServiceImplSpec<typeof Streaming>(Streaming, {
          async *stream(_requests, context: HandlerContext) {
            handlerStarted.resolve();
            await new Promise((resolve) =>
              context.signal.addEventListener("abort", resolve),
            );
          },
        }),
      ],
    });
    const peer = await RawPeer.connect(t, path);

    peer.socket.write(openBytes);
    await handlerStarted.promise;
    for (let i = 0; i < 8; i++) {
      peer.send(1, MessageType.Data, 0, Buffer.alloc(16 * 1024));
    }
    const failed = await peer.frame(0, 5000);

    assert.equal(failed.header.streamId, 1);
    assert.equal(failed.header.type, MessageType.Response);
    const status = statusOf(failed.data);
    assert.equal(status.code, Code.ResourceExhausted);
    assert.match(status.message, /receive buffer full/);
    assert.match(status.message, /4 queued messages \(65536 bytes\)/);
  });
}

test("server closes a silent half frame", async (t) => {
  const { path } = await startPair(t, {
    midFrameTimeoutMs: 200,
    services: [[Transfer, { transfer: () => ({}) }]],
  });
  const idle = await RawPeer.connect(t, path);
  const stalled = await RawPeer.connect(t, path);

  // A header that announces 1 MiB, followed by 10 bytes of it.
  const frame = rawFrame(3, MessageType.Request, 0, Buffer.alloc(1024 * 1024));
  stalled.socket.write(frame.subarray(0, 20));
  const closedAfter = await Promise.race([
    stalled.closed.then(() => "closed"),
    sleep(5_000).then(() => "open"),
  ]);
  idle.send(5, MessageType.Request, 0, unaryRequest());
  const reply = await idle.frame(0);

  assert.equal(closedAfter, "closed");
  assert.equal(statusOf(reply.data).code, 0);
});

test("server keeps a slow steady frame", async (t) => {
  const { path } = await startPair(t, {
    midFrameTimeoutMs: 200,
    services: [[Transfer, { transfer: () => ({}) }]],
  });
  const peer = await RawPeer.connect(t, path);

  // One byte every 20 ms: the whole frame takes longer than the timeout,
  // but the connection is never silent for that long.
  const frame = rawFrame(3, MessageType.Request, 0, unaryRequest());
  for (const byte of frame) {
    peer.socket.write(Buffer.from([byte]));
    await sleep(20);
  }
  const reply = await peer.frame(0);

  assert.ok(frame.length * 20 > 400, `${frame.length} bytes`);
  assert.equal(statusOf(reply.data).code, 0);
});

test("server ignores an overlong deadline", async (t) => {
  const { path } = await startPair(t, {
    services: [
      [
        Transfer,
        {
          async transfer() {
            await sleep(50);
            return {};
          },
        },
      ],
    ],
  });
  const peer = await RawPeer.connect(t, path);
  // A Node.js timer set to 30 days fires at once.
  const request = toBinary(
    RequestSchema,
    create(RequestSchema, {
      service: Transfer.typeName,
      method: "Transfer",
      timeoutNano: 30n * 86_400n * 1_000_000_000n,
    }),
  );

  peer.send(1, MessageType.Request, 0, request);
  const frame = await peer.frame(0);

  assert.equal(statusOf(frame.data).code, 0);
});

test("server stops reading a client that reads nothing", async (t) => {
  const { path } = await startPair(t, { services: [[Transfer, {}]] });
  const socket = net.connect(path);
  t.after(() => socket.destroy());
  await new Promise((resolve) => socket.once("connect", resolve));
  socket.pause();
  // Each frame has an even stream id, so the server responds to each
  // with an InvalidArgument status of about 70 bytes.
  const frameCount = 120_000;
  const frames = Buffer.alloc(10 * frameCount);
  for (let index = 0; index < frameCount; index++) {
    frames.writeUInt32BE(2 * (index + 1), 10 * index + 4);
    frames[10 * index + 8] = MessageType.Request;
  }
  let written = false;
  socket.write(frames, () => {
    written = true;
  });

  // A server that reads on regardless took about 1.5 s for the 1.2 MB.
  await sleep(3000);
  const writtenWhileNotReading = written;
  socket.resume();
  await new Promise<void>((resolve) => {
    const check = () => (written ? resolve() : setTimeout(check, 20));
    check();
  });

  assert.equal(writtenWhileNotReading, false);
  assert.equal(written, true);
});
