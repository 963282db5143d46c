/**
 * The client's HTTP/2 connection window, as its server sees it: widened
 * against a server with HTTP/2's default stream window (grpc-go), left at
 * 64 KiB against one with a wider window (this package's server).
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { type TestContext, test } from "node:test";
import type { Any } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { Streaming } from "../../src/gen/containerd/services/streaming/v1/streaming_pb.js";
import { createGrpcTransport } from "../../src/grpc/index.js";
import { http2WindowBytes } from "../../src/grpc/limits.js";
import { tempSocket, textAny } from "./harness.js";

/**
 * Returns the connection window that the server may fill after two calls
 * in a row, each answered with no message. The client's window update, if
 * any, reaches the server before the second call does.
 */
async function serverSendWindow(
  t: TestContext,
  settings: http2.Settings,
): Promise<number> {
  const path = await tempSocket(t);
  const server = http2.createServer({ settings });

  const sessions: http2.ServerHttp2Session[] = [];
  server.on("session", (session) => {
    session.on("error", () => {});
    sessions.push(session);
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
  const client = createClient(Streaming, transport);
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
  const window = await serverSendWindow(t, {});
  assert.equal(window, http2WindowBytes);
});

test("connection window kept for own server", async (t) => {
  const window = await serverSendWindow(t, {
    initialWindowSize: http2WindowBytes,
  });
  assert.equal(window, 65_535);
});
