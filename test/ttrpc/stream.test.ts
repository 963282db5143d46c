import assert from "node:assert/strict";
import { test } from "node:test";
import type { Any } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  createClient,
  createServiceImplSpec,
  type HandlerContext,
} from "@connectrpc/connect";
import { Streaming } from "../../src/gen/containerd/services/streaming/v1/streaming_pb.js";
import { Counting, type CountingClient } from "./counting-service.js";
import {
  anyText,
  collect,
  deferred,
  rejection,
  sleep,
  startPair,
  textAny,
  texts,
} from "./harness.js";

test("bidi echo ends after client half-close", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      createServiceImplSpec<typeof Streaming>(Streaming, {
        async *stream(requests) {
          for await (const request of requests) {
            yield textAny(`echo:${anyText(request)}`);
          }
          yield textAny("done");
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);

  const received = await collect(client.stream(texts("a", "b", "c")));

  assert.deepEqual(received, ["echo:a", "echo:b", "echo:c", "done"]);
});

test("bidi messages interleave both ways", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      createServiceImplSpec<typeof Streaming>(Streaming, {
        async *stream(requests) {
          for await (const request of requests) {
            yield textAny(`${Number(anyText(request)) + 1}`);
          }
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);

  // Each request goes out only after the reply to the previous one came
  // back, so the call deadlocks unless both directions are open at once.
  const replies: string[] = [];
  let nextReply = deferred<string>();
  async function* pingPong(): AsyncIterable<Any> {
    let value = "0";
    for (let round = 0; round < 5; round++) {
      yield textAny(value);
      value = await nextReply.promise;
      nextReply = deferred<string>();
    }
  }
  for await (const reply of client.stream(pingPong())) {
    replies.push(anyText(reply));
    nextReply.resolve(anyText(reply));
  }

  assert.deepEqual(replies, ["1", "2", "3", "4", "5"]);
});

test("server sends after client half-close", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      createServiceImplSpec<typeof Streaming>(Streaming, {
        async *stream(requests) {
          const seen: string[] = [];
          for await (const request of requests) {
            seen.push(anyText(request));
          }
          // The client's side is closed now; the server's is still open.
          await sleep(20);
          for (const text of seen.reverse()) {
            yield textAny(text);
          }
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);

  const received = await collect(client.stream(texts("x", "y", "z")));

  assert.deepEqual(received, ["z", "y", "x"]);
});

test("server end stops the client", async (t) => {
  const inputStopped = deferred();
  const { transport } = await startPair(t, {
    services: [
      createServiceImplSpec<typeof Streaming>(Streaming, {
        async *stream(requests) {
          for await (const request of requests) {
            yield textAny(`only:${anyText(request)}`);
            return;
          }
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);
  // The client never half-closes: the server's end must still end the
  // call and stop the input.
  async function* endless(): AsyncIterable<Any> {
    try {
      for (let i = 0; ; i++) {
        yield textAny(`m${i}`);
        await sleep(5);
      }
    } finally {
      inputStopped.resolve();
    }
  }

  const received = await collect(client.stream(endless()));
  await inputStopped.promise;

  assert.deepEqual(received, ["only:m0"]);
});

test("server error follows earlier messages", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      createServiceImplSpec<typeof Streaming>(Streaming, {
        async *stream() {
          yield textAny("one");
          yield textAny("two");
          throw new ConnectError("stream s: not found", Code.NotFound);
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);
  const received: string[] = [];

  const error = await rejection(
    (async () => {
      for await (const message of client.stream(texts("x"))) {
        received.push(anyText(message));
      }
    })(),
  );

  assert.deepEqual(received, ["one", "two"]);
  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.NotFound);
  assert.equal(error.rawMessage, "stream s: not found");
});

test("stream abort ends handler input", async (t) => {
  const handlerInputEnded = deferred<string[]>();
  const { transport } = await startPair(t, {
    services: [
      createServiceImplSpec<typeof Streaming>(Streaming, {
        // biome-ignore lint/correctness/useYield: this handler only reads.
        async *stream(requests) {
          const seen: string[] = [];
          for await (const request of requests) {
            seen.push(anyText(request));
          }
          handlerInputEnded.resolve(seen);
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);
  const controller = new AbortController();
  async function* oneThenWait(): AsyncIterable<Any> {
    yield textAny("first");
    await new Promise(() => {});
  }

  const reading = collect(
    client.stream(oneThenWait(), { signal: controller.signal }),
  );
  await sleep(50);
  controller.abort();
  const error = await rejection(reading, 500);

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.Canceled);
  // Without a cancel frame, the abort reaches the server as CloseSend.
  assert.deepEqual(await handlerInputEnded.promise, ["first"]);
});

test("stream deadline fails both ends", async (t) => {
  const handlerReason = deferred<unknown>();
  const { transport } = await startPair(t, {
    services: [
      createServiceImplSpec<typeof Streaming>(Streaming, {
        async *stream(_requests, context: HandlerContext) {
          context.signal.addEventListener("abort", () =>
            handlerReason.resolve(context.signal.reason),
          );
          yield textAny("started");
          await new Promise(() => {});
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);
  const received: string[] = [];

  const error = await rejection(
    (async () => {
      const input = (async function* () {
        await new Promise(() => {});
      })();
      for await (const message of client.stream(input, { timeoutMs: 150 })) {
        received.push(anyText(message));
      }
    })(),
  );

  assert.deepEqual(received, ["started"]);
  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.DeadlineExceeded);
  const reason = await handlerReason.promise;
  assert.ok(reason instanceof ConnectError);
  assert.equal(reason.code, Code.DeadlineExceeded);
});

test("unknown stream method is unimplemented", async (t) => {
  const { transport } = await startPair(t, { services: [] });
  const client = createClient(Streaming, transport);

  const error = await rejection(collect(client.stream(texts("a"))));

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.Unimplemented);
  assert.equal(
    error.rawMessage,
    "service containerd.services.streaming.v1.Streaming",
  );
});

test("stream metadata reaches handler", async (t) => {
  let namespace: string | null = null;
  const { transport } = await startPair(t, {
    services: [
      createServiceImplSpec<typeof Streaming>(Streaming, {
        async *stream(requests, context: HandlerContext) {
          namespace = context.requestHeader.get("containerd-namespace-ttrpc");
          for await (const request of requests) {
            yield request;
          }
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);

  await collect(
    client.stream(texts("a"), {
      headers: { "containerd-namespace-ttrpc": "demo" },
    }),
  );

  assert.equal(namespace, "demo");
});

test("client streaming returns one response", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      [
        Counting,
        {
          async upload(requests: AsyncIterable<Any>) {
            let count = 0;
            for await (const _ of requests) {
              count += 1;
            }
            return textAny(`${count}`);
          },
        },
      ],
    ],
  });
  const client = createClient(Counting, transport) as unknown as CountingClient;

  const reply = await client.upload(texts("a", "b", "c", "d"));

  assert.equal(anyText(reply), "4");
});

test("server streaming delivers every message", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      [
        Counting,
        {
          async *download(request: Any) {
            const total = Number(anyText(request));
            for (let i = 0; i < total; i++) {
              yield textAny(`item${i}`);
            }
          },
        },
      ],
    ],
  });
  const client = createClient(Counting, transport) as unknown as CountingClient;

  const received = await collect(client.download(textAny("3")));

  assert.deepEqual(received, ["item0", "item1", "item2"]);
});
