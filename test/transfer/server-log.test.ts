/**
 * The server's log of transfers that end early: a client that stops
 * reading on purpose is logged as canceled, not as a failure.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import {
  copyFromContainer,
  statContainerPath,
} from "../../src/client/index.js";
import type { LogFields, Logger, Transferrer } from "../../src/server/index.js";
import {
  ContainerPath,
  type Progress,
  ReadStream,
} from "../../src/transfer/index.js";
import { startEndpoint } from "../helpers/endpoint.js";
import { rawTar } from "../helpers/raw-tar.js";

interface Entry {
  level: "info" | "warn" | "error";
  message: string;
  fields: LogFields | undefined;
}

function recordingLogger(entries: Entry[]): Logger {
  return {
    info: (message, fields) => entries.push({ level: "info", message, fields }),
    warn: (message, fields) => entries.push({ level: "warn", message, fields }),
    error: (message, fields) =>
      entries.push({ level: "error", message, fields }),
  };
}

/** Waits up to 5 s for an entry with `message`. */
async function entryWith(entries: Entry[], message: string): Promise<Entry> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const found = entries.find((entry) => entry.message === message);
    if (found !== undefined) {
      return found;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(
    `no "${message}" entry in: ${entries.map((entry) => entry.message).join(", ")}`,
  );
}

test("stat of a large file logs a cancel", async (t) => {
  const entries: Entry[] = [];
  const endpoint = await startEndpoint(t, "ttrpc", {
    log: recordingLogger(entries),
  });
  const rootfs = await endpoint.addContainer("c1");
  await writeFile(join(rootfs, "big"), Buffer.alloc(8 * 1024 * 1024));

  const stat = await statContainerPath(endpoint.client, {
    containerId: "c1",
    path: "/big",
  });

  assert.equal(stat.size, 8 * 1024 * 1024);
  const canceled = await entryWith(entries, "transfer canceled");
  assert.equal(canceled.level, "info");
  assert.equal(canceled.fields?.code, "canceled");
  // The stat grants a small window, so the server sent little of the
  // file's content before the cancel.
  const sent = /after (\d+) bytes/.exec(String(canceled.fields?.error));
  assert.ok(sent, String(canceled.fields?.error));
  assert.ok(Number(sent[1]) <= 256 * 1024, sent[0]);
  assert.equal(
    entries.some((entry) => entry.level === "error"),
    false,
    entries.map((entry) => entry.message).join(", "),
  );
});

test("missing path logs at info", async (t) => {
  const entries: Entry[] = [];
  const endpoint = await startEndpoint(t, "ttrpc", {
    log: recordingLogger(entries),
  });
  await endpoint.addContainer("c1");

  await assert.rejects(
    copyFromContainer(
      endpoint.client,
      { containerId: "c1", path: "/absent" },
      join(endpoint.dir, "out"),
    ),
  );

  const failed = await entryWith(entries, "transfer failed");
  assert.equal(failed.level, "info");
  assert.equal(failed.fields?.code, "not found");
});

test("archive that ends early logs at warn", async (t) => {
  const entries: Entry[] = [];
  const endpoint = await startEndpoint(t, "ttrpc", {
    log: recordingLogger(entries),
  });
  await endpoint.addContainer("c1");

  // What the server receives when a ttrpc client cancels a copy in: the
  // data stream ends, here before the end-of-archive marker.
  await assert.rejects(
    endpoint.client.transfer(
      new ReadStream([rawTar([{ name: "a", body: "x" }], { trailer: false })]),
      new ContainerPath({ containerId: "c1", path: "/" }),
    ),
    /truncated/,
  );

  const failed = await entryWith(entries, "transfer failed");
  assert.equal(failed.level, "warn");
  assert.equal(failed.fields?.code, "data loss");
});

test("full stream registry is logged", async (t) => {
  const entries: Entry[] = [];
  const endpoint = await startEndpoint(t, "ttrpc", {
    log: recordingLogger(entries),
    streams: { maxStreams: 1 },
  });
  const first = await endpoint.client.streams.create("first");
  t.after(() => first.abort());

  await assert.rejects(
    endpoint.client.streams.create("second"),
    /too many streams: the limit is 1/,
  );

  const rejected = await entryWith(entries, "stream rejected");
  assert.equal(rejected.level, "warn");
  assert.match(String(rejected.fields?.error), /the limit is 1/);
});

test("warnings past the first 100 are counted, not logged", async (t) => {
  const entries: Entry[] = [];
  const endpoint = await startEndpoint(t, "ttrpc", {
    log: recordingLogger(entries),
  });
  await endpoint.addContainer("c1");
  const fifos = Array.from({ length: 250 }, (_, i) => ({
    name: `fifo-${i}`,
    type: "6",
  }));

  await endpoint.client.transfer(
    new ReadStream([rawTar(fifos)]),
    new ContainerPath({ containerId: "c1", path: "/" }),
  );

  const skipped = entries.filter(
    (entry) => entry.fields?.code === "type-skipped",
  );
  assert.equal(skipped.length, 100);
  const summary = await entryWith(
    entries,
    "150 more warnings of the copy not logged",
  );
  assert.equal(summary.level, "warn");
});

test("progress events past the queue limit are dropped and counted", async (t) => {
  const entries: Entry[] = [];
  const events = 15_000;
  const flood: Transferrer = {
    name: "flood",
    async transfer(source, destination, context) {
      if (
        source.type !== "ContainerPath" ||
        destination.type !== "ContainerPath"
      ) {
        return false;
      }
      for (let i = 0; i < events; i++) {
        void context.progress({
          event: "warning",
          name: `/e${i}`,
          parents: ["vanished", "x"],
        });
      }
      return true;
    },
  };
  const endpoint = await startEndpoint(t, "ttrpc", {
    log: recordingLogger(entries),
    transferrers: [flood],
  });
  const received: Progress[] = [];

  await endpoint.client.transfer(
    new ContainerPath({ containerId: "c1", path: "/a" }),
    new ContainerPath({ containerId: "c1", path: "/b" }),
    { onProgress: (event) => received.push(event) },
  );

  assert.equal(received.length, 10_000 + 1);
  const last = received.at(-1);
  assert.deepEqual(last?.parents, [
    "warnings-dropped",
    "5000 more warnings were left out, because they came faster than the " +
      "client read them",
  ]);
  const logged = await entryWith(
    entries,
    "progress events dropped: the client read them too slowly",
  );
  assert.equal(logged.fields?.dropped, 5000);
});
