/**
 * A client pointed at a socket of the other protocol, or at one that
 * sends nothing, must fail with a message that names the likely
 * mistake, not wait for a keepalive.
 */
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { test } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Transfer } from "../../src/gen/containerd/services/transfer/v1/transfer_pb.js";
import { createGrpcServer, createGrpcTransport } from "../../src/grpc/index.js";
import {
  createTtrpcServer,
  createTtrpcTransport,
} from "../../src/ttrpc/index.js";
import { tempSocket } from "./harness.js";

async function transferError(
  path: string,
  ttrpcPeerHint?: string,
): Promise<ConnectError> {
  const transport = createGrpcTransport({
    path,
    connectTimeoutMs: 300,
    ttrpcPeerHint,
  });
  try {
    await createClient(Transfer, transport).transfer({});
  } catch (error) {
    assert.ok(error instanceof ConnectError, `got ${error}`);
    return error;
  } finally {
    await transport.close();
  }
  assert.fail("the call succeeded");
}

test("gRPC client on ttrpc server", async (t) => {
  const path = await tempSocket(t);
  const server = createTtrpcServer({ services: [] });
  await server.listen(path);
  t.after(() => server.close());

  const error = await transferError(path);

  assert.equal(error.code, Code.Unavailable);
  assert.match(error.rawMessage, /without an HTTP\/2 response/);
  assert.match(error.rawMessage, /--protocol ttrpc/);
});

test("gRPC client on ttrpc server with a hint of its own", async (t) => {
  const path = await tempSocket(t);
  const server = createTtrpcServer({ services: [] });
  await server.listen(path);
  t.after(() => server.close());

  const error = await transferError(path, "Give the gRPC socket instead");

  assert.match(
    error.rawMessage,
    /is it a ttrpc socket\? Give the gRPC socket instead/,
  );
  assert.doesNotMatch(error.rawMessage, /--protocol/);
});

test("gRPC client on silent socket", async (t) => {
  const path = await tempSocket(t);
  const sockets: Socket[] = [];
  const silent = createServer((socket) => {
    sockets.push(socket);
  });
  await new Promise<void>((resolve) => silent.listen(path, resolve));
  t.after(async () => {
    for (const socket of sockets) {
      socket.destroy();
    }
    await new Promise((resolve) => silent.close(resolve));
  });

  const error = await transferError(path);

  assert.equal(error.code, Code.Unavailable);
  assert.match(error.rawMessage, /no HTTP\/2 response within 300 ms/);
});

test("ttrpc client on gRPC server", async (t) => {
  const path = await tempSocket(t);
  const server = createGrpcServer({ services: [] });
  await server.listen(path);
  t.after(() => server.close());
  const transport = createTtrpcTransport({ path });
  t.after(() => transport.close());

  const error = await createClient(Transfer, transport)
    .transfer({})
    .then(
      () => assert.fail("the call succeeded"),
      (failure: unknown) => failure,
    );

  assert.ok(error instanceof ConnectError, `got ${error}`);
  assert.equal(error.code, Code.Unavailable);
  assert.match(error.rawMessage, /--protocol grpc/);
});
