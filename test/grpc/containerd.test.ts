/**
 * Our gRPC client against a real containerd 1.7 daemon, found through
 * test/helpers/containerd.ts.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { type TestContext, test } from "node:test";
import { promisify } from "node:util";
import type { Any } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { packAny } from "../../src/any/index.js";
import { TransferError } from "../../src/errors/index.js";
import {
  StreamInitSchema,
  Streaming,
} from "../../src/gen/containerd/services/streaming/v1/streaming_pb.js";
import { Transfer } from "../../src/gen/containerd/services/transfer/v1/transfer_pb.js";
import { ImageStoreSchema } from "../../src/gen/containerd/types/transfer/imagestore_pb.js";
import { ImageImportStreamSchema } from "../../src/gen/containerd/types/transfer/importexport_pb.js";
import { createGrpcTransport } from "../../src/grpc/index.js";
import {
  type ClientTransport,
  namespaceHeaderGrpc,
} from "../../src/transport/index.js";
import {
  type ContainerdEnv,
  requireContainerd,
} from "../helpers/containerd.js";
import { deferred, rejection } from "./harness.js";

const run = promisify(execFile);

interface Daemon {
  env: ContainerdEnv;
  transport: ClientTransport;
  headers: Record<string, string>;
}

/** Connects to the test daemon, or returns undefined when the test skips. */
function connectDaemon(t: TestContext): Daemon | undefined {
  const env = requireContainerd(t);
  if (!env) {
    return undefined;
  }
  const transport = createGrpcTransport({ path: env.address });
  t.after(() => transport.close());
  return {
    env,
    transport,
    headers: { [namespaceHeaderGrpc]: env.namespace },
  };
}

interface OpenStream {
  /** The first message the daemon sent. */
  ack: Any;
  /** Resolves when the daemon ends the call, rejects when it fails it. */
  ended: Promise<void>;
}

/**
 * Opens Streaming.Stream, sends StreamInit{id} and waits for the first
 * message back. The call stays open, without half-close, until the test
 * ends.
 */
async function openStream(
  t: TestContext,
  daemon: Daemon,
  id: string,
  headers = daemon.headers,
): Promise<OpenStream> {
  const controller = new AbortController();
  const done = deferred();
  t.after(() => {
    done.resolve();
    controller.abort();
  });
  async function* requests(): AsyncIterable<Any> {
    yield packAny(StreamInitSchema, { id });
    await done.promise;
  }
  const responses = createClient(Streaming, daemon.transport).stream(
    requests(),
    { headers, signal: controller.signal },
  );
  const iterator = responses[Symbol.asyncIterator]();
  const first = await iterator.next();
  assert.equal(first.done, false, `stream ${id} ended before its ack`);

  const ended = (async () => {
    while (!(await iterator.next()).done) {
      // The daemon sends nothing after the ack on an unused stream.
    }
  })();
  ended.catch(() => {});
  return { ack: first.value, ended };
}

function uniqueId(prefix: string): string {
  return `${prefix}-${randomUUID()}`;
}

test("containerd acks stream init with empty", async (t) => {
  const daemon = connectDaemon(t);
  if (!daemon) {
    return;
  }

  const { ack } = await openStream(t, daemon, uniqueId("ack"));

  assert.equal(ack.typeUrl, "google.protobuf.Empty");
  assert.equal(ack.value.length, 0);
});

test("containerd rejects duplicate stream id", async (t) => {
  const daemon = connectDaemon(t);
  if (!daemon) {
    return;
  }
  const id = uniqueId("duplicate");
  await openStream(t, daemon, id);

  const error = await rejection(openStream(t, daemon, id), 10_000);
  const converted = TransferError.from(error);

  // containerd 1.7's Streaming handler returns the errdefs error without
  // converting it, so the code is Unknown and only the text has the kind.
  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.Unknown);
  assert.match(error.rawMessage, /already exists/);
  assert.equal(converted.kind, "already exists");
  assert.equal(converted.code, Code.AlreadyExists);
});

test("containerd transfer with unknown progress stream", async (t) => {
  const daemon = connectDaemon(t);
  if (!daemon) {
    return;
  }
  const client = createClient(Transfer, daemon.transport);

  const error = await rejection(
    client.transfer(
      {
        source: packAny(ImageStoreSchema, { name: daemon.env.image }),
        destination: packAny(ImageStoreSchema, {
          name: `example.test/bb:${uniqueId("tag")}`,
        }),
        options: { progressStream: uniqueId("never-created") },
      },
      { headers: daemon.headers },
    ),
    10_000,
  );

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.NotFound, error.message);
  assert.equal(TransferError.from(error).kind, "not found");
});

test("containerd transfer with unknown import stream", async (t) => {
  const daemon = connectDaemon(t);
  if (!daemon) {
    return;
  }
  const client = createClient(Transfer, daemon.transport);

  const error = await rejection(
    client.transfer(
      {
        source: packAny(ImageImportStreamSchema, {
          stream: uniqueId("never-created"),
        }),
        destination: packAny(ImageStoreSchema, {
          name: `example.test/imported:${uniqueId("tag")}`,
        }),
      },
      { headers: daemon.headers },
    ),
    10_000,
  );

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.NotFound, error.message);
});

test("containerd streams are scoped by namespace", async (t) => {
  const daemon = connectDaemon(t);
  if (!daemon) {
    return;
  }
  const id = uniqueId("scoped");
  await openStream(t, daemon, id, { [namespaceHeaderGrpc]: "ctt-other" });
  const client = createClient(Transfer, daemon.transport);

  const error = await rejection(
    client.transfer(
      {
        source: packAny(ImageStoreSchema, { name: daemon.env.image }),
        destination: packAny(ImageStoreSchema, {
          name: `example.test/bb:${uniqueId("tag")}`,
        }),
        options: { progressStream: id },
      },
      { headers: daemon.headers },
    ),
    10_000,
  );

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.NotFound, error.message);
});

test("containerd transfer of unknown image", async (t) => {
  const daemon = connectDaemon(t);
  if (!daemon) {
    return;
  }
  // The daemon finds the progress stream, and closes it when the Transfer
  // handler returns.
  const progressId = uniqueId("progress");
  const progress = await openStream(t, daemon, progressId);
  const client = createClient(Transfer, daemon.transport);
  const missing = `example.test/missing:${uniqueId("tag")}`;

  const error = await rejection(
    client.transfer(
      {
        source: packAny(ImageStoreSchema, { name: missing }),
        destination: packAny(ImageStoreSchema, {
          name: `example.test/copy:${uniqueId("tag")}`,
        }),
        options: { progressStream: progressId },
      },
      { headers: daemon.headers },
    ),
    10_000,
  );
  await progress.ended;

  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.NotFound, error.message);
  assert.match(error.rawMessage, /not found/);
  assert.equal(TransferError.from(error).kind, "not found");
});

test("containerd transfer tags an image", async (t) => {
  const daemon = connectDaemon(t);
  if (!daemon) {
    return;
  }
  const { env } = daemon;
  const tagged = `example.test/bb:${uniqueId("tag")}`;
  const ctr = [
    "--address",
    env.address,
    "--namespace",
    env.namespace,
    "images",
  ];
  t.after(() => run(env.ctr, [...ctr, "rm", tagged]).catch(() => {}));
  const client = createClient(Transfer, daemon.transport);

  await client.transfer(
    {
      source: packAny(ImageStoreSchema, { name: env.image }),
      destination: packAny(ImageStoreSchema, { name: tagged }),
    },
    { headers: daemon.headers },
  );
  const { stdout } = await run(env.ctr, [...ctr, "ls", "-q"]);

  assert.ok(stdout.split("\n").includes(tagged), stdout);
});

test("containerd rejects messages over 16 MiB", async (t) => {
  const daemon = connectDaemon(t);
  if (!daemon) {
    return;
  }
  const large = { options: { progressStream: "x".repeat((16 << 20) + 1) } };
  // A client that allows larger messages gets containerd's own error.
  const lenient = createGrpcTransport({
    path: daemon.env.address,
    maxMessageBytes: 32 << 20,
  });
  t.after(() => lenient.close());

  const local = await rejection(
    createClient(Transfer, daemon.transport).transfer(large, {
      headers: daemon.headers,
    }),
    10_000,
  );
  const remote = await rejection(
    createClient(Transfer, lenient).transfer(large, {
      headers: daemon.headers,
    }),
    10_000,
  );

  assert.ok(local instanceof ConnectError);
  assert.equal(local.code, Code.ResourceExhausted);
  assert.match(local.rawMessage, /writeMaxBytes/);
  assert.ok(remote instanceof ConnectError);
  assert.equal(remote.code, Code.ResourceExhausted);
  assert.match(remote.rawMessage, /larger than max/);
});
