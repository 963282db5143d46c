/**
 * Copy out writes through a staging directory: a canceled or failed copy
 * leaves the destination as it was, and a hostile archive from the
 * server changes nothing outside the destination.
 */
import assert from "node:assert/strict";
import { mkdir, readdir, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { test } from "node:test";
import {
  copyArchiveFromContainer,
  copyFromContainer,
} from "../../src/client/index.js";
import { Code, TransferError } from "../../src/errors/index.js";
import type { Transferrer } from "../../src/server/index.js";
import { sendBytes } from "../../src/streaming/index.js";
import { type RawEntry, rawTar } from "../helpers/raw-tar.js";
import {
  containerId,
  readTree,
  startCopyEndpoint,
  type Tree,
  writeTree,
} from "./harness.js";

const bigBytes = 256 * 1024 * 1024;

/** Copies c1:`path` to `destination`, aborting after the first MiB. */
async function cancelMidway(
  endpoint: Awaited<ReturnType<typeof startCopyEndpoint>>,
  path: string,
  destination: string,
): Promise<void> {
  const controller = new AbortController();
  let received = 0;
  await assert.rejects(
    copyFromContainer(endpoint.client, { containerId, path }, destination, {
      signal: controller.signal,
      onBytes: (bytes) => {
        received = bytes;
        if (bytes > 1024 * 1024) {
          controller.abort(new Error("test cancels the copy"));
        }
      },
    }),
    (error: unknown) => {
      assert.ok(error instanceof TransferError);
      assert.equal(error.code, Code.Canceled, error.message);
      return true;
    },
  );
  assert.ok(received > 1024 * 1024, `received ${received} bytes`);
  assert.ok(received < bigBytes, `received ${received} bytes`);
}

test("canceled copy creates nothing", async (t) => {
  const endpoint = await startCopyEndpoint(t);
  await writeFile(join(endpoint.rootfs, "big"), "");
  await truncate(join(endpoint.rootfs, "big"), bigBytes);

  await cancelMidway(endpoint, "/big", join(endpoint.local, "out"));

  assert.deepEqual(await readdir(endpoint.local), []);
});

test("canceled copy keeps existing file", async (t) => {
  const endpoint = await startCopyEndpoint(t);
  await writeFile(join(endpoint.rootfs, "big"), "");
  await truncate(join(endpoint.rootfs, "big"), bigBytes);
  await writeTree(endpoint.local, { "out.txt": "old" });

  await cancelMidway(endpoint, "/big", join(endpoint.local, "out.txt"));

  assert.deepEqual(await readTree(endpoint.local), { "out.txt": "old" });
});

test("canceled merge keeps existing directory", async (t) => {
  const endpoint = await startCopyEndpoint(t);
  await writeTree(endpoint.rootfs, { data: "/", "data/keep": "new" });
  await writeFile(join(endpoint.rootfs, "data/big"), "");
  await truncate(join(endpoint.rootfs, "data/big"), bigBytes);
  const before: Tree = { d: "/", "d/data": "/", "d/data/keep": "old" };
  await writeTree(endpoint.local, before);

  await cancelMidway(endpoint, "/data", join(endpoint.local, "d"));

  assert.deepEqual(await readTree(endpoint.local), before);
});

/**
 * A transferrer that serves a stat of any path as a directory `data` and
 * a copy out as the given archive, then fails with `error` if set.
 */
function servingArchive(archive: Buffer, error?: Error): Transferrer {
  return {
    name: "test-archive",
    async transfer(source, destination, context) {
      if (
        source.type !== "ContainerPath" ||
        destination.type !== "WriteStream"
      ) {
        return false;
      }
      const bytes = source.noWalk
        ? rawTar([{ name: "data/", type: "5" }])
        : archive;
      await sendBytes(destination.stream, [bytes], { signal: context.signal });
      if (error !== undefined && !source.noWalk) {
        throw error;
      }
      return true;
    },
  };
}

test("failed copy keeps existing directory", async (t) => {
  const partial = rawTar(
    [
      { name: "data/", type: "5" },
      { name: "data/keep", body: "new" },
    ],
    { trailer: false },
  );
  const endpoint = await startCopyEndpoint(t, {
    transferrers: [
      servingArchive(partial, new TransferError("disk failed", Code.Internal)),
    ],
  });
  const before: Tree = { d: "/", "d/data": "/", "d/data/keep": "old" };
  await writeTree(endpoint.local, before);

  await assert.rejects(
    copyFromContainer(
      endpoint.client,
      { containerId, path: "/data" },
      join(endpoint.local, "d"),
    ),
    /disk failed|end-of-archive|ended/,
  );

  assert.deepEqual(await readTree(endpoint.local), before);
});

const hostileCases: { name: string; entries: RawEntry[] }[] = [
  {
    name: "dot-dot and absolute names",
    entries: [
      { name: "data/", type: "5" },
      { name: "data/ok.txt", body: "fine" },
      { name: "../escaped-dotdot", body: "x" },
      { name: "data/../../../../escaped-deep", body: "x" },
      { name: "/escaped-absolute", body: "x" },
    ],
  },
  {
    name: "symlink then through it",
    entries: [
      { name: "data/", type: "5" },
      { name: "data/ok.txt", body: "fine" },
      { name: "data/link", type: "2", linkname: "../../../outside" },
      { name: "data/link/escaped-through-link", body: "x" },
      { name: "data/root", type: "2", linkname: "/" },
      { name: "data/root/escaped-through-root", body: "x" },
    ],
  },
  {
    name: "hard link out",
    entries: [
      { name: "data/", type: "5" },
      { name: "data/ok.txt", body: "fine" },
      { name: "data/hard", type: "1", linkname: "../../outside/secret" },
      { name: "data/hard", body: "overwrite through hard link" },
    ],
  },
];

for (const { name, entries } of hostileCases) {
  test(`hostile copy out: ${name}`, async (t) => {
    const endpoint = await startCopyEndpoint(t, {
      transferrers: [servingArchive(rawTar(entries))],
    });
    const outside = join(endpoint.dir, "outside");
    await writeTree(outside, { "": "/", secret: "keep me" });
    const destination = join(endpoint.local, "dest");
    await mkdir(destination);
    const outsideDestination = async () =>
      Object.fromEntries(
        Object.entries(await readTree(endpoint.dir)).filter(
          ([path]) => !path.startsWith("local/dest/"),
        ),
      );
    const before = await outsideDestination();

    const result = await copyFromContainer(
      endpoint.client,
      { containerId, path: "/data" },
      destination,
    ).then(
      () => "ok",
      (error: Error) => error.message,
    );

    assert.deepEqual(await outsideDestination(), before, `copy: ${result}`);
    const left = await readdir(destination);
    assert.ok(
      left.every((entry) => !entry.startsWith(".containerd-transfer-")),
      `staging left in ${left.join(", ")}`,
    );
  });
}

test("tar stream that ends before its end-of-archive marker fails", async (t) => {
  const whole = rawTar([
    { name: "data/", type: "5" },
    { name: "data/big", body: Buffer.alloc(64 * 1024, 1) },
  ]);
  const endpoint = await startCopyEndpoint(t, {
    transferrers: [servingArchive(whole.subarray(0, 20 * 1024))],
  });
  const received: Buffer[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      received.push(chunk);
      done();
    },
  });

  const error = await copyArchiveFromContainer(
    endpoint.client,
    { containerId, path: "/data" },
    sink,
  ).then(
    () => undefined,
    (failure: unknown) => failure,
  );

  assert.ok(error instanceof TransferError, String(error));
  assert.equal(error.code, Code.DataLoss, error.message);
  assert.match(error.message, /without the end-of-archive marker/);
  assert.equal(Buffer.concat(received).length, 20 * 1024);
});
