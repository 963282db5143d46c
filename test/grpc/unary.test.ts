import assert from "node:assert/strict";
import * as http2 from "node:http2";
import * as net from "node:net";
import { test } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { TransferError } from "../../src/errors/index.js";
import { Transfer } from "../../src/gen/containerd/services/transfer/v1/transfer_pb.js";
import { createServiceSpec } from "../../src/grpc/index.js";
import { namespaceHeaderGrpc } from "../../src/transport/index.js";
import { deferred, rejection, startPair } from "./harness.js";

test("unary call delivers request and headers", async (t) => {
  let seenStream = "";
  let seenNamespace: string | null = null;
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Transfer, {
        async transfer(request, context) {
          seenStream = request.options?.progressStream ?? "";
          seenNamespace = context.requestHeader.get(namespaceHeaderGrpc);
          return {};
        },
      }),
    ],
  });
  const client = createClient(Transfer, transport);

  await client.transfer(
    { options: { progressStream: "progress-1" } },
    { headers: { [namespaceHeaderGrpc]: "ns1" } },
  );

  assert.equal(transport.protocol, "grpc");
  assert.equal(seenStream, "progress-1");
  assert.equal(seenNamespace, "ns1");
});

test("unary errors keep code and kind", async (t) => {
  const cases: {
    thrown: unknown;
    code: Code;
    kind: string;
    message: string;
  }[] = [
    {
      thrown: new ConnectError("stream x: not found", Code.NotFound),
      code: Code.NotFound,
      kind: "not found",
      message: "stream x: not found",
    },
    {
      thrown: new TransferError("image y: already exists", Code.AlreadyExists),
      code: Code.AlreadyExists,
      kind: "already exists",
      message: "image y: already exists",
    },
    {
      thrown: new ConnectError("lease z: conflict", Code.FailedPrecondition),
      code: Code.FailedPrecondition,
      kind: "conflict",
      message: "lease z: conflict",
    },
    {
      // Go servers that return errors unconverted send Unknown with the
      // errdefs text; the kind comes from the text.
      thrown: new ConnectError("stream w: already exists", Code.Unknown),
      code: Code.AlreadyExists,
      kind: "already exists",
      message: "stream w: already exists",
    },
    {
      thrown: new Error("plain failure"),
      code: Code.Unknown,
      kind: "unknown",
      message: "plain failure",
    },
    {
      thrown: Object.assign(new Error("ENOENT: no such file, open '/x'"), {
        code: "ENOENT",
      }),
      code: Code.NotFound,
      kind: "not found",
      message: "ENOENT: no such file, open '/x'",
    },
  ];
  let index = 0;
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Transfer, {
        async transfer() {
          throw cases[index]!.thrown;
        },
      }),
    ],
  });
  const client = createClient(Transfer, transport);

  for (; index < cases.length; index++) {
    const expected = cases[index]!;
    const error = TransferError.from(
      await rejection(client.transfer({}), 5000),
    );
    assert.equal(error.code, expected.code, expected.message);
    assert.equal(error.kind, expected.kind, expected.message);
    assert.equal(error.rawMessage, expected.message);
  }
});

test("unary call to missing method is unimplemented", async (t) => {
  const { transport } = await startPair(t, { services: [] });
  const client = createClient(Transfer, transport);

  const error = await rejection(client.transfer({}), 5000);

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.Unimplemented);
  assert.match(error.rawMessage, /Transfer\/Transfer/);
});

test("unary deadline gives deadline exceeded", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Transfer, {
        async transfer(_request, context) {
          await new Promise((resolve) =>
            context.signal.addEventListener("abort", resolve),
          );
          return {};
        },
      }),
    ],
  });
  const client = createClient(Transfer, transport);

  const error = await rejection(client.transfer({}, { timeoutMs: 200 }), 5000);

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.DeadlineExceeded);
});

test("unary abort cancels the handler", async (t) => {
  const started = deferred();
  const handlerAborted = deferred<unknown>();
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Transfer, {
        async transfer(_request, context) {
          started.resolve();
          await new Promise((resolve) =>
            context.signal.addEventListener("abort", resolve),
          );
          handlerAborted.resolve(context.signal.reason);
          return {};
        },
      }),
    ],
  });
  const client = createClient(Transfer, transport);
  const controller = new AbortController();

  const call = client.transfer({}, { signal: controller.signal });
  await started.promise;
  controller.abort();
  const error = await rejection(call, 5000);
  const reason = await handlerAborted.promise;

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.Canceled);
  assert.ok(reason instanceof ConnectError);
  assert.equal(reason.code, Code.Canceled);
});

test("messages over the limit are rejected", async (t) => {
  const { transport } = await startPair(
    t,
    {
      services: [[Transfer, { transfer: async () => ({}) }]],
      maxMessageBytes: 1024,
    },
    { maxMessageBytes: 1 << 20 },
  );
  const client = createClient(Transfer, transport);
  const large = { options: { progressStream: "x".repeat(4096) } };

  const error = await rejection(client.transfer(large), 5000);

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.ResourceExhausted);
});

test("large message over server limit", async (t) => {
  const { transport } = await startPair(
    t,
    {
      services: [[Transfer, { transfer: async () => ({}) }]],
      maxMessageBytes: 8 << 20,
    },
    { maxMessageBytes: 16 << 20 },
  );
  const client = createClient(Transfer, transport);
  // Larger than Node.js's default http2 session memory of 10 MB, which
  // would keep the status from being received.
  const large = { options: { progressStream: "x".repeat(12 << 20) } };

  const error = await rejection(client.transfer(large), 10_000);

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.ResourceExhausted);
});

test("unary call ignores an overlong timeout", async (t) => {
  const { path } = await startPair(t, {
    services: [
      createServiceSpec(Transfer, {
        async transfer(_, context) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          context.signal.throwIfAborted();
          return {};
        },
      }),
    ],
  });
  const session = http2.connect("http://localhost", {
    createConnection: () => net.connect(path),
  });
  t.after(() => session.close());
  // A Node.js timer set to 99999999 hours fires at once.
  const stream = session.request({
    ":method": "POST",
    ":path": `/${Transfer.typeName}/Transfer`,
    "content-type": "application/grpc",
    te: "trailers",
    "grpc-timeout": "99999999H",
  });
  stream.end(Buffer.alloc(5));
  stream.resume();
  const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) =>
    stream.once("trailers", resolve),
  );

  assert.equal(trailers["grpc-status"], "0");
});
