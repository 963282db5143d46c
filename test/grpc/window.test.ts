/**
 * The client's HTTP/2 connection window, read on the server: widened
 * after a PING with grpc-go's window-measurement payload, left at 64 KiB
 * otherwise, and never a cause of a stall against a Node.js server.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { type Any, AnySchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { Streaming } from "../../src/gen/containerd/services/streaming/v1/streaming_pb.js";
import { createGrpcTransport } from "../../src/grpc/index.js";
import { http2WindowBytes } from "../../src/grpc/limits.js";
import { spawnFixtureServer, tempSocket, textAny } from "./harness.js";

const grpcGoPing = Buffer.from([2, 4, 16, 16, 9, 14, 7, 7]);
const wideEchoServer = fileURLToPath(
  new URL("./fixtures/wide-echo-server.js", import.meta.url),
);

interface ServerSetup {
  /** Payload of a PING that the server sends as each connection opens. */
  ping?: Buffer;
}

/**
 * Starts a raw HTTP/2 server with HTTP/2's default settings, as grpc-go
 * announces them, and returns a Streaming client and the server's
 * sessions.
 */
async function startServer(t: TestContext, setup: ServerSetup) {
  const path = await tempSocket(t);
  const server = http2.createServer();
  const sessions: http2.ServerHttp2Session[] = [];
  server.on("session", (session) => {
    session.on("error", () => {});
    sessions.push(session);
    if (setup.ping) {
      session.ping(setup.ping, () => {});
    }
  });
  server.on("stream", (stream) => {
    stream.on("error", () => {});
    stream.respond(
      { ":status": 200, "content-type": "application/grpc" },
      { waitForTrailers: true },
    );
    stream.on("wantTrailers", () =>
      stream.sendTrailers({ "grpc-status": "0" }),
    );
    stream.end();
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));

  const transport = createGrpcTransport({ path });
  t.after(async () => {
    await transport.close();
    await new Promise((resolve) => server.close(resolve));
  });
  return { client: createClient(Streaming, transport), sessions };
}

/**
 * Returns the connection window that the server may fill after two calls
 * in a row, each with an empty response. The client's window update, if
 * any, reaches the server before the second call does.
 */
async function serverSendWindow(
  t: TestContext,
  setup: ServerSetup,
): Promise<number> {
  const { client, sessions } = await startServer(t, setup);
  for (let call = 0; call < 2; call++) {
    for await (const _ of client.stream(one())) {
      assert.fail("the server sends no message");
    }
  }

  assert.equal(sessions.length, 1, "both calls share one connection");
  const window = sessions[0]!.state.remoteWindowSize;
  assert.ok(window !== undefined, "the session reports its window");
  return window;
}

async function* one(): AsyncIterable<Any> {
  yield textAny("ping");
}

test("connection window widened for grpc-go", async (t) => {
  const window = await serverSendWindow(t, { ping: grpcGoPing });
  assert.equal(window, http2WindowBytes);
});

test("connection window kept without a ping", async (t) => {
  const window = await serverSendWindow(t, {});
  assert.equal(window, 65_535);
});

test("connection window kept for another ping", async (t) => {
  const window = await serverSendWindow(t, {
    ping: Buffer.from("abcdefgh"),
  });
  assert.equal(window, 65_535);
});

test("echoes complete against a widened Node.js server", async (t) => {
  // A Node.js server with default settings and a wide window of its own,
  // in another process: 8 or more concurrent echoes stalled for good when
  // the client widened its window against it too.
  const path = await tempSocket(t);
  const child = await spawnFixtureServer(wideEchoServer, path);
  const transport = createGrpcTransport({ path });
  t.after(async () => {
    child.kill("SIGKILL");
    await transport.close();
  });
  const client = createClient(Streaming, transport);
  const streams = 10;
  const messages = 10;
  async function* input(): AsyncIterable<Any> {
    for (let i = 0; i < messages; i++) {
      yield create(AnySchema, {
        typeUrl: "bytes",
        value: new Uint8Array(32 * 1024),
      });
    }
  }

  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("echoes stalled")), 15_000);
  });
  const echoes = Promise.all(
    Array.from({ length: streams }, async () => {
      let received = 0;
      for await (const _ of client.stream(input())) {
        received++;
      }
      return received;
    }),
  );
  echoes.catch(() => {});
  try {
    const counts = await Promise.race([echoes, stalled]);
    assert.deepEqual(counts, Array(streams).fill(messages));
  } finally {
    clearTimeout(timer);
  }
});
