/**
 * A container root is released only once the copy's file work has
 * settled: a server that unmounts a snapshot at release would otherwise
 * find it busy while a canceled copy still has files open in it.
 */
import assert from "node:assert/strict";
import { readdirSync, readlinkSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  Code,
  ContainerPath,
  type ContainerRoots,
  connect,
  ReadStream,
  TransferError,
  TransferServer,
} from "../../src/index.js";
import { protocols } from "../helpers/endpoint.js";
import { rawTar } from "../helpers/raw-tar.js";

/** Descriptors of this process that point under `dir`. */
function openUnder(dir: string): string[] {
  const open: string[] = [];
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(`${dir}/`)) {
        open.push(target);
      }
    } catch {
      // Closed since the listing.
    }
  }
  return open;
}

for (const protocol of protocols) {
  test(`canceled copy in releases its root after its files over ${protocol}`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "ct-release-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const rootfs = join(dir, "rootfs");
    await mkdir(rootfs);
    const openAtRelease: string[][] = [];
    const roots: ContainerRoots = {
      async withRoot(_namespace, _id, work) {
        try {
          return await work(rootfs);
        } finally {
          openAtRelease.push(openUnder(rootfs));
        }
      },
    };
    const server = new TransferServer({ containers: roots });
    const socket = join(dir, "s.sock");
    await server.listen({ [protocol]: socket });
    const client = connect({ address: socket, protocol });
    t.after(async () => {
      await client.close();
      await server.close();
    });

    // A large file is written with an open descriptor, in parts, as its
    // body arrives; the client stops in the middle of it.
    const size = 256 * 1024 * 1024;
    const header = rawTar([{ name: "big", size }], { trailer: false });
    const controller = new AbortController();
    async function* archive() {
      yield header;
      const block = Buffer.alloc(1024 * 1024, 7);
      for (let sent = 0; sent < size; sent += block.length) {
        if (sent === 32 * 1024 * 1024) {
          controller.abort(new Error("test stops the copy"));
        }
        yield block;
      }
    }

    const error = await client
      .transfer(
        new ReadStream(archive()),
        new ContainerPath({ containerId: "c1", path: "/" }),
        { signal: controller.signal },
      )
      .then(
        () => undefined,
        (failure: unknown) => failure,
      );
    for (let i = 0; i < 100 && openAtRelease.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }

    assert.ok(error instanceof TransferError, String(error));
    assert.equal(error.code, Code.Canceled);
    assert.deepEqual(openAtRelease, [[]]);
  });
}
