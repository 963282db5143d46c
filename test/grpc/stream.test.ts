import assert from "node:assert/strict";
import { test } from "node:test";
import type { Any } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Streaming } from "../../src/gen/containerd/services/streaming/v1/streaming_pb.js";
import { createServiceSpec } from "../../src/grpc/index.js";
import {
  anyText,
  deferred,
  rejection,
  sleep,
  startPair,
  textAny,
} from "./harness.js";

async function* texts(...values: string[]): AsyncIterable<Any> {
  for (const value of values) {
    yield textAny(value);
  }
}

async function collect(messages: AsyncIterable<Any>): Promise<string[]> {
  const received: string[] = [];
  for await (const message of messages) {
    received.push(anyText(message));
  }
  return received;
}

test("bidi echo ends after client half-close", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
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
      createServiceSpec(Streaming, {
        async *stream(requests) {
          for await (const request of requests) {
            yield textAny(`${Number(anyText(request)) + 1}`);
          }
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);

  // Each request is sent only after the reply to the previous one came
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

test("bidi server end stops the client", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
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
  // The client never half-closes. connect-es stops pulling requests when
  // the response ends, but cannot finish a generator that is waiting.
  async function* endless(): AsyncIterable<Any> {
    yield textAny("first");
    await new Promise(() => {});
  }
  const received = await collect(client.stream(endless()));

  assert.deepEqual(received, ["only:first"]);
});

test("bidi server error follows messages", async (t) => {
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
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
    5000,
  );

  assert.deepEqual(received, ["one", "two"]);
  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.NotFound);
  assert.equal(error.rawMessage, "stream s: not found");
});

test("bidi abort cancels both ends", async (t) => {
  const handlerError = deferred<unknown>();
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream(requests) {
          try {
            for await (const request of requests) {
              yield request;
            }
          } catch (error) {
            handlerError.resolve(error);
            throw error;
          }
          handlerError.resolve("requests ended like a half-close");
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);
  const controller = new AbortController();
  const received: string[] = [];

  async function* oneThenWait(): AsyncIterable<Any> {
    yield textAny("hello");
    await new Promise(() => {});
  }
  const error = await rejection(
    (async () => {
      const responses = client.stream(oneThenWait(), {
        signal: controller.signal,
      });
      for await (const message of responses) {
        received.push(anyText(message));
        controller.abort();
      }
    })(),
    5000,
  );
  // The server must not read a cancel as the end of the client's data.
  const serverError = await handlerError.promise;

  assert.deepEqual(received, ["hello"]);
  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.Canceled);
  assert.ok(serverError instanceof ConnectError, String(serverError));
  assert.equal(serverError.code, Code.Canceled);
});

test("bidi large messages arrive whole", async (t) => {
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
  const sizes = [0, 1, 65_535, 65_536, 1 << 20, 4 << 20];
  const payloads = sizes.map((size) =>
    Uint8Array.from({ length: size }, (_, i) => (i * 31 + size) & 0xff),
  );

  async function* requests(): AsyncIterable<Any> {
    for (const value of payloads) {
      yield { ...textAny(""), value };
    }
  }
  const echoed: Uint8Array[] = [];
  for await (const message of client.stream(requests())) {
    echoed.push(message.value);
  }

  assert.equal(echoed.length, payloads.length);
  for (const [index, payload] of payloads.entries()) {
    assert.equal(echoed[index]!.length, payload.length, `size ${sizes[index]}`);
    assert.deepEqual(echoed[index], payload, `size ${sizes[index]}`);
  }
});

test("bidi abort under backpressure ends handler", async (t) => {
  const handlerFinished = deferred();
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream() {
          try {
            // Far more than the HTTP/2 window, so writes wait for drain.
            const value = new Uint8Array(1 << 20);
            for (;;) {
              yield { ...textAny(""), value };
            }
          } finally {
            handlerFinished.resolve();
          }
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);
  const controller = new AbortController();

  async function* waitForever(): AsyncIterable<Any> {
    await new Promise(() => {});
  }
  const responses = client.stream(waitForever(), {
    signal: controller.signal,
  });
  const iterator = responses[Symbol.asyncIterator]();
  await iterator.next();
  await sleep(100);
  controller.abort();
  const finished = await Promise.race([
    handlerFinished.promise.then(() => true),
    sleep(2000).then(() => false),
  ]);

  assert.ok(finished, "handler still suspended 2 s after the client reset");
});

test("stream messages over the client's limit fail both ways", async (t) => {
  const { transport } = await startPair(
    t,
    {
      services: [
        createServiceSpec(Streaming, {
          async *stream(requests) {
            for await (const request of requests) {
              yield { ...request, value: new Uint8Array(4096) };
            }
          },
        }),
      ],
    },
    { maxMessageBytes: 1024 },
  );
  const client = createClient(Streaming, transport);

  const tooLarge = async function* (): AsyncIterable<Any> {
    yield { ...textAny(""), value: new Uint8Array(2048) };
    await new Promise(() => {});
  };
  const sent = await rejection(collect(client.stream(tooLarge())), 5000);
  assert.ok(sent instanceof ConnectError);
  assert.equal(sent.code, Code.ResourceExhausted);
  assert.match(sent.message, /2\d{3} bytes is larger than the limit of 1024/);

  const received = await rejection(
    collect(client.stream(texts("small"))),
    5000,
  );
  assert.ok(received instanceof ConnectError);
  assert.equal(received.code, Code.ResourceExhausted);
  assert.match(received.message, /larger than the limit of 1024/);
});

test("a stream reader that stops holds the server back", async (t) => {
  const total = 200;
  let produced = 0;
  const { transport } = await startPair(t, {
    services: [
      createServiceSpec(Streaming, {
        async *stream() {
          for (let index = 0; index < total; index++) {
            produced++;
            const value = new Uint8Array(256 * 1024).fill(index);
            yield { ...textAny(""), value };
          }
        },
      }),
    ],
  });
  const client = createClient(Streaming, transport);
  const iterator = client.stream(texts("go"))[Symbol.asyncIterator]();
  await iterator.next();
  await sleep(300);

  // 200 messages of 256 KiB are 50 MiB. The client parses at most 16
  // ahead of its reader and then leaves the rest to HTTP/2 flow control.
  assert.ok(produced < total / 2, `server produced ${produced} of ${total}`);

  let count = 1;
  for (
    let next = await iterator.next();
    !next.done;
    next = await iterator.next()
  ) {
    assert.equal(next.value.value[0], count & 0xff);
    count++;
  }
  assert.equal(count, total);
});
