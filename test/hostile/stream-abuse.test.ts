/**
 * Peers that break the byte-stream protocol. A hostile client talks to the
 * real server through raw Streaming calls; a hostile transferrer talks to
 * the real client. Each test checks the error the offender gets, that the
 * server keeps serving, and that the stream registry drains.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { connect as connectSocket } from "node:net";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { type Any, packAny } from "../../src/any/index.js";
import { type Client, connect } from "../../src/client/index.js";
import { Code, TransferError } from "../../src/errors/index.js";
import {
  StreamInitSchema,
  Streaming,
} from "../../src/gen/containerd/services/streaming/v1/streaming_pb.js";
import { Transfer } from "../../src/gen/containerd/services/transfer/v1/transfer_pb.js";
import { ContainerPathSchema } from "../../src/gen/containerd/types/transfer/container_pb.js";
import {
  ReadStreamSchema,
  WindowUpdateSchema,
  WriteStreamSchema,
} from "../../src/gen/containerd/types/transfer/streaming_pb.js";
import { createGrpcTransport } from "../../src/grpc/index.js";
import type { Transferrer, TransferServer } from "../../src/server/index.js";
import {
  newStreamId,
  openStream,
  packData,
  type Stream,
  unpackData,
} from "../../src/streaming/index.js";
import {
  ContainerPath,
  ReadStream,
  tarMediaType,
  WriteStream,
} from "../../src/transfer/index.js";
import { Pushable } from "../../src/util/pushable.js";
import {
  type Endpoint,
  patternBytes,
  protocols,
  startEndpoint,
} from "../helpers/endpoint.js";
import { rawTar } from "../helpers/raw-tar.js";

const container = packAny(ContainerPathSchema, {
  containerId: "c1",
  path: "/",
});

function readStreamAny(id: string): Any {
  return packAny(ReadStreamSchema, { stream: id, mediaType: tarMediaType });
}

function writeStreamAny(id: string): Any {
  return packAny(WriteStreamSchema, { stream: id, mediaType: tarMediaType });
}

/** Opens a Streaming call whose messages the test writes by hand. */
function rawStream(client: Client, id = newStreamId("raw")): Promise<Stream> {
  return openStream(client.transport, id, { headers: client.headers });
}

/** Calls Transfer with hand-made ends and resolves with its error or "ok". */
async function rawTransfer(
  client: Client,
  source: Any,
  destination: Any,
): Promise<TransferError | "ok"> {
  const transfer = createClient(Transfer, client.transport);
  try {
    await transfer.transfer(
      { source, destination },
      { headers: client.headers, timeoutMs: 10_000 },
    );
    return "ok";
  } catch (error) {
    return TransferError.from(error);
  }
}

function assertError(
  outcome: TransferError | "ok",
  code: Code,
  pattern: RegExp,
): void {
  assert.notEqual(outcome, "ok", "the transfer should fail");
  if (outcome !== "ok") {
    assert.equal(outcome.code, code, outcome.message);
    assert.match(outcome.message, pattern);
  }
}

/** Waits up to 5 s for the registry to hold no stream. */
async function assertDrained(server: TransferServer): Promise<void> {
  for (let i = 0; i < 100 && server.registry.size > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(server.registry.size, 0, "streams left in the registry");
}

/** Copies a small archive in, to show that the server still works. */
async function assertServing(endpoint: Endpoint): Promise<void> {
  await endpoint.client.transfer(
    new ReadStream([rawTar([{ name: "after", body: "ok" }])]),
    new ContainerPath({ containerId: "c1", path: "/" }),
  );
  await assertDrained(endpoint.server);
}

/** Resolves with the error that ends `stream`, or "ended" on a clean end. */
async function endOf(stream: Stream): Promise<string> {
  try {
    for (let i = 0; i < 10_000; i++) {
      if ((await stream.receive()) === undefined) {
        return "ended";
      }
    }
    return "still open";
  } catch (error) {
    return TransferError.from(error).message;
  }
}

for (const protocol of protocols) {
  test(`data over window rejected over ${protocol}`, async (t) => {
    // A window of 1 MiB, so that one message can exceed it within the
    // ttrpc message limit of 4 MiB.
    const windowBytes = 1024 * 1024;
    const endpoint = await startEndpoint(t, protocol, { windowBytes });
    await endpoint.addContainer("c1");
    const stream = await rawStream(endpoint.client);
    // One byte more than the server's first grant.
    await stream.send(packData(Buffer.alloc(windowBytes + 1, 1)));

    const outcome = await rawTransfer(
      endpoint.client,
      readStreamAny(stream.id),
      container,
    );

    assertError(outcome, Code.InvalidArgument, /exceeded its window/);
    stream.abort();
    await assertDrained(endpoint.server);
    await assertServing(endpoint);
  });

  test(`zero window update rejected over ${protocol}`, async (t) => {
    const endpoint = await startEndpoint(t, protocol);
    const rootfs = await endpoint.addContainer("c1");
    await writeFile(`${rootfs}/file`, "x");
    const stream = await rawStream(endpoint.client);
    await stream.send(packAny(WindowUpdateSchema, { update: 0 }));

    const outcome = await rawTransfer(
      endpoint.client,
      packAny(ContainerPathSchema, { containerId: "c1", path: "/file" }),
      writeStreamAny(stream.id),
    );

    assertError(outcome, Code.InvalidArgument, /invalid window update 0/);
    stream.abort();
    await assertDrained(endpoint.server);
    await assertServing(endpoint);
  });
}

test("negative window update rejected", async (t) => {
  const endpoint = await startEndpoint(t, "ttrpc");
  const rootfs = await endpoint.addContainer("c1");
  await writeFile(`${rootfs}/file`, "x");
  const stream = await rawStream(endpoint.client);
  await stream.send(packAny(WindowUpdateSchema, { update: -5 }));

  const outcome = await rawTransfer(
    endpoint.client,
    packAny(ContainerPathSchema, { containerId: "c1", path: "/file" }),
    writeStreamAny(stream.id),
  );

  assertError(outcome, Code.InvalidArgument, /invalid window update -5/);
  stream.abort();
  await assertDrained(endpoint.server);
});

test("overflowing window updates rejected", async (t) => {
  const endpoint = await startEndpoint(t, "ttrpc");
  const rootfs = await endpoint.addContainer("c1");
  // Large enough that the server is still sending when the second grant
  // arrives, so the overflow is seen before the pack ends.
  await writeFile(`${rootfs}/big`, patternBytes(8 * 1024 * 1024));
  const stream = await rawStream(endpoint.client);
  await stream.send(packAny(WindowUpdateSchema, { update: 2 ** 31 - 1 }));
  await stream.send(packAny(WindowUpdateSchema, { update: 2 ** 31 - 1 }));

  const outcome = await rawTransfer(
    endpoint.client,
    packAny(ContainerPathSchema, { containerId: "c1", path: "/big" }),
    writeStreamAny(stream.id),
  );

  assertError(outcome, Code.InvalidArgument, /overflows the credit/);
  stream.abort();
  await assertDrained(endpoint.server);
});

test("unknown message type rejected", async (t) => {
  const endpoint = await startEndpoint(t, "ttrpc");
  await endpoint.addContainer("c1");
  const stream = await rawStream(endpoint.client);
  await stream.send(packAny(EmptySchema, create(EmptySchema)));

  const outcome = await rawTransfer(
    endpoint.client,
    readStreamAny(stream.id),
    container,
  );

  assertError(
    outcome,
    Code.InvalidArgument,
    /unexpected google\.protobuf\.Empty message/,
  );
  await assertDrained(endpoint.server);
  await assertServing(endpoint);
});

test("second StreamInit rejected", async (t) => {
  const endpoint = await startEndpoint(t, "ttrpc");
  await endpoint.addContainer("c1");
  const stream = await rawStream(endpoint.client);
  await stream.send(packAny(StreamInitSchema, { id: stream.id }));

  const outcome = await rawTransfer(
    endpoint.client,
    readStreamAny(stream.id),
    container,
  );

  assertError(outcome, Code.InvalidArgument, /unexpected .*StreamInit/);
  await assertDrained(endpoint.server);
});

test("stream id used twice", async (t) => {
  const endpoint = await startEndpoint(t, "ttrpc");
  const first = await rawStream(endpoint.client, "twice");

  const second = await rawStream(endpoint.client, "twice").then(
    () => undefined,
    (error: unknown) => TransferError.from(error),
  );

  assert.ok(second, "the second stream should be rejected");
  assert.equal(second.code, Code.AlreadyExists, second.message);
  assert.match(second.message, /"twice" already exists/);
  assert.equal(endpoint.server.registry.size, 1);
  first.abort();
  await endpoint.client.close();
  await assertDrained(endpoint.server);
});

test("one stream claimed twice", async (t) => {
  const endpoint = await startEndpoint(t, "ttrpc");
  const stream = await rawStream(endpoint.client);

  const outcome = await rawTransfer(
    endpoint.client,
    readStreamAny(stream.id),
    writeStreamAny(stream.id),
  );

  assertError(outcome, Code.FailedPrecondition, /already used/);
  assert.match(await endOf(stream), /failed|ended|already used/);
  await assertDrained(endpoint.server);
});

test("never created stream not found", async (t) => {
  const endpoint = await startEndpoint(t, "ttrpc");
  await endpoint.addContainer("c1");

  const outcome = await rawTransfer(
    endpoint.client,
    readStreamAny("never-created"),
    container,
  );

  assertError(outcome, Code.NotFound, /"never-created" not found/);
  await assertDrained(endpoint.server);
});

test("closed stream not found", async (t) => {
  const endpoint = await startEndpoint(t, "ttrpc");
  await endpoint.addContainer("c1");
  const stream = await rawStream(endpoint.client);
  await endpoint.client.close();
  await assertDrained(endpoint.server);
  const client = connect({ address: endpoint.socket, protocol: "ttrpc" });
  t.after(() => client.close());

  const outcome = await rawTransfer(
    client,
    readStreamAny(stream.id),
    container,
  );

  assertError(outcome, Code.NotFound, /not found/);
});

for (const protocol of protocols) {
  test(`abandoned stream kept until timeout over ${protocol}`, async (t) => {
    const endpoint = await startEndpoint(t, protocol, {
      streams: { unclaimedTimeoutMs: 500 },
    });
    const stream = await rawStream(endpoint.client);

    stream.abort();
    await new Promise((resolve) => setTimeout(resolve, 200));

    // ttrpc has no cancel frame, and an unclaimed stream's half-close is
    // not read, so the server keeps the entry until the unclaimed timeout.
    // A gRPC reset ends the call at once.
    assert.equal(endpoint.server.registry.size, protocol === "ttrpc" ? 1 : 0);
    await assertDrained(endpoint.server);
  });
}

test("unclaimed stream times out", async (t) => {
  const endpoint = await startEndpoint(t, "ttrpc", {
    streams: { unclaimedTimeoutMs: 200 },
  });
  const stream = await rawStream(endpoint.client);
  const started = Date.now();

  const end = await endOf(stream);

  assert.match(end, /not used by a transfer within 200 ms/);
  assert.ok(Date.now() - started < 5000, "the timeout took too long");
  await assertDrained(endpoint.server);
});

test("missing StreamInit times out", async (t) => {
  const endpoint = await startEndpoint(t, "ttrpc", {
    streams: { initTimeoutMs: 200 },
  });
  const requests = new Pushable<Any>(1);
  const responses = createClient(Streaming, endpoint.client.transport).stream(
    requests,
    { headers: endpoint.client.headers },
  );

  const outcome = await (async () => {
    for await (const _ of responses) {
      return "answered";
    }
    return "ended";
  })().catch((error: unknown) => TransferError.from(error));

  assert.ok(outcome instanceof TransferError, String(outcome));
  assert.equal(outcome.code, Code.DeadlineExceeded, outcome.message);
  assert.match(outcome.message, /no StreamInit within 200 ms/);
  requests.end();
  await assertDrained(endpoint.server);
});

test("stream limit rejects extra streams", async (t) => {
  const endpoint = await startEndpoint(t, "ttrpc", {
    streams: { maxStreams: 2 },
  });
  const open = [
    await rawStream(endpoint.client),
    await rawStream(endpoint.client),
  ];

  const third = await rawStream(endpoint.client).then(
    () => undefined,
    (error: unknown) => TransferError.from(error),
  );

  assert.ok(third, "the third stream should be rejected");
  assert.equal(third.code, Code.ResourceExhausted, third.message);
  assert.match(third.message, /limit is 2/);
  for (const stream of open) {
    stream.abort();
  }
  await endpoint.client.close();
  await assertDrained(endpoint.server);
});

test("stalled reader holds server to window", async (t) => {
  const endpoint = await startEndpoint(t, "ttrpc");
  const rootfs = await endpoint.addContainer("c1");
  await writeFile(`${rootfs}/big`, patternBytes(4 * 1024 * 1024));
  const stream = await rawStream(endpoint.client);
  await stream.send(packAny(WindowUpdateSchema, { update: 65_536 }));
  const outcome = rawTransfer(
    endpoint.client,
    packAny(ContainerPathSchema, { containerId: "c1", path: "/big" }),
    writeStreamAny(stream.id),
  );

  let received = 0;
  while (received < 65_536) {
    const message = await stream.receive();
    assert.ok(message, "the server ended the stream early");
    received += unpackData(message).length;
  }
  // The server has used its whole grant, so nothing more may come.
  const extra = await Promise.race([
    stream.receive().then(() => "message"),
    new Promise((resolve) => setTimeout(resolve, 300, "quiet")),
  ]);
  assert.equal(extra, "quiet");
  assert.equal(received, 65_536);
  assert.equal(endpoint.server.registry.size, 1);

  await endpoint.client.close();

  const result = await outcome;
  assert.notEqual(result, "ok");
  await assertDrained(endpoint.server);
});

test("oversized ttrpc frame answered, server lives", async (t) => {
  const endpoint = await startEndpoint(t, "ttrpc");
  await endpoint.addContainer("c1");
  const socket = connectSocket(endpoint.socket);
  t.after(() => socket.destroy());
  const replies: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => replies.push(chunk));
  await new Promise((resolve) => socket.once("connect", resolve));

  const length = 5 * 1024 * 1024;
  const header = Buffer.alloc(10);
  header.writeUInt32BE(length, 0);
  header.writeUInt32BE(1, 4);
  header[8] = 1; // Request
  socket.write(header);
  socket.write(Buffer.alloc(length));
  for (let i = 0; i < 100 && Buffer.concat(replies).length < 10; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  const reply = Buffer.concat(replies);
  assert.ok(reply.length >= 10, "no reply to the oversized frame");
  assert.equal(reply.readUInt32BE(4), 1, "reply on another stream");
  assert.equal(reply[8], 2, "the reply is not a Response frame");
  assert.match(reply.toString("latin1"), /limit/);
  await assertServing(endpoint);
});

test("oversized gRPC message rejected, server lives", async (t) => {
  const endpoint = await startEndpoint(t, "grpc");
  await endpoint.addContainer("c1");
  // A client whose own limit is above the server's 16 MiB.
  const transport = createGrpcTransport({
    path: endpoint.socket,
    maxMessageBytes: 64 * 1024 * 1024,
  });
  t.after(() => transport.close());
  const stream = await openStream(transport, newStreamId("big"), {
    headers: endpoint.client.headers,
  });

  const outcome = rawTransfer(
    endpoint.client,
    readStreamAny(stream.id),
    container,
  );
  // The first WindowUpdate shows that the server reads the stream.
  assert.ok(await stream.receive(), "no window from the server");
  await stream.send(packData(Buffer.alloc(17 * 1024 * 1024))).catch(() => {});

  assertError(
    await outcome,
    Code.ResourceExhausted,
    /larger than|exceeds|limit/,
  );
  await transport.close();
  await assertDrained(endpoint.server);
  await assertServing(endpoint);
});

/** Serves copy-out requests by running `misbehave` on the WriteStream. */
function hostileSender(misbehave: (stream: Stream) => Promise<void>) {
  const transferrer: Transferrer = {
    name: "hostile-sender",
    async transfer(source, destination) {
      if (
        source.type !== "ContainerPath" ||
        destination.type !== "WriteStream"
      ) {
        return false;
      }
      await misbehave(destination.stream);
      return true;
    },
  };
  return transferrer;
}

/** Serves copy-in requests by running `misbehave` on the ReadStream. */
function hostileReceiver(misbehave: (stream: Stream) => Promise<void>) {
  const transferrer: Transferrer = {
    name: "hostile-receiver",
    async transfer(source, destination) {
      if (
        source.type !== "ReadStream" ||
        destination.type !== "ContainerPath"
      ) {
        return false;
      }
      await misbehave(source.stream);
      return true;
    },
  };
  return transferrer;
}

const senderAbuse: { name: string; run: (s: Stream) => Promise<void> }[] = [
  {
    name: "data over client window",
    run: async (stream) => {
      await stream.receive();
      await stream.send(packData(Buffer.alloc(100_000)));
      await stream.closeSend();
    },
  },
  {
    name: "unknown type to client",
    run: async (stream) => {
      await stream.receive();
      await stream.send(packAny(EmptySchema, create(EmptySchema)));
      await stream.closeSend();
    },
  },
];

for (const { name, run } of senderAbuse) {
  test(`client rejects ${name}`, async (t) => {
    const endpoint = await startEndpoint(t, "ttrpc", {
      transferrers: [hostileSender(run)],
    });
    const sink = new PassThrough();
    sink.resume();
    const destination = new WriteStream(sink);

    const outcome = await endpoint.client
      .transfer(
        new ContainerPath({ containerId: "c1", path: "/" }),
        destination,
      )
      .then(
        () => "ok" as const,
        (error: unknown) => TransferError.from(error),
      );

    assertError(
      outcome,
      Code.InvalidArgument,
      /exceeded its window|unexpected google\.protobuf\.Empty/,
    );
    await assert.rejects(destination.wait());
    await assertDrained(endpoint.server);
  });
}

test("client rejects zero window update", async (t) => {
  const endpoint = await startEndpoint(t, "ttrpc", {
    transferrers: [
      hostileReceiver(async (stream) => {
        await stream.send(packAny(WindowUpdateSchema, { update: 0 }));
        await endOf(stream);
      }),
    ],
  });
  const source = new ReadStream([Buffer.alloc(1000)]);

  const outcome = await endpoint.client
    .transfer(source, new ContainerPath({ containerId: "c1", path: "/" }))
    .then(
      () => "ok" as const,
      (error: unknown) => TransferError.from(error),
    );

  assertError(outcome, Code.InvalidArgument, /invalid window update 0/);
  await assertDrained(endpoint.server);
});

test("client bounded by silent receiver", async (t) => {
  const endpoint = await startEndpoint(t, "ttrpc", {
    transferrers: [hostileReceiver((stream) => endOf(stream).then(() => {}))],
  });
  let sent = 0;
  const source = new ReadStream([Buffer.alloc(1024 * 1024)], tarMediaType, {
    onBytes: (total) => {
      sent = total;
    },
  });
  const controller = new AbortController();
  const outcome = endpoint.client.transfer(
    source,
    new ContainerPath({ containerId: "c1", path: "/" }),
    { signal: controller.signal },
  );

  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(sent, 0, "bytes sent without a window");
  controller.abort(new TransferError("test gave up", Code.Canceled));

  await assert.rejects(outcome, /test gave up/);
  await assertDrained(endpoint.server);
});

test("container path with NUL rejected", async (t) => {
  const endpoint = await startEndpoint(t, "ttrpc");
  await endpoint.addContainer("c1");
  const stream = await rawStream(endpoint.client);

  const outcome = await rawTransfer(
    endpoint.client,
    readStreamAny(stream.id),
    packAny(ContainerPathSchema, { containerId: "c1", path: "/a\0b" }),
  );

  assertError(outcome, Code.InvalidArgument, /"\/a\\u0000b".*NUL byte/);
  stream.abort();
  await assertDrained(endpoint.server);
  await assertServing(endpoint);
});
