import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { Writable } from "node:stream";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { sendArchive } from "../../src/client/copy-archive.js";
import { Code, TransferError } from "../../src/errors/index.js";
import {
  ContainerPath,
  ReadStream,
  WriteStream,
} from "../../src/transfer/index.js";
import { patternBytes, protocols, startEndpoint } from "../helpers/endpoint.js";
import { rawTar } from "../helpers/raw-tar.js";

const octets = "application/octet-stream";

/** Yields `bytes` bytes, then throws or waits for ever. */
async function* source(bytes: number, then: "throw" | "stall") {
  yield patternBytes(bytes);
  if (then === "throw") {
    throw new Error("disk read failed");
  }
  await new Promise(() => {});
}

/** An archive whose FIFO entry makes the server send a warning event. */
function warningArchive(): Buffer {
  return rawTar([
    { name: "fifo", type: "6" },
    { name: "kept", body: "k" },
  ]);
}

function discard() {
  return new Writable({ write: (_chunk, _encoding, done) => done() });
}

/** Rejects if `promise` does not settle within `ms`. */
async function settleWithin<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not settled in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function registryDrains(registry: { size: number }): Promise<void> {
  for (let i = 0; i < 100 && registry.size > 0; i++) {
    await sleep(20);
  }
  assert.equal(registry.size, 0, "streams left registered on the server");
}

for (const protocol of protocols) {
  test(`source error rejects transfer over ${protocol}`, async (t) => {
    const { client, server } = await startEndpoint(t, protocol);
    const read = new ReadStream(source(100_000, "throw"), octets);
    const write = new WriteStream(discard(), octets);

    const error = await settleWithin(
      client.transfer(read, write).then(
        () => assert.fail("transfer resolved"),
        (e: unknown) => e,
      ),
      5000,
    );

    assert.ok(error instanceof TransferError);
    assert.match(error.message, /disk read failed/);
    await assert.rejects(read.wait(), /disk read failed/);
    await registryDrains(server.registry);
  });

  test(`sink error rejects transfer over ${protocol}`, async (t) => {
    const { client, server } = await startEndpoint(t, protocol);
    let written = 0;
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        written += chunk.length;
        done(written > 50_000 ? new Error("disk full") : null);
      },
    });
    const transfer = client.transfer(
      new ReadStream([patternBytes(300_000)], octets),
      new WriteStream(sink, octets),
    );

    await settleWithin(assert.rejects(transfer, /disk full/), 5000);
    await registryDrains(server.registry);
  });

  test(`aborted signal rejects at once over ${protocol}`, async (t) => {
    const { client } = await startEndpoint(t, protocol);
    const transfer = client.transfer(
      new ReadStream([patternBytes(10)], octets),
      new WriteStream(discard(), octets),
      { signal: AbortSignal.abort(new Error("user gave up")) },
    );

    const error = await transfer.then(
      () => assert.fail("transfer resolved"),
      (e: TransferError) => e,
    );
    assert.equal(error.code, Code.Canceled);
  });

  test(`abort during transfer rejects over ${protocol}`, async (t) => {
    const { client, server } = await startEndpoint(t, protocol);
    const controller = new AbortController();
    const read = new ReadStream(source(200_000, "stall"), octets);
    const transfer = client.transfer(read, new WriteStream(discard(), octets), {
      signal: controller.signal,
    });
    await sleep(100);
    controller.abort(new Error("user gave up"));

    const error = await settleWithin(
      transfer.then(
        () => assert.fail("transfer resolved"),
        (e: TransferError) => e,
      ),
      5000,
    );
    assert.equal(error.code, Code.Canceled);
    await assert.rejects(read.wait());
    await registryDrains(server.registry);
  });

  test(`server closing rejects transfer over ${protocol}`, async (t) => {
    const { client, server } = await startEndpoint(t, protocol);
    const transfer = client.transfer(
      new ReadStream(source(200_000, "stall"), octets),
      new WriteStream(discard(), octets),
    );
    const rejected = assert.rejects(transfer, TransferError);
    await sleep(100);
    await server.close();

    await settleWithin(rejected, 5000);
  });

  test(`unknown container is not found over ${protocol}`, async (t) => {
    const { client, server } = await startEndpoint(t, protocol);
    const write = new WriteStream(discard());
    const error = await client
      .transfer(new ContainerPath({ containerId: "nope", path: "/" }), write)
      .then(
        () => assert.fail("transfer resolved"),
        (e: TransferError) => e,
      );

    assert.equal(error.kind, "not found");
    assert.match(error.message, /"nope"/);
    await assert.rejects(write.wait());
    await registryDrains(server.registry);
  });

  test(`wrong media type is rejected over ${protocol}`, async (t) => {
    const { client, addContainer } = await startEndpoint(t, protocol);
    await addContainer("c1");
    const error = await client
      .transfer(
        new ContainerPath({ containerId: "c1", path: "/" }),
        new WriteStream(discard(), "application/zip"),
      )
      .then(
        () => assert.fail("transfer resolved"),
        (e: TransferError) => e,
      );

    assert.equal(error.code, Code.InvalidArgument);
    assert.match(error.message, /application\/zip/);
  });
}

test("wait before marshal rejects", async () => {
  const read = new ReadStream([Buffer.from("x")]);
  await assert.rejects(read.wait(), /before marshalAny/);
});

for (const protocol of protocols) {
  test(`throwing onProgress is the caller's over ${protocol}`, async (t) => {
    const endpoint = await startEndpoint(t, protocol);
    const rootfs = await endpoint.addContainer("c1");
    const archive = warningArchive();

    await assert.rejects(
      endpoint.client.transfer(
        new ReadStream([archive]),
        new ContainerPath({ containerId: "c1", path: "/" }),
        {
          onProgress: () => {
            throw new Error("boom");
          },
        },
      ),
      (error: TransferError) =>
        error.code === Code.Unknown &&
        error.rawMessage === "the onProgress callback threw: boom",
    );
    assert.deepEqual(await readdir(rootfs), ["kept"]);
  });
}

for (const protocol of protocols) {
  test(`a throwing onWarning is named over ${protocol}`, async (t) => {
    const endpoint = await startEndpoint(t, protocol);
    await endpoint.addContainer("c1");
    const archive = warningArchive();

    await assert.rejects(
      sendArchive(
        endpoint.client,
        [archive],
        {
          containerId: "c1",
          path: "/",
        },
        {
          onWarning: () => {
            throw new Error("handler failed");
          },
        },
      ),
      (error: TransferError) =>
        error.code === Code.Unknown &&
        error.rawMessage === "the onWarning callback threw: handler failed",
    );
  });

  test(`shared stream end fails second transfer over ${protocol}`, async (t) => {
    const { client } = await startEndpoint(t, protocol);
    const chunks: Buffer[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        chunks.push(chunk);
        done();
      },
    });
    const shared = new WriteStream(sink, octets);
    const payload = patternBytes(300_000);

    const [first, second] = await Promise.allSettled([
      client.transfer(new ReadStream([payload], octets), shared),
      client.transfer(new ReadStream([payload], octets), shared),
    ]);

    assert.equal(first.status, "fulfilled");
    assert.equal(second.status, "rejected");
    assert.equal(
      (second.reason as TransferError).code,
      Code.FailedPrecondition,
    );
    assert.match((second.reason as Error).message, /already used/);
    assert.deepEqual(Buffer.concat(chunks), payload);
  });
}

test("wait after early abort gives reason", async () => {
  const read = new ReadStream([Buffer.from("x")]);
  read.abort(new Error("given up"));
  await assert.rejects(read.wait(), /given up/);
});

test("rejecting async onProgress fails transfer", async (t) => {
  const endpoint = await startEndpoint(t, "ttrpc");
  await endpoint.addContainer("c1");
  const archive = warningArchive();

  await assert.rejects(
    endpoint.client.transfer(
      new ReadStream([archive]),
      new ContainerPath({ containerId: "c1", path: "/" }),
      {
        onProgress: async () => {
          throw new Error("async boom");
        },
      },
    ),
    (error: TransferError) =>
      error.code === Code.Unknown &&
      error.rawMessage === "the onProgress callback threw: async boom",
  );
});
