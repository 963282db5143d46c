/**
 * Bytes after a tar archive's end-of-archive marker on a copy in: the
 * extractor discards up to 1 MiB of them, and more fails the transfer
 * with InvalidArgument on both transports, after the entries were
 * written.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, test } from "node:test";
import { extractArchive } from "../../src/archive/index.js";
import { Code, TransferError } from "../../src/errors/index.js";
import { ContainerPath, ReadStream } from "../../src/transfer/index.js";
import { makeLayout, rawArchive } from "../archive/fixtures.js";
import { protocols, startEndpoint } from "../helpers/endpoint.js";

const archive = rawArchive([{ path: "f.txt", body: "abc" }]);

function withTrailing(bytes: number): Buffer {
  return Buffer.concat([archive, Buffer.alloc(bytes, 7)]);
}

for (const protocol of protocols) {
  describe(`trailing data over ${protocol}`, () => {
    test("short trailing data is discarded", async (t) => {
      const endpoint = await startEndpoint(t, protocol);
      const rootfs = await endpoint.addContainer("c1");

      await endpoint.client.transfer(
        new ReadStream(Readable.from([withTrailing(10 * 1024)])),
        new ContainerPath({ containerId: "c1", path: "/" }),
      );

      assert.equal(await readFile(join(rootfs, "f.txt"), "utf8"), "abc");
    });

    test("long trailing data is invalid", async (t) => {
      const endpoint = await startEndpoint(t, protocol);
      const rootfs = await endpoint.addContainer("c1");

      const error = await endpoint.client
        .transfer(
          new ReadStream(Readable.from([withTrailing(2 * 1024 * 1024)])),
          new ContainerPath({ containerId: "c1", path: "/" }),
        )
        .then(
          () => undefined,
          (failure: unknown) => failure,
        );

      assert.ok(error instanceof TransferError, String(error));
      assert.equal(error.code, Code.InvalidArgument, error.message);
      assert.match(error.message, /follow the end-of-archive marker/);
      // Extraction is not atomic: the entry before the marker stays.
      assert.equal(await readFile(join(rootfs, "f.txt"), "utf8"), "abc");
      assert.equal(endpoint.server.registry.size, 0);
    });
  });
}

test("extractArchive fails a source with long trailing data", async (t) => {
  const layout = await makeLayout(t);
  const source = Readable.from([archive, Buffer.alloc(4096), Buffer.alloc(1)]);

  await extractArchive(layout.root, "/", source, { maxTrailingBytes: 4096 });
  await new Promise((resolve) => source.once("close", resolve));

  assert.ok(source.errored instanceof TransferError, String(source.errored));
  assert.equal(source.errored.code, Code.InvalidArgument);
});
