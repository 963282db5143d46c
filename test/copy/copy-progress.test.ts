import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { link, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import {
  type Client,
  type CopyProgress,
  copyFromContainer,
  copyIntoContainer,
} from "../../src/client/index.js";
import { patternBytes } from "../helpers/endpoint.js";
import { containerId, startCopyEndpoint, writeTree } from "./harness.js";

/** Checks that `events` only grow and end at `finalBytes`. */
function assertSteady(events: CopyProgress[], finalBytes: number): void {
  assert.ok(events.length > 1, `${events.length} progress events`);
  for (let i = 1; i < events.length; i++) {
    assert.ok(events[i]!.bytes >= events[i - 1]!.bytes, `event ${i} shrank`);
  }
  assert.equal(events.at(-1)?.bytes, finalBytes);
}

/**
 * Checks that the last of `events` carries an estimated total within 1%
 * of `sentBytes`, and that every event from the first with a total on
 * carries the same one.
 */
function assertKnownTotal(events: CopyProgress[], sentBytes: number): void {
  const total = events.at(-1)?.totalBytes;
  assert.ok(total !== undefined, "no total in the last event");
  const known = events.findIndex((event) => event.totalBytes !== undefined);
  assert.ok(events.slice(known).every((event) => event.totalBytes === total));
  const error = Math.abs(total - sentBytes) / sentBytes;
  assert.ok(error < 0.01, `estimate ${total}, sent ${sentBytes}`);
}

/** Copies `local`/src into the container and returns its progress events. */
async function copySourceIn(
  client: Client,
  local: string,
): Promise<{ events: CopyProgress[]; sentBytes: number }> {
  const events: CopyProgress[] = [];
  const summary = await copyIntoContainer(
    client,
    join(local, "src"),
    { containerId, path: "/data" },
    { onProgress: (event) => events.push(event) },
  );
  return { events, sentBytes: summary.bytes };
}

test("copy in reports estimated total", async (t) => {
  const { client, local } = await startCopyEndpoint(t);
  await writeTree(local, { src: "/", "src/sub": "/", "src/tiny": "x" });
  await writeFile(join(local, "src/a.bin"), patternBytes(3 * 1024 * 1024));
  await writeFile(join(local, "src/sub/b.bin"), patternBytes(100_000));
  const events: CopyProgress[] = [];
  const bytes: number[] = [];

  const summary = await copyIntoContainer(
    client,
    join(local, "src"),
    { containerId, path: "/data" },
    {
      onProgress: (event) => events.push(event),
      onBytes: (total) => bytes.push(total),
    },
  );

  assertSteady(events, summary.bytes);
  assert.equal(bytes.at(-1), summary.bytes);
  assertKnownTotal(events, summary.bytes);
});

test("copy in total of many entries", async (t) => {
  const { client, local } = await startCopyEndpoint(t);
  const tree: Record<string, string> = { src: "/" };
  for (let i = 0; i < 40; i++) {
    tree[`src/d${i}`] = "/";
    for (let j = 0; j < 25; j++) {
      tree[`src/d${i}/f${j}`] = "x".repeat(i * 100 + j);
    }
  }
  await writeTree(local, tree);

  const { events, sentBytes } = await copySourceIn(client, local);

  assertSteady(events, sentBytes);
  assertKnownTotal(events, sentBytes);
});

test("copy in total of names and links", async (t) => {
  const { client, local } = await startCopyEndpoint(t);
  const folder = `src/${"d".repeat(60)}`;
  const tree: Record<string, string> = { src: "/", [folder]: "/" };
  for (let i = 0; i < 200; i++) {
    tree[`${folder}/${String(i).padStart(60, "f")}`] = "x";
  }
  await writeTree(local, tree);
  // Stored once, then as a link entry.
  await writeFile(join(local, "src/big"), patternBytes(512 * 1024));
  await link(join(local, "src/big"), join(local, "src/big-again"));

  const { events, sentBytes } = await copySourceIn(client, local);

  assertKnownTotal(events, sentBytes);
});

test("copy out of file reports total", async (t) => {
  const { client, local, rootfs } = await startCopyEndpoint(t);
  await writeFile(join(rootfs, "a.bin"), patternBytes(2 * 1024 * 1024 + 7));
  const events: CopyProgress[] = [];

  const summary = await copyFromContainer(
    client,
    { containerId, path: "/a.bin" },
    join(local, "a.bin"),
    { onProgress: (event) => events.push(event) },
  );

  assertSteady(events, summary.bytes);
  assert.equal(events[0]?.totalBytes, summary.bytes);
});

test("copy out of directory has no total", async (t) => {
  const { client, local, rootfs } = await startCopyEndpoint(t);
  await writeTree(rootfs, { data: "/" });
  await writeFile(join(rootfs, "data/a.bin"), patternBytes(1024 * 1024));
  const events: CopyProgress[] = [];

  const summary = await copyFromContainer(
    client,
    { containerId, path: "/data" },
    join(local, "data"),
    { onProgress: (event) => events.push(event) },
  );

  assertSteady(events, summary.bytes);
  assert.ok(events.every((event) => event.totalBytes === undefined));
});

test("rejecting async callbacks fail the copy", async (t) => {
  const { client, local, rootfs } = await startCopyEndpoint(t);
  await writeFile(join(rootfs, "a.bin"), patternBytes(4 * 1024 * 1024));
  await writeFile(join(local, "b.bin"), patternBytes(4 * 1024 * 1024));
  const rejecting = async () => {
    throw new Error("no room for progress");
  };

  await assert.rejects(
    copyFromContainer(
      client,
      { containerId, path: "/a.bin" },
      join(local, "a.bin"),
      { onProgress: rejecting },
    ),
    /the onProgress callback threw: no room for progress/,
  );
  await assert.rejects(
    copyIntoContainer(
      client,
      join(local, "b.bin"),
      { containerId, path: "/b.bin" },
      { onProgress: rejecting },
    ),
    /the onProgress callback threw: no room for progress/,
  );

  // Nothing of the failed copy out is left beside its destination.
  assert.deepEqual(await readdir(local), ["b.bin"]);
});

test("throwing onWarning of a local warning named", async (t) => {
  const { client, local } = await startCopyEndpoint(t);
  await writeTree(local, { src: "/", "src/a.txt": "a" });
  const source = join(local, "src");
  // The packer skips a FIFO with a warning, on the client's side.
  execFileSync("mkfifo", [join(source, "pipe")]);

  await assert.rejects(
    copyIntoContainer(
      client,
      source,
      { containerId, path: "/src" },
      {
        onWarning: () => {
          throw new Error("warnings not allowed");
        },
      },
    ),
    /the onWarning callback threw: warnings not allowed/,
  );
});
