/**
 * Hostile servers, hostile clients and careless callers against the gRPC
 * streaming calls, on a temporary unix socket.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import * as net from "node:net";
import { type TestContext, test } from "node:test";
import { toBinary } from "@bufbuild/protobuf";
import { type Any, AnySchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Streaming } from "../../src/gen/containerd/services/streaming/v1/streaming_pb.js";
import {
  createGrpcServer,
  createGrpcTransport,
  createServiceSpec,
  type GrpcTransportOptions,
} from "../../src/grpc/index.js";
import {
  anyText,
  deferred,
  rejection,
  sleep,
  startPair,
  tempSocket,
  textAny,
} from "./harness.js";

const streamPath = "/containerd.services.streaming.v1.Streaming/Stream";

/** Returns `message` framed as one uncompressed gRPC message. */
function framed(message: Uint8Array, flags = 0): Buffer {
  const prefix = Buffer.alloc(5);
  prefix[0] = flags;
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

const helloFrame = framed(toBinary(AnySchema, textAny("hello")));

/**
 * Starts a raw HTTP/2 server on a temporary socket that handles every
 * stream with `onStream`, and returns a client connected to it.
 */
async function hostileServer(
  t: TestContext,
  onStream: (stream: http2.ServerHttp2Stream) => void,
  clientOptions: Partial<GrpcTransportOptions> = {},
  setUp: (server: http2.Http2Server) => void = () => {},
) {
  const path = await tempSocket(t);
  const server = http2.createServer();
  setUp(server);
  server.on("stream", (stream) => {
    stream.on("error", () => {});
    onStream(stream);
  });
  server.on("session", (session) => session.on("error", () => {}));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const transport = createGrpcTransport({ path, ...clientOptions });
  t.after(async () => {
    await transport.close();
    await new Promise((resolve) => server.close(resolve));
  });
  return createClient(Streaming, transport);
}

async function* one(): AsyncIterable<Any> {
  yield textAny("ping");
}

/** Yields one message, then waits forever without ending the input. */
async function* endless(): AsyncIterable<Any> {
  yield textAny("first");
  await new Promise(() => {});
}

/** Reads every response message; resolves with their texts. */
async function collect(messages: AsyncIterable<Any>): Promise<string[]> {
  const received: string[] = [];
  for await (const message of messages) {
    received.push(anyText(message));
  }
  return received;
}

/** Resolves with what `promise` settles to, or "pending" after `ms`. */
async function within<T>(promise: Promise<T>, ms: number) {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"pending">((resolve) => {
    timer = setTimeout(() => resolve("pending"), ms);
  });
  try {
    return await Promise.race([
      promise.then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

type Outcome<T> = { value?: T; error?: unknown };

/** Fails when `outcome` is still pending; returns it settled. */
function settled<T>(
  outcome: "pending" | { value: T } | { error: unknown },
  failureMessage: string,
): Outcome<T> {
  assert.notEqual(outcome, "pending", failureMessage);
  return outcome as Outcome<T>;
}

function assertCode(error: unknown, code: Code, pattern?: RegExp): void {
  assert.ok(error instanceof ConnectError, `not a ConnectError: ${error}`);
  assert.equal(
    error.code,
    code,
    `got ${Code[error.code]} (${error.rawMessage}), want ${Code[code]}`,
  );
  if (pattern) {
    assert.match(error.rawMessage, pattern);
  }
}

// ---------------------------------------------------------------------
// Client side: hostile servers.
// ---------------------------------------------------------------------

test("reset inside a message fails", async (t) => {
  const client = await hostileServer(t, (stream) => {
    stream.respond({ ":status": 200, "content-type": "application/grpc" });
    stream.write(helloFrame.subarray(0, 7), () =>
      stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR),
    );
  });

  const error = await rejection(collect(client.stream(one())), 3000);

  assertCode(error, Code.Internal);
});

test("response ends inside a message", async (t) => {
  const client = await hostileServer(t, (stream) => {
    stream.respond(
      { ":status": 200, "content-type": "application/grpc" },
      { waitForTrailers: true },
    );
    stream.on("wantTrailers", () =>
      stream.sendTrailers({ "grpc-status": "0" }),
    );
    stream.end(helloFrame.subarray(0, 7));
  });

  const error = await rejection(collect(client.stream(one())), 3000);

  assertCode(error, Code.Internal, /ended inside a message/);
});

test("trailers-only error keeps its code", async (t) => {
  const client = await hostileServer(t, (stream) => {
    stream.respond(
      {
        ":status": 200,
        "content-type": "application/grpc",
        "grpc-status": String(Code.NotFound),
        "grpc-message": "no such stream",
      },
      { endStream: true },
    );
  });

  const error = await rejection(collect(client.stream(one())), 3000);

  assertCode(error, Code.NotFound, /no such stream/);
});

test("trailers-only success ends cleanly", async (t) => {
  const client = await hostileServer(t, (stream) => {
    stream.respond(
      {
        ":status": 200,
        "content-type": "application/grpc",
        "grpc-status": "0",
      },
      { endStream: true },
    );
  });

  const received = await within(collect(client.stream(one())), 3000);

  assert.deepEqual(received, { value: [] });
});

test("missing grpc-status fails internal", async (t) => {
  const client = await hostileServer(t, (stream) => {
    stream.respond({ ":status": 200, "content-type": "application/grpc" });
    stream.end(helloFrame);
  });
  const received: string[] = [];

  const error = await rejection(
    (async () => {
      for await (const message of client.stream(one())) {
        received.push(anyText(message));
      }
    })(),
    3000,
  );

  assert.deepEqual(received, ["hello"]);
  assertCode(error, Code.Internal);
});

test("HTTP 503 gives unavailable", async (t) => {
  const client = await hostileServer(t, (stream) => {
    stream.respond({ ":status": 503, "content-type": "text/plain" });
    stream.end("busy");
  });

  const error = await rejection(collect(client.stream(one())), 3000);

  assertCode(error, Code.Unavailable);
});

test("HTML content type is rejected", async (t) => {
  const client = await hostileServer(t, (stream) => {
    stream.respond({ ":status": 200, "content-type": "text/html" });
    stream.end("<html></html>");
  });

  const error = await rejection(collect(client.stream(one())), 3000);

  assert.ok(error instanceof ConnectError);
  assert.notEqual(error.code, Code.Canceled);
});

test("oversized response message rejected", async (t) => {
  let serverSawClose = false;
  const client = await hostileServer(
    t,
    (stream) => {
      stream.on("close", () => {
        serverSawClose = true;
      });
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      // Only the prefix claims 1 MiB; the body never comes.
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(1024 * 1024, 1);
      stream.write(prefix);
    },
    { maxMessageBytes: 1024 },
  );

  const error = await rejection(collect(client.stream(one())), 3000);

  assertCode(error, Code.ResourceExhausted, /larger than the limit/);
  await sleep(200);
  assert.ok(serverSawClose, "the client left the stream open");
});

test("compressed response flag rejected", async (t) => {
  const client = await hostileServer(t, (stream) => {
    stream.respond({ ":status": 200, "content-type": "application/grpc" });
    stream.write(framed(toBinary(AnySchema, textAny("x")), 1));
  });

  const error = await rejection(collect(client.stream(one())), 3000);

  assertCode(error, Code.Internal, /compression/);
});

test("garbage response message rejected", async (t) => {
  const client = await hostileServer(t, (stream) => {
    stream.respond({ ":status": 200, "content-type": "application/grpc" });
    stream.write(framed(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])));
  });

  const error = await rejection(collect(client.stream(one())), 3000);

  assert.ok(error instanceof ConnectError, String(error));
});

test("server silent before headers, abort", async (t) => {
  const client = await hostileServer(t, () => {});
  const controller = new AbortController();
  const call = collect(client.stream(one(), { signal: controller.signal }));
  await sleep(100);
  controller.abort();

  const error = await rejection(call, 2000);

  assertCode(error, Code.Canceled);
});

test("deadline before response headers", async (t) => {
  const client = await hostileServer(t, () => {});

  const started = Date.now();
  const error = await rejection(
    collect(client.stream(one(), { timeoutMs: 200 })),
    3000,
  );

  assertCode(error, Code.DeadlineExceeded);
  assert.ok(Date.now() - started < 1500);
});

test("abort while connecting settles promptly", async (t) => {
  // A socket that accepts and never responds keeps the connection up
  // until connectTimeoutMs. An aborted call must not wait for it.
  const path = await tempSocket(t);
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => silent.listen(path, resolve));
  const transport = createGrpcTransport({ path, connectTimeoutMs: 4000 });
  t.after(async () => {
    await transport.close();
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });
  const client = createClient(Streaming, transport);
  const controller = new AbortController();
  const call = collect(client.stream(one(), { signal: controller.signal }));
  await sleep(100);
  controller.abort();

  const outcome = await within(call, 1500);

  assertCode(
    settled(outcome, "aborted call still pending").error,
    Code.Canceled,
  );
});

test("deadline while connecting settles promptly", async (t) => {
  const path = await tempSocket(t);
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => silent.listen(path, resolve));
  const transport = createGrpcTransport({ path, connectTimeoutMs: 4000 });
  t.after(async () => {
    await transport.close();
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });
  const client = createClient(Streaming, transport);

  const outcome = await within(
    collect(client.stream(one(), { timeoutMs: 200 })),
    1500,
  );

  assertCode(
    settled(outcome, "call past its deadline still pending").error,
    Code.DeadlineExceeded,
  );
});

test("server reset while client writes", async (t) => {
  const client = await hostileServer(t, (stream) => {
    stream.respond({ ":status": 200, "content-type": "application/grpc" });
    stream.once("data", () =>
      stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR),
    );
  });
  let pulled = 0;
  async function* lots(): AsyncIterable<Any> {
    for (let i = 0; i < 2000; i++) {
      pulled++;
      yield {
        $typeName: "google.protobuf.Any",
        typeUrl: "x",
        value: new Uint8Array(64 * 1024),
      };
    }
  }

  const error = await rejection(collect(client.stream(lots())), 3000);

  assertCode(error, Code.Internal);
  assert.ok(pulled < 2000, `pulled ${pulled} messages after the reset`);
});

test("server RST NO_ERROR after headers", async (t) => {
  const client = await hostileServer(t, (stream) => {
    stream.respond({ ":status": 200, "content-type": "application/grpc" });
    stream.write(helloFrame, () =>
      stream.close(http2.constants.NGHTTP2_NO_ERROR),
    );
  });

  const error = await rejection(collect(client.stream(one())), 3000);

  assertCode(error, Code.Internal);
});

test("server drops socket mid-stream", async (t) => {
  const sockets: net.Socket[] = [];
  const client = await hostileServer(
    t,
    (stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      stream.write(helloFrame, () => {
        // As if the server process died: the socket just closes.
        setTimeout(() => {
          for (const socket of sockets) socket.destroy();
        }, 50);
      });
    },
    {},
    (server) =>
      server.on("connection", (socket: net.Socket) => sockets.push(socket)),
  );
  const received: string[] = [];

  const error = await rejection(
    (async () => {
      for await (const message of client.stream(endless())) {
        received.push(anyText(message));
      }
    })(),
    3000,
  );

  assert.deepEqual(received, ["hello"]);
  assertCode(error, Code.Unavailable);
});

// ---------------------------------------------------------------------
// Careless callers, against our own server.
// ---------------------------------------------------------------------

test("abort after first message cancels handler", async (t) => {
  // connect-es's call wrappers do not pass a loop's early exit on to the
  // transport, so a caller stops a call with its AbortSignal.
  const handlerSignal = deferred<unknown>();
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream(_requests, context) {
          context.signal.addEventListener("abort", () =>
            handlerSignal.resolve(context.signal.reason),
          );
          for (let i = 0; i < 1000; i++) {
            yield textAny(`m${i}`);
            await sleep(5);
          }
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);
  const controller = new AbortController();

  const reading = (async () => {
    for await (const message of client.stream(endless(), {
      signal: controller.signal,
    })) {
      assert.equal(anyText(message), "m0");
      controller.abort();
    }
  })();
  await reading.catch(() => {});
  const outcome = await within(handlerSignal.promise, 1000);

  assert.notEqual(outcome, "pending", "handler never saw the cancel");
});

test("server end closes the HTTP/2 stream", async (t) => {
  // The handler ends the call without reading; the client's input never
  // ends. The call is over for both sides, so closing the server must not
  // wait for the grace period.
  const path = await tempSocket(t);
  const server = createGrpcServer({
    services: [
      createServiceSpec(Streaming, {
        async *stream() {
          yield textAny("bye");
        },
      }),
    ],
    closeGraceMs: 3000,
  });
  await server.listen(path);
  const transport = createGrpcTransport({ path });
  t.after(async () => {
    await transport.close();
    await server.close();
  });
  const client = createClient(Streaming, transport);

  assert.deepEqual(await collect(client.stream(endless())), ["bye"]);
  const started = Date.now();
  await server.close();

  assert.ok(
    Date.now() - started < 1000,
    `server close waited ${Date.now() - started} ms for a finished call`,
  );
});

test("sending after server end returns", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream() {
          yield textAny("bye");
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);
  let returned = false;
  let pulled = 0;
  async function* slow(): AsyncIterable<Any> {
    try {
      for (let i = 0; i < 50; i++) {
        pulled++;
        yield textAny(`m${i}`);
        await sleep(20);
      }
    } finally {
      returned = true;
    }
  }

  assert.deepEqual(await collect(client.stream(slow())), ["bye"]);
  await sleep(300);
  assert.ok(returned, "input not returned after the call ended");
  assert.ok(pulled < 10, `pulled ${pulled} inputs after the end`);
});

test("input that throws fails both ends", async (t) => {
  const handlerError = deferred<unknown>();
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream(requests) {
          try {
            for await (const request of requests) {
              yield request;
            }
            handlerError.resolve("clean end");
          } catch (error) {
            handlerError.resolve(error);
            throw error;
          }
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);
  async function* broken(): AsyncIterable<Any> {
    yield textAny("one");
    await sleep(50);
    throw new Error("disk on fire");
  }

  const error = await rejection(collect(client.stream(broken())), 3000);
  const serverSaw = await within(handlerError.promise, 2000);

  assert.ok(error instanceof ConnectError);
  assert.match(error.rawMessage, /disk on fire/);
  const saw = settled(serverSaw, "handler never ended").value;
  assert.ok(
    saw instanceof ConnectError,
    `handler saw ${String(saw)}, not a cancel`,
  );
});

test("handler throws before yielding", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        // biome-ignore lint/correctness/useYield: throws at once on purpose
        async *stream() {
          throw new ConnectError("nope", Code.PermissionDenied);
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);

  const error = await rejection(collect(client.stream(one())), 3000);

  assertCode(error, Code.PermissionDenied, /nope/);
});

test("handler plain error keeps text", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream(requests) {
          for await (const request of requests) {
            yield request;
            throw new TypeError("boom after yield");
          }
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);

  const error = await rejection(collect(client.stream(one())), 3000);

  assert.ok(error instanceof ConnectError);
  assert.match(error.rawMessage, /boom after yield/);
});

test("handler ignoring input stays bounded", async (t) => {
  const handlerDone = deferred<unknown>();
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream(_requests, context) {
          await new Promise<void>((resolve) =>
            context.signal.addEventListener("abort", () => resolve()),
          );
          handlerDone.resolve(context.signal.reason);
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);
  let pulled = 0;
  async function* flood(): AsyncIterable<Any> {
    for (let i = 0; i < 4000; i++) {
      pulled++;
      yield {
        $typeName: "google.protobuf.Any",
        typeUrl: "x",
        value: new Uint8Array(64 * 1024),
      };
    }
  }

  const error = await rejection(
    collect(client.stream(flood(), { timeoutMs: 1500 })),
    5000,
  );
  const reason = await within(handlerDone.promise, 2000);

  assertCode(error, Code.DeadlineExceeded);
  assert.notEqual(reason, "pending");
  // An estimate: the 4 MiB stream window plus 16 decoded messages is
  // about 80 messages of 64 KiB.
  assert.ok(pulled < 400, `client pushed ${pulled} messages of 64 KiB`);
});

test("abort under backpressure settles", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream(_requests, context) {
          await new Promise<void>((resolve) =>
            context.signal.addEventListener("abort", () => resolve()),
          );
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);
  const controller = new AbortController();
  let returned = false;
  async function* flood(): AsyncIterable<Any> {
    try {
      for (let i = 0; i < 4000; i++) {
        yield {
          $typeName: "google.protobuf.Any",
          typeUrl: "x",
          value: new Uint8Array(64 * 1024),
        };
      }
    } finally {
      returned = true;
    }
  }
  const call = collect(client.stream(flood(), { signal: controller.signal }));
  await sleep(300);
  controller.abort();

  const error = await rejection(call, 2000);
  await sleep(100);

  assertCode(error, Code.Canceled);
  assert.ok(returned, "input generator not returned");
});

test("abort while reading settles", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream(_requests, context) {
          yield textAny("first");
          await new Promise<void>((resolve) =>
            context.signal.addEventListener("abort", () => resolve()),
          );
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);
  const controller = new AbortController();
  const received: string[] = [];
  const call = (async () => {
    for await (const message of client.stream(one(), {
      signal: controller.signal,
    })) {
      received.push(anyText(message));
      setTimeout(() => controller.abort(), 50);
    }
  })();

  const error = await rejection(call, 2000);

  assert.deepEqual(received, ["first"]);
  assertCode(error, Code.Canceled);
});

test("many concurrent streams on one connection", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream(requests) {
          for await (const request of requests) {
            yield request;
          }
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);
  async function* texts(prefix: string): AsyncIterable<Any> {
    for (let i = 0; i < 20; i++) {
      yield textAny(`${prefix}-${i}`);
    }
  }

  const results = await within(
    Promise.all(
      Array.from({ length: 150 }, (_, n) =>
        collect(client.stream(texts(`c${n}`))),
      ),
    ),
    10_000,
  );

  const { value, error } = settled(results, "echoes still pending");
  assert.equal(error, undefined);
  for (const [n, received] of (value ?? []).entries()) {
    assert.equal(received.length, 20);
    assert.equal(received[19], `c${n}-19`);
  }
});

test("server close aborts open streams", async (t) => {
  const path = await tempSocket(t);
  const handlerReason = deferred<unknown>();
  const server = createGrpcServer({
    services: [
      createServiceSpec(Streaming, {
        async *stream(_requests, context) {
          yield textAny("open");
          await new Promise<void>((resolve) =>
            context.signal.addEventListener("abort", () => resolve()),
          );
          handlerReason.resolve(context.signal.reason);
        },
      }),
    ],
    closeGraceMs: 200,
  });
  await server.listen(path);
  const transport = createGrpcTransport({ path });
  t.after(async () => {
    await transport.close();
    await server.close();
  });
  const client = createClient(Streaming, transport);
  const received: string[] = [];
  const call = (async () => {
    for await (const message of client.stream(endless())) {
      received.push(anyText(message));
    }
  })();
  await sleep(100);

  const closing = within(server.close(), 3000);
  const error = await rejection(call, 3000);

  assert.deepEqual(received, ["open"]);
  assertCode(error, Code.Unavailable);
  assert.notEqual(await closing, "pending");
  const reason = await handlerReason.promise;
  assertCode(reason, Code.Unavailable);
});

// ---------------------------------------------------------------------
// Server side: hostile raw clients.
// ---------------------------------------------------------------------

interface WritableInternals {
  _writableState?: { ending: boolean };
}

/** Opens a raw HTTP/2 connection to `path`. */
function rawSession(t: TestContext, path: string) {
  const session = http2.connect("http://localhost", {
    createConnection: () => net.connect(path),
  });
  session.on("error", () => {});
  t.after(() => session.destroy());
  return session;
}

test("client reset mid-request cancels handler", async (t) => {
  const handlerError = deferred<unknown>();
  const { path, transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream(requests) {
          try {
            for await (const request of requests) {
              yield request;
            }
            handlerError.resolve("clean end");
          } catch (error) {
            handlerError.resolve(error);
          }
        },
      }),
    ],
  });
  const session = rawSession(t, path);
  const stream = session.request({
    ":method": "POST",
    ":path": streamPath,
    "content-type": "application/grpc",
    te: "trailers",
  });
  stream.on("error", () => {});
  stream.write(helloFrame.subarray(0, 8), () => {
    // RST_STREAM alone, as grpc-go sends it: Node.js's close() would put
    // END_STREAM on the wire first unless the writable side is ending.
    const writable = (stream as unknown as WritableInternals)._writableState;
    if (writable) writable.ending = true;
    stream.close(http2.constants.NGHTTP2_CANCEL);
  });

  const seen = await within(handlerError.promise, 2000);

  assert.notEqual(seen, "pending");
  assertCode((seen as { value: unknown }).value, Code.Canceled);
  // The server still serves.
  const echoed = await collect(
    createClient(Streaming, transport).stream(one()),
  );
  assert.deepEqual(echoed, ["ping"]);
});

test("oversized request prefix rejected early", async (t) => {
  const { path } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream(requests) {
          for await (const request of requests) {
            yield request;
          }
        },
      }),
    ],
    maxMessageBytes: 1024,
  });
  const session = rawSession(t, path);
  const stream = session.request({
    ":method": "POST",
    ":path": streamPath,
    "content-type": "application/grpc",
    te: "trailers",
  });
  stream.on("error", () => {});
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(1 << 30, 1);
  stream.write(prefix);
  const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) =>
    stream.once("trailers", resolve),
  );
  stream.resume();

  const received = await within(trailers, 2000);

  assert.notEqual(received, "pending", "no status for a 1 GiB prefix");
  assert.equal(
    (received as { value: http2.IncomingHttpHeaders }).value["grpc-status"],
    String(Code.ResourceExhausted),
  );
});

test("client closes stream after trailers", async (t) => {
  // The server ends the call with its status while the client's input is
  // still open. The call is over, so the client must end or reset it.
  const serverStreamClosed = deferred();
  const client = await hostileServer(t, (stream) => {
    stream.on("close", () => serverStreamClosed.resolve());
    stream.resume();
    stream.respond(
      { ":status": 200, "content-type": "application/grpc" },
      { waitForTrailers: true },
    );
    stream.on("wantTrailers", () =>
      stream.sendTrailers({ "grpc-status": "0" }),
    );
    stream.end(helloFrame);
  });

  assert.deepEqual(await collect(client.stream(endless())), ["hello"]);
  const closed = await within(serverStreamClosed.promise, 1000);

  assert.notEqual(closed, "pending", "client left the finished stream open");
});

test("server closes stream after status", async (t) => {
  // The client never half-closes. After the status, grpc-go's server
  // resets such a stream with NO_ERROR (writeStatus in http2_server.go).
  const { path } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream() {
          yield textAny("bye");
        },
      }),
    ],
  });
  const session = rawSession(t, path);
  const stream = session.request({
    ":method": "POST",
    ":path": streamPath,
    "content-type": "application/grpc",
    te: "trailers",
  });
  stream.on("error", () => {});
  stream.write(helloFrame);
  stream.resume();
  const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) =>
    stream.once("trailers", resolve),
  );
  const closed = new Promise<void>((resolve) => stream.once("close", resolve));

  assert.notEqual(await within(trailers, 2000), "pending");
  const outcome = await within(closed, 1000);

  assert.notEqual(outcome, "pending", "server left the finished stream open");
});

test("server deadline frees stalled stream", async (t) => {
  // The client sets a deadline and then stops reading. Past the deadline
  // the server must give up the stream even though its status cannot be
  // delivered behind the unread messages.
  const handlerAborted = deferred<unknown>();
  const path = await tempSocket(t);
  const server = createGrpcServer({
    services: [
      createServiceSpec(Streaming, {
        async *stream(_requests, context) {
          context.signal.addEventListener("abort", () =>
            handlerAborted.resolve(context.signal.reason),
          );
          for (let i = 0; i < 200 && !context.signal.aborted; i++) {
            yield {
              $typeName: "google.protobuf.Any",
              typeUrl: "x",
              value: new Uint8Array(256 * 1024),
            } as Any;
          }
        },
      }),
    ],
    closeGraceMs: 3000,
  });
  await server.listen(path);
  t.after(() => server.close());
  const session = rawSession(t, path);
  const stream = session.request({
    ":method": "POST",
    ":path": streamPath,
    "content-type": "application/grpc",
    te: "trailers",
    "grpc-timeout": "200m",
  });
  stream.on("error", () => {});
  // The request is complete, so only the unread response keeps the stream open.
  stream.end(helloFrame);
  stream.pause();

  const reason = await within(handlerAborted.promise, 2000);
  assertCode(
    settled(reason, "handler not aborted").value,
    Code.DeadlineExceeded,
  );
  await sleep(300);
  const started = Date.now();
  await server.close();

  assert.ok(
    Date.now() - started < 1000,
    `server close waited ${Date.now() - started} ms for an expired call`,
  );
});

test("month-long grpc-timeout is honoured", async (t) => {
  // grpc-go sends a 30-day deadline as "2592000S". That is more than
  // setTimeout's 2^31-1 ms, which Node.js turns into 1 ms.
  const { path } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream(requests) {
          for await (const request of requests) {
            await sleep(50);
            yield request;
          }
        },
      }),
    ],
  });
  const session = rawSession(t, path);
  const stream = session.request({
    ":method": "POST",
    ":path": streamPath,
    "content-type": "application/grpc",
    te: "trailers",
    "grpc-timeout": "2592000S",
  });
  stream.on("error", () => {});
  stream.end(helloFrame);
  stream.resume();
  const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) =>
    stream.once("trailers", resolve),
  );

  const received = settled(await within(trailers, 2000), "no status").value;

  assert.equal(
    received?.["grpc-status"],
    "0",
    decodeURIComponent(String(received?.["grpc-message"])),
  );
});

test("month-long client timeout succeeds", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream(requests) {
          for await (const request of requests) {
            await sleep(50);
            yield request;
          }
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);
  const thirtyDaysMs = 30 * 24 * 60 * 60 * 1000;

  const outcome = await within(
    collect(client.stream(one(), { timeoutMs: thirtyDaysMs })),
    2000,
  );

  assert.deepEqual(outcome, { value: ["ping"] });
});

test("refused stream gives unavailable", async (t) => {
  const client = await hostileServer(t, (stream) => {
    stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
  });

  const error = await rejection(collect(client.stream(one())), 3000);

  assertCode(error, Code.Unavailable);
});

test("GOAWAY error gives unavailable", async (t) => {
  const client = await hostileServer(t, (stream) => {
    stream.session?.goaway(http2.constants.NGHTTP2_INTERNAL_ERROR);
  });

  const error = await rejection(collect(client.stream(one())), 3000);

  assertCode(error, Code.Unavailable);
});

test("unknown grpc-status becomes unknown", async (t) => {
  const client = await hostileServer(t, (stream) => {
    stream.respond(
      { ":status": 200, "content-type": "application/grpc" },
      { waitForTrailers: true },
    );
    stream.on("wantTrailers", () =>
      stream.sendTrailers({ "grpc-status": "99", "grpc-message": "odd" }),
    );
    stream.end();
  });

  const error = await rejection(collect(client.stream(one())), 3000);

  assert.ok(error instanceof ConnectError, String(error));
  assert.notEqual(error.code, Code.Canceled);
});

test("abort stops buffered messages", async (t) => {
  // The server sends 20 messages at once; the reader takes one, aborts,
  // and reads on. The messages still queued must not be delivered after
  // the abort.
  const client = await hostileServer(t, (stream) => {
    stream.respond({ ":status": 200, "content-type": "application/grpc" });
    stream.write(Buffer.concat(Array.from({ length: 20 }, () => helloFrame)));
  });
  const controller = new AbortController();
  let afterAbort = 0;

  const error = await rejection(
    (async () => {
      for await (const _ of client.stream(endless(), {
        signal: controller.signal,
      })) {
        if (controller.signal.aborted) {
          afterAbort++;
        }
        controller.abort();
      }
    })(),
    3000,
  );

  assertCode(error, Code.Canceled);
  assert.equal(afterAbort, 0, `${afterAbort} messages after the abort`);
});

test("calm reset gives resource exhausted", async (t) => {
  const client = await hostileServer(t, (stream) => {
    stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
  });

  const error = await rejection(collect(client.stream(one())), 3000);

  assertCode(error, Code.ResourceExhausted);
});

test("interceptor rejection reaches client", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream(requests) {
          yield* requests;
        },
      }),
    ],
    interceptors: [
      () => async () => {
        throw new ConnectError("no token", Code.Unauthenticated);
      },
    ],
  });
  const client = createClient(Streaming, transport);

  const error = await rejection(collect(client.stream(one())), 3000);

  assertCode(error, Code.Unauthenticated, /no token/);
});

test("bad handler header is left out", async (t) => {
  // A handler that sets a header HTTP/2 forbids: the server leaves it out
  // and the call ends as usual instead of leaving the client waiting.
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream(requests, context) {
          context.responseHeader.set("te", "gzip");
          context.responseHeader.set("x-kept", "yes");
          yield* requests;
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);
  let header: Headers | undefined;

  const outcome = await within(
    collect(
      client.stream(one(), {
        onHeader: (value) => {
          header = value;
        },
      }),
    ),
    2000,
  );

  const { value } = settled(outcome, "call never ended") as {
    value: unknown[];
  };
  assert.equal(value.length, 1);
  assert.equal(header?.get("x-kept"), "yes");
  assert.equal(header?.get("te"), null);
});

test("bad handler trailer no crash", async (t) => {
  // Node.js throws from its "wantTrailers" handler for a trailer HTTP/2
  // forbids. Outside the test runner that ends the server process.
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => uncaught.push(error);
  // The test runner's own listener stays; this one only records.
  process.on("uncaughtException", onUncaught);
  t.after(() => process.off("uncaughtException", onUncaught));
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream(requests, context) {
          context.responseTrailer.set("te", "gzip");
          yield* requests;
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);

  const outcome = await within(collect(client.stream(one())), 2000);
  await sleep(100);

  assert.deepEqual(uncaught.map(String), []);
  assert.notEqual(outcome, "pending", "call never ended");
});

test("queued stream abort settles", async (t) => {
  // The server allows one stream at a time and keeps the first open, so the
  // second call waits in the HTTP/2 client's queue when it is aborted.
  const path = await tempSocket(t);
  const server = http2.createServer({ settings: { maxConcurrentStreams: 1 } });
  server.on("session", (session) => session.on("error", () => {}));
  server.on("stream", (stream) => {
    stream.on("error", () => {});
    stream.respond({ ":status": 200, "content-type": "application/grpc" });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const transport = createGrpcTransport({ path });
  t.after(async () => {
    await transport.close();
    await new Promise((resolve) => server.close(resolve));
  });
  const client = createClient(Streaming, transport);
  const first = new AbortController();
  const firstCall = collect(client.stream(endless(), { signal: first.signal }));
  firstCall.catch(() => {});
  await sleep(100);
  const second = new AbortController();
  const secondCall = collect(
    client.stream(endless(), { signal: second.signal }),
  );
  await sleep(100);
  second.abort();

  const secondError = await rejection(secondCall, 1000);
  first.abort();
  const firstError = await rejection(firstCall, 1000);

  assertCode(secondError, Code.Canceled);
  assertCode(firstError, Code.Canceled);
});

test("message at the limit accepted", async (t) => {
  const limit = 1024;
  const value = new Uint8Array(limit);
  const encoded = toBinary(AnySchema, {
    $typeName: "google.protobuf.Any",
    typeUrl: "x",
    value: value.subarray(0, limit - 6),
  });
  const client = await hostileServer(
    t,
    (stream) => {
      stream.respond(
        { ":status": 200, "content-type": "application/grpc" },
        { waitForTrailers: true },
      );
      stream.on("wantTrailers", () =>
        stream.sendTrailers({ "grpc-status": "0" }),
      );
      stream.end(framed(encoded));
    },
    { maxMessageBytes: limit },
  );

  const outcome = await within(collect(client.stream(one())), 2000);

  assert.equal(encoded.length, limit);
  assert.equal(settled(outcome, "call never ended").error, undefined);
});

test("client writing after server end succeeds", async (t) => {
  // The server sends many messages and its status, then resets the stream
  // as grpc-go does when the client has not half-closed. The client reads
  // slowly and sends a message for each one it reads, as a receiver sends
  // window updates, so it still writes after Node.js has ended the
  // stream's writable side and before the response's end is read.
  const client = await hostileServer(t, (stream) => {
    stream.respond(
      { ":status": 200, "content-type": "application/grpc" },
      { waitForTrailers: true },
    );
    stream.on("wantTrailers", () => {
      stream.sendTrailers({ "grpc-status": "0" });
      setImmediate(() => stream.close(http2.constants.NGHTTP2_NO_ERROR));
    });
    stream.once("data", () => {
      const frames = Array.from({ length: 200 }, () => helloFrame);
      stream.end(Buffer.concat(frames));
    });
  });

  for (let run = 0; run < 5; run++) {
    let wake: (() => void) | undefined;
    let ended = false;
    async function* replies(): AsyncIterable<Any> {
      yield textAny("start");
      while (!ended) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        yield textAny("update");
      }
    }
    let received = 0;
    for await (const _message of client.stream(replies())) {
      received++;
      await new Promise((resolve) => setImmediate(resolve));
      wake?.();
    }
    ended = true;
    wake?.();
    assert.equal(received, 200, `run ${run}`);
  }
});
