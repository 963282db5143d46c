/**
 * Node sources and sinks that emit 'error' before the transfer reads or
 * writes them, as file streams do for a path they cannot open: the
 * transfer rejects with that error instead of the process crashing on an
 * unhandled 'error' event.
 */
import assert from "node:assert/strict";
import { createReadStream, createWriteStream } from "node:fs";
import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  copyArchiveFromContainer,
  copyArchiveIntoContainer,
} from "../../src/client/index.js";
import { Code, TransferError } from "../../src/errors/index.js";
import {
  ContainerPath,
  ReadStream,
  WriteStream,
} from "../../src/transfer/index.js";
import { protocols, startEndpoint } from "../helpers/endpoint.js";

/** Asserts a NotFound TransferError whose message names `path`. */
function notFoundNaming(path: string) {
  return (error: unknown) => {
    assert.ok(error instanceof TransferError, String(error));
    assert.equal(error.code, Code.NotFound, error.message);
    assert.ok(error.message.includes(path), error.message);
    return true;
  };
}

for (const protocol of protocols) {
  describe(`stream errors over ${protocol}`, () => {
    test("write stream missing folder", async (t) => {
      const endpoint = await startEndpoint(t, protocol);
      const rootfs = await endpoint.addContainer("c1");
      await writeFile(join(rootfs, "f.txt"), "abc");
      const path = join(endpoint.dir, "absent", "x.tar");
      const sink = new WriteStream(createWriteStream(path));
      // The file stream fails to open while nothing reads it yet.
      await sleep(50);

      await assert.rejects(
        endpoint.client.transfer(
          new ContainerPath({ containerId: "c1", path: "/f.txt" }),
          sink,
        ),
        notFoundNaming(path),
      );
      await assert.rejects(sink.wait(), notFoundNaming(path));
    });

    test("read stream missing file", async (t) => {
      const endpoint = await startEndpoint(t, protocol);
      const rootfs = await endpoint.addContainer("c1");
      const path = join(endpoint.dir, "absent.tar");
      const source = new ReadStream(createReadStream(path));
      await sleep(50);

      await assert.rejects(
        endpoint.client.transfer(
          source,
          new ContainerPath({ containerId: "c1", path: "/" }),
        ),
        notFoundNaming(path),
      );
      await assert.rejects(source.wait(), notFoundNaming(path));
      assert.deepEqual(await readdir(rootfs), []);
    });

    test("archive out missing folder", async (t) => {
      const endpoint = await startEndpoint(t, protocol);
      const rootfs = await endpoint.addContainer("c1");
      await writeFile(join(rootfs, "f.txt"), "abc");
      const path = join(endpoint.dir, "absent", "x.tar");

      await assert.rejects(
        copyArchiveFromContainer(
          endpoint.client,
          { containerId: "c1", path: "/f.txt" },
          createWriteStream(path),
        ),
        notFoundNaming(path),
      );
    });

    test("archive in missing file", async (t) => {
      const endpoint = await startEndpoint(t, protocol);
      const rootfs = await endpoint.addContainer("c1");
      const path = join(endpoint.dir, "absent.tar");

      await assert.rejects(
        copyArchiveIntoContainer(endpoint.client, createReadStream(path), {
          containerId: "c1",
          path: "/",
        }),
        notFoundNaming(path),
      );
      assert.deepEqual(await readdir(rootfs), []);
    });
  });
}
