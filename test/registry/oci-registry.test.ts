/**
 * The auth responder of OCIRegistry against an in-memory stream that plays
 * containerd's part: requests go in, responses come out in order.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type Any, packAny, unpackAny } from "../../src/any/index.js";
import { TransferError } from "../../src/errors/index.js";
import { StreamInitSchema } from "../../src/gen/containerd/services/streaming/v1/streaming_pb.js";
import {
  AuthRequestSchema,
  AuthResponseSchema,
  AuthType,
  OCIRegistrySchema,
} from "../../src/gen/containerd/types/transfer/registry_pb.js";
import type { Stream, StreamCreator } from "../../src/streaming/index.js";
import { OCIRegistry, type RegistryWarning } from "../../src/transfer/index.js";

/** A stream whose far end the test drives. */
class FakeStream implements Stream {
  readonly id = "creds-test";
  readonly sent: Any[] = [];
  failSends = false;
  aborted: unknown;
  #incoming: Any[] = [];
  #readers: ((message: Any | undefined) => void)[] = [];
  #sentWaiters: (() => void)[] = [];

  /** Delivers a message from the daemon's side. */
  deliver(message: Any): void {
    const reader = this.#readers.shift();
    if (reader) {
      reader(message);
    } else {
      this.#incoming.push(message);
    }
  }

  /** Resolves once `count` messages were sent. */
  async sentCount(count: number): Promise<void> {
    while (this.sent.length < count) {
      await new Promise<void>((resolve) => this.#sentWaiters.push(resolve));
    }
  }

  async send(message: Any): Promise<void> {
    if (this.failSends) {
      throw new TransferError("stream broken");
    }
    this.sent.push(message);
    for (const waiter of this.#sentWaiters.splice(0)) {
      waiter();
    }
  }

  receive(): Promise<Any | undefined> {
    const next = this.#incoming.shift();
    if (next) {
      return Promise.resolve(next);
    }
    return new Promise((resolve, reject) => {
      if (this.aborted !== undefined) {
        reject(this.aborted);
        return;
      }
      this.#readers.push(resolve);
    });
  }

  async closeSend(): Promise<void> {}

  abort(reason?: unknown): void {
    this.aborted ??= reason ?? new Error("aborted");
  }
}

function creatorOf(stream: FakeStream): StreamCreator {
  return { create: async () => stream };
}

const request = (host: string) =>
  packAny(AuthRequestSchema, { host, reference: `${host}/a:1` });

const responses = (stream: FakeStream) =>
  stream.sent.map((message) => unpackAny(message, AuthResponseSchema));

test("answers every request in order", async () => {
  const stream = new FakeStream();
  const registry = new OCIRegistry("r.example.test/a:1", {
    credentials: async ({ host }) => {
      if (host === "slow.example.test") {
        await new Promise((resolve) => setTimeout(resolve, 50));
        return { username: "slow", secret: "s1" };
      }
      if (host === "token.example.test") {
        return { refreshToken: "t1" };
      }
      return undefined;
    },
  });

  const described = unpackAny(
    await registry.marshalAny(creatorOf(stream)),
    OCIRegistrySchema,
  );
  stream.deliver(request("slow.example.test"));
  stream.deliver(request("token.example.test"));
  stream.deliver(request("none.example.test"));
  await stream.sentCount(3);

  assert.equal(described.resolver?.authStream, "creds-test");
  const [first, second, third] = responses(stream);
  assert.equal(first?.authType, AuthType.CREDENTIALS);
  assert.equal(first?.username, "slow");
  assert.equal(first?.secret, "s1");
  assert.equal(second?.authType, AuthType.REFRESH);
  assert.equal(second?.secret, "t1");
  assert.equal(third?.authType, AuthType.NONE);
});

test("callback failure still answers none", async () => {
  const stream = new FakeStream();
  const warnings: RegistryWarning[] = [];
  const registry = new OCIRegistry("r.example.test/a:1", {
    credentials: () => {
      throw new Error("keychain locked");
    },
    onWarning: (warning) => warnings.push(warning),
  });

  await registry.marshalAny(creatorOf(stream));
  stream.deliver(request("r.example.test"));
  await stream.sentCount(1);

  assert.equal(responses(stream)[0]?.authType, AuthType.NONE);
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0]?.code, "credentials-failed");
  assert.equal(warnings[0]?.host, "r.example.test");
  assert.match(warnings[0]?.message ?? "", /keychain locked/);
});

test("hanging callback times out", async () => {
  const stream = new FakeStream();
  const warnings: RegistryWarning[] = [];
  let callbackSignal: AbortSignal | undefined;
  const registry = new OCIRegistry("r.example.test/a:1", {
    credentials: (_request, signal) => {
      callbackSignal = signal;
      return new Promise(() => {});
    },
    credentialsTimeoutMs: 100,
    onWarning: (warning) => warnings.push(warning),
  });

  await registry.marshalAny(creatorOf(stream));
  stream.deliver(request("r.example.test"));
  await stream.sentCount(1);

  assert.equal(responses(stream)[0]?.authType, AuthType.NONE);
  assert.equal(warnings[0]?.code, "credentials-timed-out");
  assert.equal(callbackSignal?.aborted, true);
});

test("invalid message still answers none", async () => {
  const stream = new FakeStream();
  const warnings: RegistryWarning[] = [];
  const registry = new OCIRegistry("r.example.test/a:1", {
    credentials: () => ({ username: "u", secret: "p" }),
    onWarning: (warning) => warnings.push(warning),
  });

  await registry.marshalAny(creatorOf(stream));
  stream.deliver(packAny(StreamInitSchema, { id: "not-a-request" }));
  await stream.sentCount(1);

  assert.equal(responses(stream)[0]?.authType, AuthType.NONE);
  assert.equal(warnings[0]?.code, "invalid-auth-request");
});

test("wait resolves once transfer returned", async () => {
  const stream = new FakeStream();
  const registry = new OCIRegistry("r.example.test/a:1", {
    credentials: () => undefined,
  });
  await registry.marshalAny(creatorOf(stream));
  let settled = false;
  const waiting = registry.wait().then(() => {
    settled = true;
  });

  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(settled, false, "wait() settled before the transfer returned");
  registry.transferReturned();
  await waiting;

  assert.equal(settled, true);
});

test("failed answer rejects wait", async () => {
  const stream = new FakeStream();
  stream.failSends = true;
  const registry = new OCIRegistry("r.example.test/a:1", {
    credentials: () => undefined,
  });

  await registry.marshalAny(creatorOf(stream));
  stream.deliver(request("r.example.test"));

  await assert.rejects(registry.wait(), /stream broken/);
});

test("no callback opens no stream", async () => {
  let created = 0;
  const registry = new OCIRegistry("r.example.test/a:1", {
    headers: { "X-Test": "1" },
    defaultScheme: "http",
    hostDir: "/etc/containerd/certs.d",
  });

  const described = unpackAny(
    await registry.marshalAny({
      create: async () => {
        created++;
        return new FakeStream();
      },
    }),
    OCIRegistrySchema,
  );
  await registry.wait();

  assert.equal(created, 0);
  assert.equal(described.reference, "r.example.test/a:1");
  assert.equal(described.resolver?.authStream, "");
  assert.equal(described.resolver?.headers["X-Test"], "1");
  assert.equal(described.resolver?.defaultScheme, "http");
  assert.equal(described.resolver?.hostDir, "/etc/containerd/certs.d");
});
