/**
 * ContainerPath ends that try to leave the container root: dot-dot paths,
 * symlinks planted in the container, and container ids that are paths.
 * Reads must not return bytes from outside the root, and writes must not
 * change anything beside it.
 */
import assert from "node:assert/strict";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { Code, TransferError } from "../../src/errors/index.js";
import {
  ContainerPath,
  ReadStream,
  WriteStream,
} from "../../src/transfer/index.js";
import {
  type CopyEndpoint,
  readTree,
  startCopyEndpoint,
} from "../copy/harness.js";
import { rawTar } from "../helpers/raw-tar.js";

const secret = "host secret";

/** Creates `dir/outside/secret` beside the root. */
async function plantOutside(endpoint: CopyEndpoint): Promise<string> {
  const outside = join(endpoint.dir, "outside");
  await mkdir(outside);
  await writeFile(join(outside, "secret"), secret);
  return outside;
}

/** Copies `path` of container `containerId` out and resolves with the bytes or the error. */
async function readOut(
  endpoint: CopyEndpoint,
  containerId: string,
  path: string,
): Promise<Buffer | TransferError> {
  const chunks: Buffer[] = [];
  const sink = new PassThrough();
  sink.on("data", (chunk: Buffer) => chunks.push(chunk));
  try {
    await endpoint.client.transfer(
      new ContainerPath({ containerId, path }),
      new WriteStream(sink),
    );
    return Buffer.concat(chunks);
  } catch (error) {
    return TransferError.from(error);
  }
}

const readPaths = [
  "/../../outside/secret",
  "../../../outside/secret",
  "/escape/secret",
  "/escape-abs/secret",
];

for (const path of readPaths) {
  test(`copy out of ${path} stays inside`, async (t) => {
    const endpoint = await startCopyEndpoint(t);
    const outside = await plantOutside(endpoint);
    await symlink("../../../outside", join(endpoint.rootfs, "escape"));
    await symlink(outside, join(endpoint.rootfs, "escape-abs"));

    const result = await readOut(endpoint, "c1", path);

    if (result instanceof TransferError) {
      assert.equal(result.code, Code.NotFound, result.message);
    } else {
      assert.equal(result.includes(secret), false, "the secret was read");
    }
  });
}

const writePaths = ["/../../outside", "/escape", "/escape-abs"];

for (const path of writePaths) {
  test(`copy into ${path} stays inside`, async (t) => {
    const endpoint = await startCopyEndpoint(t);
    const outside = await plantOutside(endpoint);
    await symlink("../../../outside", join(endpoint.rootfs, "escape"));
    await symlink(outside, join(endpoint.rootfs, "escape-abs"));
    const before = await readTree(outside);

    await endpoint.client
      .transfer(
        new ReadStream([rawTar([{ name: "secret", body: "overwritten" }])]),
        new ContainerPath({ containerId: "c1", path }),
      )
      .catch(() => {});

    assert.deepEqual(await readTree(outside), before);
  });
}

for (const containerId of ["..", "../c1", "c1/../c1", "/c1", ""]) {
  test(`container id ${JSON.stringify(containerId)} rejected`, async (t) => {
    const endpoint = await startCopyEndpoint(t);

    const result = await readOut(endpoint, containerId, "/");

    assert.ok(result instanceof TransferError, "the copy should fail");
    assert.equal(result.code, Code.InvalidArgument, result.message);
    assert.match(result.message, /invalid container id|missing container id/);
  });
}
