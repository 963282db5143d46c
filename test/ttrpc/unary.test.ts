import assert from "node:assert/strict";
import { test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { TransferError } from "../../src/errors/index.js";
import {
  Transfer,
  TransferRequestSchema,
} from "../../src/gen/containerd/services/transfer/v1/transfer_pb.js";
import { RequestSchema } from "../../src/gen/ttrpc/request_pb.js";
import { createTtrpcTransport, MessageType } from "../../src/ttrpc/index.js";
import {
  deferred,
  RawPeer,
  rawServer,
  rejection,
  startPair,
  tempSocket,
  textAny,
} from "./harness.js";

test("unary call returns response", async (t) => {
  const seen: string[] = [];
  const { transport } = await startPair(t, {
    services: [
      [
        Transfer,
        {
          transfer(request: { source?: { typeUrl: string } }) {
            seen.push(request.source?.typeUrl ?? "");
            return {};
          },
        },
      ],
    ],
  });
  const client = createClient(Transfer, transport);

  const response = await client.transfer({ source: textAny("a") });

  assert.equal(response.$typeName, "google.protobuf.Empty");
  assert.deepEqual(seen, ["test.Text"]);
});

test("unary error keeps code and message", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      [
        Transfer,
        {
          transfer() {
            throw new ConnectError("stream x: not found", Code.NotFound);
          },
        },
      ],
    ],
  });
  const client = createClient(Transfer, transport);

  const error = await rejection(client.transfer({}));

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.NotFound);
  assert.equal(error.rawMessage, "stream x: not found");
});

test("unary plain error maps through errors", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      [
        Transfer,
        {
          transfer() {
            throw new TransferError("no such path", Code.PermissionDenied);
          },
        },
      ],
    ],
  });
  const client = createClient(Transfer, transport);

  const error = await rejection(client.transfer({}));

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.PermissionDenied);
  assert.equal(error.rawMessage, "no such path");
});

test("unknown service is unimplemented", async (t) => {
  const { transport } = await startPair(t, { services: [] });
  const client = createClient(Transfer, transport);

  const error = await rejection(client.transfer({}));

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.Unimplemented);
  assert.equal(
    error.rawMessage,
    "service containerd.services.transfer.v1.Transfer",
  );
});

test("unknown method is unimplemented", async (t) => {
  const { path } = await startPair(t, { services: [[Transfer, {}]] });
  const peer = await RawPeer.connect(t, path);
  const request = create(RequestSchema, {
    service: Transfer.typeName,
    method: "Nope",
  });

  peer.send(1, MessageType.Request, 0, toBinary(RequestSchema, request));
  const frame = await peer.frame(0);

  assert.equal(frame.header.type, MessageType.Response);
  assert.equal(frame.header.streamId, 1);
  // Response{status{code 12, message "method Nope"}}
  assert.deepEqual(
    frame.data,
    Buffer.concat([
      Buffer.from([0x0a, 0x0f, 0x08, 0x0c, 0x12, 0x0b]),
      Buffer.from("method Nope"),
    ]),
  );
});

test("missing method implementation is unimplemented", async (t) => {
  const { transport } = await startPair(t, { services: [[Transfer, {}]] });
  const client = createClient(Transfer, transport);

  const error = await rejection(client.transfer({}));

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.Unimplemented);
});

test("unary timeout reaches the handler", async (t) => {
  const handlerAborted = deferred<unknown>();
  let handlerTimeoutMs: number | undefined;
  const { transport } = await startPair(t, {
    services: [
      [
        Transfer,
        {
          transfer(
            _: unknown,
            context: { signal: AbortSignal; timeoutMs(): number | undefined },
          ) {
            handlerTimeoutMs = context.timeoutMs();
            context.signal.addEventListener("abort", () =>
              handlerAborted.resolve(context.signal.reason),
            );
            return new Promise(() => {});
          },
        },
      ],
    ],
  });
  const client = createClient(Transfer, transport);
  const started = performance.now();

  const error = await rejection(client.transfer({}, { timeoutMs: 200 }));
  const elapsedMs = performance.now() - started;
  const handlerReason = await handlerAborted.promise;

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.DeadlineExceeded);
  assert.ok(elapsedMs >= 190, `took ${elapsedMs} ms`);
  assert.ok(elapsedMs < 1000, `took ${elapsedMs} ms`);
  assert.ok(handlerTimeoutMs !== undefined);
  assert.ok(handlerTimeoutMs > 100, `handler saw ${handlerTimeoutMs} ms`);
  assert.ok(handlerTimeoutMs <= 200, `handler saw ${handlerTimeoutMs} ms`);
  assert.ok(handlerReason instanceof ConnectError);
  assert.equal(handlerReason.code, Code.DeadlineExceeded);
});

test("unary timeout sent as timeout_nano", async (t) => {
  const path = await tempSocket(t);
  const requests: number[] = [];
  await rawServer(t, path, (peer) => {
    void peer.frame(0).then((frame) => {
      const request = fromRequest(frame.data);
      requests.push(Number(request.timeoutNano));
      peer.send(frame.header.streamId, MessageType.Response, 0);
    });
  });
  const transport = createTtrpcTransport({ path });
  t.after(() => transport.close());
  const client = createClient(Transfer, transport);

  await client.transfer({}, { timeoutMs: 5000 });

  assert.equal(requests.length, 1);
  assert.ok(requests[0]! > 4_000_000_000, `timeout_nano ${requests[0]}`);
  assert.ok(requests[0]! <= 5_000_000_000, `timeout_nano ${requests[0]}`);
});

test("unary abort rejects as canceled", async (t) => {
  const handlerStarted = deferred();
  const { transport } = await startPair(t, {
    services: [
      [
        Transfer,
        {
          transfer() {
            handlerStarted.resolve();
            return new Promise(() => {});
          },
        },
      ],
    ],
  });
  const client = createClient(Transfer, transport);
  const controller = new AbortController();

  const call = client.transfer({}, { signal: controller.signal });
  await handlerStarted.promise;
  controller.abort();
  const error = await rejection(call, 500);

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.Canceled);
});

test("metadata reaches handler lower-cased", async (t) => {
  let seen: Headers | undefined;
  const { transport } = await startPair(t, {
    services: [
      [
        Transfer,
        {
          transfer(_: unknown, context: { requestHeader: Headers }) {
            seen = context.requestHeader;
            return {};
          },
        },
      ],
    ],
  });
  const client = createClient(Transfer, transport);

  await client.transfer(
    {},
    {
      headers: [
        ["Containerd-Namespace-Ttrpc", "demo"],
        ["x-multi", "one"],
        ["x-multi", "two"],
      ],
    },
  );

  assert.equal(seen?.get("containerd-namespace-ttrpc"), "demo");
  assert.equal(seen?.get("x-multi"), "one, two");
});

test("repeated metadata keys stay separate", async (t) => {
  const path = await tempSocket(t);
  const metadata: [string, string][] = [];
  await rawServer(t, path, (peer) => {
    void peer.frame(0).then((frame) => {
      for (const entry of fromRequest(frame.data).metadata) {
        metadata.push([entry.key, entry.value]);
      }
      peer.send(frame.header.streamId, MessageType.Response, 0);
    });
  });
  const transport = createTtrpcTransport({ path });
  t.after(() => transport.close());
  const client = createClient(Transfer, transport);

  await client.transfer(
    {},
    {
      headers: [
        ["X-Multi", "one"],
        ["x-multi", "two"],
        ["x-single", "three"],
      ],
    },
  );

  assert.deepEqual(metadata, [
    ["x-multi", "one"],
    ["x-multi", "two"],
    ["x-single", "three"],
  ]);
});

test("oversized request is rejected locally", async (t) => {
  const { transport } = await startPair(
    t,
    { services: [[Transfer, {}]] },
    {
      maxMessageBytes: 1024,
    },
  );
  const client = createClient(Transfer, transport);
  const large = create(TransferRequestSchema, {
    source: { typeUrl: "x", value: new Uint8Array(2048) },
  });

  const error = await rejection(client.transfer(large));

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.ResourceExhausted);
  assert.match(error.rawMessage, /exceeds the ttrpc message limit of 1024/);
});

test("oversized request draws ResourceExhausted", async (t) => {
  let calls = 0;
  const { transport } = await startPair(
    t,
    {
      services: [
        [
          Transfer,
          {
            transfer() {
              calls += 1;
              return {};
            },
          },
        ],
      ],
      maxMessageBytes: 1024,
    },
    { maxMessageBytes: 64 * 1024 },
  );
  const client = createClient(Transfer, transport);
  const large = { source: { typeUrl: "x", value: new Uint8Array(2048) } };

  const error = await rejection(client.transfer(large));
  await client.transfer({});

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.ResourceExhausted);
  assert.equal(calls, 1, "the oversized call must not reach the handler");
});

test("oversized response fails the call", async (t) => {
  const path = await tempSocket(t);
  await rawServer(t, path, (peer) => {
    // Answers the first call with a 5000-byte Response, the second with
    // an empty one.
    void peer.frame(0).then((frame) => {
      const payload = Buffer.concat([
        Buffer.from([0x12, 0x85, 0x27]),
        Buffer.alloc(5000 - 3),
      ]);
      peer.send(frame.header.streamId, MessageType.Response, 0, payload);
    });
    void peer.frame(1).then((frame) => {
      peer.send(frame.header.streamId, MessageType.Response, 0);
    });
  });
  const transport = createTtrpcTransport({ path, maxMessageBytes: 1024 });
  t.after(() => transport.close());
  const client = createClient(Transfer, transport);

  const error = await rejection(client.transfer({}));
  const next = await client.transfer({});

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.ResourceExhausted);
  assert.match(error.rawMessage, /frame of 5000 bytes/);
  assert.equal(next.$typeName, "google.protobuf.Empty");
});

function fromRequest(data: Uint8Array) {
  return fromBinary(RequestSchema, data);
}

test("server close aborts open calls", async (t) => {
  const handlerStarted = deferred();
  const handlerAborted = deferred<unknown>();
  const { server, transport } = await startPair(t, {
    closeGraceMs: 100,
    services: [
      [
        Transfer,
        {
          transfer(_: unknown, context: { signal: AbortSignal }) {
            context.signal.addEventListener("abort", () =>
              handlerAborted.resolve(context.signal.reason),
            );
            handlerStarted.resolve();
            return new Promise(() => {});
          },
        },
      ],
    ],
  });
  const client = createClient(Transfer, transport);

  const call = rejection(client.transfer({}));
  await handlerStarted.promise;
  const closed = server.close();
  const error = await call;
  const handlerReason = await handlerAborted.promise;
  await closed;

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.Unavailable);
  assert.ok(handlerReason instanceof ConnectError);
  assert.equal(handlerReason.code, Code.Unavailable);
});
