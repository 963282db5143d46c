/**
 * Faults in the middle of a copy: a killed CLI, a killed server, a closed
 * connection, a failing source or sink, and an abort in each phase of a
 * transfer. Each test checks that the caller's promise settles within a
 * bound and names the cause, that the server drains its streams, and that
 * the next copy works.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, stat, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type Client,
  connect,
  copyFromContainer,
} from "../../src/client/index.js";
import { Code, TransferError } from "../../src/errors/index.js";
import type { TransferServer } from "../../src/server/index.js";
import type { StreamCreator } from "../../src/streaming/index.js";
import {
  ContainerPath,
  type MarshalOptions,
  ReadStream,
  WriteStream,
} from "../../src/transfer/index.js";
import { containerId, mainScript, startCopyEndpoint } from "../copy/harness.js";
import { rawTar } from "../helpers/raw-tar.js";

const big = 512 * 1024 * 1024;

/** Resolves with `promise`'s error, failing when it takes over `ms`. */
async function rejection(promise: Promise<unknown>, ms = 10_000) {
  const outcome = await Promise.race([
    promise.then(
      () => "resolved",
      (error: unknown) => error,
    ),
    sleep(ms, "timed out"),
  ]);
  assert.notEqual(outcome, "resolved", "the promise should reject");
  assert.notEqual(outcome, "timed out", `no rejection within ${ms} ms`);
  assert.ok(outcome instanceof TransferError, String(outcome));
  return outcome;
}

async function assertDrained(server: TransferServer): Promise<void> {
  for (let i = 0; i < 100 && server.registry.size > 0; i++) {
    await sleep(50);
  }
  assert.equal(server.registry.size, 0, "streams left in the registry");
}

/** Waits up to 10 s for `check` to hold. */
async function until(check: () => Promise<boolean> | boolean, what: string) {
  for (let i = 0; i < 500; i++) {
    if (await check()) {
      return;
    }
    await sleep(20);
  }
  assert.fail(`timed out waiting for ${what}`);
}

async function sizeOf(path: string): Promise<number> {
  return await stat(path).then(
    (info) => info.size,
    () => -1,
  );
}

/** Copies a small archive in, to show that the server still works. */
async function assertServing(client: Client): Promise<void> {
  await client.transfer(
    new ReadStream([rawTar([{ name: "after", body: "ok" }])]),
    new ContainerPath({ containerId, path: "/" }),
  );
}

function spawnCli(socket: string, args: string[]): ChildProcess {
  return spawn(
    process.execPath,
    [mainScript, "--address", socket, "--protocol", "ttrpc", ...args],
    { stdio: "ignore" },
  );
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve();
  }
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** Yields `total` zero bytes in 64 KiB chunks, failing at `failAt`. */
async function* zeros(total: number, failAt = Number.POSITIVE_INFINITY) {
  const chunk = Buffer.alloc(64 * 1024);
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (sent >= failAt) {
      throw new Error(`source failed after ${sent} bytes`);
    }
    yield chunk;
  }
}

/** Yields a tar archive of one file of `size` zero bytes. */
async function* tarOfZeros(size: number, failAt?: number) {
  const header = rawTar([{ name: "stream", size }], { trailer: false });
  yield header;
  yield* zeros(size, failAt);
  yield Buffer.alloc(1024);
}

test("killed CLI during copy in", async (t) => {
  const endpoint = await startCopyEndpoint(t);
  const source = join(endpoint.local, "big");
  await writeFile(source, "");
  await truncate(source, big);
  const child = spawnCli(endpoint.socket, ["cp", "-q", source, "c1:/big"]);
  t.after(() => child.kill("SIGKILL"));
  const copied = join(endpoint.rootfs, "big");
  // The server writes a file's content under a hidden name first.
  const partial = async () => {
    const names = await readdir(endpoint.rootfs);
    const hidden = names.find((name) => name.startsWith(".big.ct-"));
    return hidden === undefined ? 0 : sizeOf(join(endpoint.rootfs, hidden));
  };

  await until(async () => (await partial()) > 0, "the copy to start");
  child.kill("SIGKILL");
  await exited(child);

  await assertDrained(endpoint.server);
  await until(
    async () => (await readdir(endpoint.rootfs)).length === 0,
    "the partial file to be removed",
  );
  assert.equal(existsSync(copied), false, "a partial copy took the name");
  await assertServing(endpoint.client);
});

test("killed CLI during copy out", async (t) => {
  const endpoint = await startCopyEndpoint(t);
  await writeFile(join(endpoint.rootfs, "big"), "");
  await truncate(join(endpoint.rootfs, "big"), big);
  const destination = join(endpoint.local, "copied");
  const child = spawnCli(endpoint.socket, ["cp", "-q", "c1:/big", destination]);
  t.after(() => child.kill("SIGKILL"));

  await until(
    () => endpoint.server.registry.size > 0,
    "the copy out to open its stream",
  );
  await sleep(100);
  child.kill("SIGKILL");
  await exited(child);

  await assertDrained(endpoint.server);
  assert.equal(existsSync(destination), false, "a partial copy was put");
  // SIGKILL gives the CLI no chance to remove its hidden staging
  // directory, so it may stay beside the destination.
  for (const name of await readdir(endpoint.local)) {
    assert.ok(name.startsWith(".containerd-transfer-"), `${name} left`);
  }
  await assertServing(endpoint.client);
});

test("SIGTERM to CLI during copy out", async (t) => {
  const endpoint = await startCopyEndpoint(t);
  await writeFile(join(endpoint.rootfs, "big"), "");
  await truncate(join(endpoint.rootfs, "big"), big);
  const destination = join(endpoint.local, "copied");
  const child = spawnCli(endpoint.socket, ["cp", "-q", "c1:/big", destination]);
  t.after(() => child.kill("SIGKILL"));

  await until(
    () => endpoint.server.registry.size > 0,
    "the copy out to open its stream",
  );
  await sleep(100);
  child.kill("SIGTERM");
  await until(() => child.exitCode !== null, "the CLI to exit");

  assert.notEqual(child.exitCode, 0, "the copy should not succeed");
  assert.deepEqual(await readdir(endpoint.local), []);
  await assertDrained(endpoint.server);
});

/** Starts `serve` in a child process on a new socket. */
async function startServe(dir: string, root: string) {
  const socket = join(dir, "killed.sock");
  const child = spawn(
    process.execPath,
    [mainScript, "serve", "--root", root, "--ttrpc", socket],
    { stdio: "ignore" },
  );
  await until(() => existsSync(socket), "serve to listen");
  return { socket, child };
}

test("killed server during copy in", async (t) => {
  const endpoint = await startCopyEndpoint(t);
  const { socket, child } = await startServe(endpoint.dir, endpoint.root);
  t.after(() => child.kill("SIGKILL"));
  const client = connect({ address: socket, protocol: "ttrpc" });
  t.after(() => client.close());
  let sent = 0;
  const read = new ReadStream(tarOfZeros(big), undefined, {
    onBytes: (total) => {
      sent = total;
    },
  });
  const copying = client.transfer(
    read,
    new ContainerPath({ containerId, path: "/" }),
  );
  copying.catch(() => {});

  await until(() => sent > 1024 * 1024, "bytes to flow");
  child.kill("SIGKILL");

  const error = await rejection(copying);
  assert.equal(error.code, Code.Unavailable, error.message);
  await rejection(read.wait());

  // A new server replaces the socket file that the killed one left.
  const restarted = spawn(
    process.execPath,
    [mainScript, "serve", "--root", endpoint.root, "--ttrpc", socket],
    { stdio: "ignore" },
  );
  t.after(() => restarted.kill("SIGKILL"));
  const next = connect({ address: socket, protocol: "ttrpc" });
  t.after(() => next.close());
  let failure: unknown;
  for (let attempt = 0; attempt < 50; attempt++) {
    failure = await assertServing(next).then(
      () => undefined,
      (cause: unknown) => cause,
    );
    if (failure === undefined) {
      break;
    }
    await sleep(100);
  }
  assert.equal(failure, undefined, `no copy after the restart: ${failure}`);
});

test("killed server during copy out", async (t) => {
  const endpoint = await startCopyEndpoint(t);
  await writeFile(join(endpoint.rootfs, "big"), "");
  await truncate(join(endpoint.rootfs, "big"), big);
  const { socket, child } = await startServe(endpoint.dir, endpoint.root);
  t.after(() => child.kill("SIGKILL"));
  const client = connect({ address: socket, protocol: "ttrpc" });
  t.after(() => client.close());
  const destination = join(endpoint.local, "copied");
  let received = 0;
  const copying = copyFromContainer(
    client,
    { containerId, path: "/big" },
    destination,
    {
      onProgress: ({ bytes }) => {
        received = bytes;
      },
    },
  );
  copying.catch(() => {});

  await until(() => received > 1024 * 1024, "bytes to flow");
  child.kill("SIGKILL");

  const error = await rejection(copying);
  assert.equal(error.code, Code.Unavailable, error.message);
  assert.equal(existsSync(destination), false, "a partial copy was put");
  assert.deepEqual(await readdir(endpoint.local), []);
});

test("connection closed under active stream", async (t) => {
  const endpoint = await startCopyEndpoint(t);
  const client = connect({ address: endpoint.socket, protocol: "ttrpc" });
  let sent = 0;
  const read = new ReadStream(tarOfZeros(big), undefined, {
    onBytes: (total) => {
      sent = total;
    },
  });
  const copying = client.transfer(
    read,
    new ContainerPath({ containerId, path: "/" }),
  );
  copying.catch(() => {});

  await until(() => sent > 1024 * 1024, "bytes to flow");
  await client.close();

  await rejection(copying);
  await assertDrained(endpoint.server);
  await assertServing(endpoint.client);
});

test("source failing mid copy in", async (t) => {
  const endpoint = await startCopyEndpoint(t);
  const read = new ReadStream(tarOfZeros(8 << 20, 1 << 20));

  const error = await rejection(
    endpoint.client.transfer(
      read,
      new ContainerPath({ containerId, path: "/" }),
    ),
  );

  assert.match(error.message, /source failed after 1048576 bytes/);
  await assertDrained(endpoint.server);
  await assertServing(endpoint.client);
});

test("sink failing mid copy out", async (t) => {
  const endpoint = await startCopyEndpoint(t);
  await writeFile(join(endpoint.rootfs, "big"), "");
  await truncate(join(endpoint.rootfs, "big"), 8 << 20);
  let written = 0;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      written += chunk.length;
      callback(written > 1 << 20 ? new Error("disk full") : null);
    },
  });
  const write = new WriteStream(sink);

  const error = await rejection(
    endpoint.client.transfer(
      new ContainerPath({ containerId, path: "/big" }),
      write,
    ),
  );

  assert.match(error.message, /disk full/);
  await rejection(write.wait());
  await assertDrained(endpoint.server);
  await assertServing(endpoint.client);
});

/** A ReadStream that runs `onMarshal` before it opens its stream. */
class HookedReadStream extends ReadStream {
  onMarshal = () => {};

  override async marshalAny(creator: StreamCreator, options: MarshalOptions) {
    this.onMarshal();
    return await super.marshalAny(creator, options);
  }
}

/** A WriteStream that runs `onReturned` when the Transfer call returned. */
class HookedWriteStream extends WriteStream {
  onReturned = () => {};

  override transferReturned(): void {
    this.onReturned();
    super.transferReturned();
  }
}

test("abort during marshal", async (t) => {
  const endpoint = await startCopyEndpoint(t);
  const controller = new AbortController();
  const read = new HookedReadStream([rawTar([{ name: "f", body: "x" }])]);
  read.onMarshal = () =>
    controller.abort(new TransferError("stop in marshal", Code.Canceled));

  const error = await rejection(
    endpoint.client.transfer(
      read,
      new ContainerPath({ containerId, path: "/" }),
      { signal: controller.signal },
    ),
  );

  assert.match(error.message, /stop in marshal/);
  assert.equal(error.code, Code.Canceled);
  await assertDrained(endpoint.server);
  assert.equal(existsSync(join(endpoint.rootfs, "f")), false);
  await assertServing(endpoint.client);
});

test("abort during the call", async (t) => {
  const endpoint = await startCopyEndpoint(t);
  const controller = new AbortController();
  let sent = 0;
  const read = new ReadStream(tarOfZeros(big), undefined, {
    onBytes: (total) => {
      sent = total;
      if (sent > 1024 * 1024) {
        controller.abort(new TransferError("stop in call", Code.Canceled));
      }
    },
  });

  const error = await rejection(
    endpoint.client.transfer(
      read,
      new ContainerPath({ containerId, path: "/" }),
      { signal: controller.signal },
    ),
  );

  assert.match(error.message, /stop in call/);
  await rejection(read.wait());
  await assertDrained(endpoint.server);
  await assertServing(endpoint.client);
});

test("abort during wait", async (t) => {
  const endpoint = await startCopyEndpoint(t);
  await mkdir(join(endpoint.rootfs, "d"));
  await writeFile(join(endpoint.rootfs, "d", "f"), "x");
  const controller = new AbortController();
  // A sink that never finishes its end, so the pump is still running when
  // the call returns.
  const sink = new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
    final() {},
  });
  const write = new HookedWriteStream(sink);
  write.onReturned = () =>
    controller.abort(new TransferError("stop in wait", Code.Canceled));

  const error = await rejection(
    endpoint.client.transfer(
      new ContainerPath({ containerId, path: "/d" }),
      write,
      { signal: controller.signal },
    ),
  );

  assert.match(error.message, /stop in wait/);
  await rejection(write.wait());
  await assertDrained(endpoint.server);
  await assertServing(endpoint.client);
});
