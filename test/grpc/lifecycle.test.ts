import assert from "node:assert/strict";
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import * as http2 from "node:http2";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import type { Any } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Streaming } from "../../src/gen/containerd/services/streaming/v1/streaming_pb.js";
import { Transfer } from "../../src/gen/containerd/services/transfer/v1/transfer_pb.js";
import {
  createGrpcServer,
  createGrpcTransport,
  createServiceSpec,
} from "../../src/grpc/index.js";
import {
  anyText,
  deferred,
  rejection,
  spawnFixtureServer,
  startPair,
  tempSocket,
  textAny,
} from "./harness.js";

const holdServer = fileURLToPath(
  new URL("./fixtures/hold-server.js", import.meta.url),
);

/**
 * Opens a stream, sends one message and waits for its echo. Returns the
 * call, which stays open until it fails.
 */
async function openEcho(
  client: ReturnType<typeof createClient<typeof Streaming>>,
): Promise<{ call: Promise<void> }> {
  const echoed = deferred();
  async function* oneThenWait(): AsyncIterable<Any> {
    yield textAny("ping");
    await new Promise(() => {});
  }
  const call = (async () => {
    for await (const message of client.stream(oneThenWait())) {
      assert.equal(anyText(message), "ping");
      echoed.resolve();
    }
  })();
  call.catch(() => {});
  await Promise.race([echoed.promise, call]);
  return { call };
}

function assertUnavailable(error: unknown): void {
  assert.ok(error instanceof ConnectError, String(error));
  assert.equal(error.code, Code.Unavailable, error.message);
}

test("killed server fails calls promptly", async (t) => {
  const path = await tempSocket(t);
  let child = await spawnFixtureServer(holdServer, path);
  t.after(() => child.kill("SIGKILL"));
  const transport = createGrpcTransport({ path });
  t.after(() => transport.close());
  const transfer = createClient(Transfer, transport);
  const streaming = createClient(Streaming, transport);

  const unary = transfer.transfer({});
  unary.catch(() => {});
  const { call: stream } = await openEcho(streaming);
  child.kill("SIGKILL");
  const unaryError = await rejection(unary, 1000);
  const streamError = await rejection(stream, 1000);

  assertUnavailable(unaryError);
  assertUnavailable(streamError);

  // The socket file is left behind; a new server replaces it and the same
  // transport connects again.
  child = await spawnFixtureServer(holdServer, path);
  const { call: again } = await openEcho(streaming);
  child.kill("SIGKILL");
  assertUnavailable(await rejection(again, 1000));
});

test("client close fails pending and later calls", async (t) => {
  const started = deferred();
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Transfer, {
        async transfer(_request, context) {
          started.resolve();
          await new Promise((resolve) =>
            context.signal.addEventListener("abort", resolve),
          );
          return {};
        },
      }),
      createServiceSpec(Streaming, {
        async *stream(requests) {
          yield* requests;
        },
      }),
    ],
  });
  const transfer = createClient(Transfer, transport);
  const streaming = createClient(Streaming, transport);

  const unary = transfer.transfer({});
  unary.catch(() => {});
  await started.promise;
  const { call: stream } = await openEcho(streaming);
  await transport.close();

  assertUnavailable(await rejection(unary, 1000));
  assertUnavailable(await rejection(stream, 1000));
  assertUnavailable(await rejection(transfer.transfer({}), 1000));
  await transport.close();
});

test("missing socket gives unavailable", async (t) => {
  const path = await tempSocket(t);
  const transport = createGrpcTransport({ path });
  t.after(() => transport.close());

  const error = await rejection(
    createClient(Transfer, transport).transfer({}),
    5000,
  );

  assertUnavailable(error);
  assert.ok(error instanceof ConnectError);
  assert.ok(error.rawMessage.includes(path), error.rawMessage);
  assert.match(error.rawMessage, /ENOENT/);
});

test("server close lets short calls finish", async (t) => {
  const release = deferred();
  const started = deferred();
  const { server, transport } = await startPair(t, {
    services: [
      createServiceSpec(Transfer, {
        async transfer() {
          started.resolve();
          await release.promise;
          return {};
        },
      }),
    ],
    closeGraceMs: 5000,
  });
  const client = createClient(Transfer, transport);

  const call = client.transfer({});
  await started.promise;
  const closed = server.close();
  setTimeout(release.resolve, 50);
  await call;
  await closed;

  assertUnavailable(await rejection(client.transfer({}), 5000));
});

test("server close aborts streams after grace", async (t) => {
  const { server, transport } = await startPair(t, {
    services: [
      // Honours its signal, so the client sees the server's status.
      createServiceSpec(Transfer, {
        async transfer(_request, context) {
          await new Promise((resolve) =>
            context.signal.addEventListener("abort", resolve),
          );
          throw context.signal.reason;
        },
      }),
      // Ignores its signal and waits for requests that never come.
      createServiceSpec(Streaming, {
        async *stream(requests) {
          yield* requests;
        },
      }),
    ],
    closeGraceMs: 200,
  });
  const transfer = createClient(Transfer, transport);
  const streaming = createClient(Streaming, transport);

  const unary = transfer.transfer({});
  unary.catch(() => {});
  const { call: stream } = await openEcho(streaming);
  const started = Date.now();
  await server.close();
  const elapsedMs = Date.now() - started;
  const unaryError = await rejection(unary, 1000);
  const streamError = await rejection(stream, 1000);

  assert.ok(elapsedMs >= 200, `closed after ${elapsedMs} ms`);
  assert.ok(elapsedMs < 2000, `closed after ${elapsedMs} ms`);
  assertUnavailable(unaryError);
  assert.ok(unaryError instanceof ConnectError);
  assert.equal(unaryError.rawMessage, "server is shutting down");
  assertUnavailable(streamError);
});

test("listen replaces only stale sockets", async (t) => {
  const path = await tempSocket(t);
  const child = await spawnFixtureServer(holdServer, path);
  child.kill("SIGKILL");
  await once(child, "exit");
  const first = createGrpcServer({ services: [] });
  const second = createGrpcServer({ services: [] });
  t.after(() => Promise.all([first.close(), second.close()]));

  await first.listen(path);
  const error = await rejection(second.listen(path), 5000);

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.AlreadyExists);
});

test("listen rejects a regular file", async (t) => {
  const path = await tempSocket(t);
  await writeFile(path, "not a socket");
  const server = createGrpcServer({ services: [] });
  t.after(() => server.close());

  const error = await rejection(server.listen(path), 5000);

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.InvalidArgument);
});

test("stream reset without status fails", async (t) => {
  const path = await tempSocket(t);
  // A server that resets every stream with NO_ERROR and sends nothing.
  const server = http2.createServer();
  server.on("stream", (stream) => {
    stream.on("error", () => {});
    stream.close(http2.constants.NGHTTP2_NO_ERROR);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const transport = createGrpcTransport({ path });
  t.after(async () => {
    await transport.close();
    await new Promise((resolve) => server.close(resolve));
  });

  const error = await rejection(
    createClient(Transfer, transport).transfer({}),
    5000,
  );

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.Internal);
  assert.match(error.rawMessage, /without sending a status/);
});

test("server limits streams per connection", async (t) => {
  const path = await tempSocket(t);
  const server = createGrpcServer({ services: [] });
  await server.listen(path);
  t.after(() => server.close());
  const net = await import("node:net");
  const session = http2.connect("http://localhost", {
    createConnection: () => net.connect(path),
  });
  t.after(() => session.destroy());

  const [settings] = (await once(session, "remoteSettings")) as [
    http2.Settings,
  ];

  assert.equal(settings.maxConcurrentStreams, 1024);
});
