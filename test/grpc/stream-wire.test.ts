/**
 * What the gRPC server's streaming calls put on the wire for requests that
 * our own client never sends: a raw HTTP/2 client plays the peer.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import * as net from "node:net";
import { test } from "node:test";
import { toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Streaming } from "../../src/gen/containerd/services/streaming/v1/streaming_pb.js";
import { createServiceSpec } from "../../src/grpc/index.js";
import { anyText, deferred, startPair, textAny } from "./harness.js";

const streamPath = "/containerd.services.streaming.v1.Streaming/Stream";

interface RawReply {
  status: number;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** Sends one request with `headers` and `body` and collects the reply. */
async function rawCall(
  socket: string,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array,
): Promise<RawReply> {
  const session = http2.connect("http://localhost", {
    createConnection: () => net.connect(socket),
  });
  try {
    const stream = session.request({
      ":method": "POST",
      ":path": streamPath,
      te: "trailers",
      ...headers,
    });
    stream.end(body);
    const chunks: Buffer[] = [];
    let trailers: http2.IncomingHttpHeaders = {};
    const [responseHeaders] = await Promise.all([
      new Promise<http2.IncomingHttpHeaders>((resolve) =>
        stream.once("response", resolve),
      ),
      new Promise<void>((resolve, reject) => {
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.on("trailers", (received) => {
          trailers = received;
        });
        stream.once("end", resolve);
        stream.once("error", reject);
      }),
    ]);
    return {
      status: Number(responseHeaders[":status"]),
      headers: responseHeaders,
      trailers,
      body: Buffer.concat(chunks),
    };
  } finally {
    session.close();
  }
}

/** Returns `message` framed as one uncompressed gRPC message. */
function framed(message: Uint8Array): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

function echoServer() {
  return createServiceSpec(Streaming, {
    async *stream(requests) {
      for await (const request of requests) {
        yield request;
      }
    },
  });
}

test("stream with JSON content type gets 415", async (t) => {
  const { path } = await startPair(t, { services: [echoServer()] });

  const reply = await rawCall(
    path,
    { "content-type": "application/grpc+json" },
    new Uint8Array(0),
  );

  assert.equal(reply.status, 415);
  assert.match(reply.body.toString(), /application\/grpc\+json/);
});

test("stream with gzip messages is unimplemented", async (t) => {
  const { path } = await startPair(t, { services: [echoServer()] });

  const reply = await rawCall(
    path,
    { "content-type": "application/grpc", "grpc-encoding": "gzip" },
    new Uint8Array(0),
  );

  assert.equal(reply.status, 200);
  assert.equal(reply.trailers["grpc-status"], String(Code.Unimplemented));
  assert.match(
    decodeURIComponent(String(reply.trailers["grpc-message"])),
    /gzip/,
  );
});

test("stream echo on the wire", async (t) => {
  const { path } = await startPair(t, { services: [echoServer()] });
  const message = toBinary(AnySchema, textAny("hello"));

  const reply = await rawCall(
    path,
    { "content-type": "application/grpc" },
    framed(message),
  );

  assert.equal(reply.status, 200);
  assert.equal(reply.headers["content-type"], "application/grpc+proto");
  assert.deepEqual(reply.body, framed(message));
  assert.equal(reply.trailers["grpc-status"], "0");
});

test("stream request cut inside a message", async (t) => {
  const { path } = await startPair(t, { services: [echoServer()] });
  const whole = framed(toBinary(AnySchema, textAny("hello")));

  const reply = await rawCall(
    path,
    { "content-type": "application/grpc" },
    whole.subarray(0, whole.length - 2),
  );

  assert.equal(reply.trailers["grpc-status"], String(Code.InvalidArgument));
  assert.match(
    decodeURIComponent(String(reply.trailers["grpc-message"])),
    /ended inside a message/,
  );
});

test("stream request with a compressed flag", async (t) => {
  const { path } = await startPair(t, { services: [echoServer()] });
  const body = framed(toBinary(AnySchema, textAny("hello")));
  body[0] = 1;

  const reply = await rawCall(
    path,
    { "content-type": "application/grpc" },
    body,
  );

  assert.equal(reply.trailers["grpc-status"], String(Code.Internal));
  assert.match(
    decodeURIComponent(String(reply.trailers["grpc-message"])),
    /compression was not negotiated/,
  );
});

test("stream deadline ends a waiting handler", async (t) => {
  const handlerAborted = deferred<unknown>();
  const { path } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream(_requests, context) {
          await new Promise<void>((resolve) =>
            context.signal.addEventListener("abort", () => resolve()),
          );
          handlerAborted.resolve(context.signal.reason);
        },
      }),
    ],
  });

  // The raw client sets no timer of its own, so the status comes from the
  // server's deadline.
  const reply = await rawCall(
    path,
    { "content-type": "application/grpc", "grpc-timeout": "100m" },
    new Uint8Array(0),
  );

  assert.equal(reply.trailers["grpc-status"], String(Code.DeadlineExceeded));
  const reason = await handlerAborted.promise;
  assert.ok(reason instanceof ConnectError);
  assert.equal(reason.code, Code.DeadlineExceeded);
});

test("stream headers and trailers from the handler", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream(requests, context) {
          context.responseHeader.set("x-first", "one");
          context.responseTrailer.set("x-last", "two");
          for await (const request of requests) {
            yield request;
          }
        },
      }),
    ],
  });
  let header: Headers | undefined;
  let trailer: Headers | undefined;
  const client = createClient(Streaming, transport);
  const echoed: string[] = [];

  async function* one() {
    yield textAny("ping");
  }
  for await (const message of client.stream(one(), {
    onHeader: (value) => {
      header = value;
    },
    onTrailer: (value) => {
      trailer = value;
    },
  })) {
    echoed.push(anyText(message));
  }

  assert.deepEqual(echoed, ["ping"]);
  assert.equal(header?.get("x-first"), "one");
  assert.equal(trailer?.get("x-last"), "two");
});

test("stream reset between two messages is not a clean end", async (t) => {
  const received = deferred();
  const outcome = deferred<string>();
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream(requests) {
          try {
            for await (const _request of requests) {
              received.resolve();
            }
            outcome.resolve("input ended cleanly");
          } catch (error) {
            outcome.resolve(`input failed: ${ConnectError.from(error).code}`);
          }
          yield* [];
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);
  const controller = new AbortController();

  // Our client cancels with RST_STREAM alone, as grpc-go clients do: no
  // END_STREAM comes before it.
  async function* oneThenWait() {
    yield textAny("first");
    await received.promise;
    controller.abort();
    await new Promise(() => {});
  }
  const call = (async () => {
    for await (const _ of client.stream(oneThenWait(), {
      signal: controller.signal,
    })) {
      // The handler sends nothing.
    }
  })();

  await assert.rejects(call, (error) => {
    assert.equal(ConnectError.from(error).code, Code.Canceled);
    return true;
  });
  assert.equal(await outcome.promise, `input failed: ${Code.Canceled}`);
});
