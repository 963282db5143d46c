/**
 * A file over 8 GiB, the largest size a USTAR header can hold, copied in
 * and out. Sources are sparse; the copies are not, so the test needs
 * about 8 GiB of free disk at a time. It runs last in this folder's
 * order and takes minutes, hence its own timeout.
 */
import assert from "node:assert/strict";
import { open, rm, stat, statfs, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { test } from "node:test";
import {
  protocol,
  runCli,
  startCopyEndpoint,
  startServeProcess,
} from "./harness.js";

const size = 8 * 1024 ** 3 + 4097;

/** Offsets that get a marker: the start, both sides of 8 GiB, the end. */
const markers = [0, 4 * 1024 ** 3 + 3, 8 * 1024 ** 3 - 8, size - 16];

function markerAt(offset: number): Buffer {
  return Buffer.from(offset.toString(16).padStart(16, "0"));
}

/** Creates a sparse file of `size` bytes with markers. */
async function writeSparse(path: string): Promise<void> {
  await writeFile(path, "");
  await truncate(path, size);
  const file = await open(path, "r+");
  try {
    for (const offset of markers) {
      await file.write(markerAt(offset), 0, 16, offset);
    }
  } finally {
    await file.close();
  }
}

async function assertMarkers(path: string): Promise<void> {
  assert.equal((await stat(path)).size, size);
  const file = await open(path, "r");
  try {
    for (const offset of markers) {
      const read = Buffer.alloc(16);
      await file.read(read, 0, 16, offset);
      assert.equal(read.toString(), markerAt(offset).toString(), `${offset}`);
    }
  } finally {
    await file.close();
  }
}

test("file over 8 GiB round trip", { timeout: 15 * 60_000 }, async (t) => {
  const { dir, root, rootfs, local } = await startCopyEndpoint(t);
  const disk = await statfs(dir);
  const freeBytes = disk.bavail * disk.bsize;
  if (freeBytes < size + 2 * 1024 ** 3) {
    t.skip(
      `needs ${size + 2 * 1024 ** 3} free bytes in ${dir}, has ${freeBytes}`,
    );
    return;
  }
  // The server and the copies run in their own processes, because the
  // test runner's promise tracking roughly halves their throughput.
  const socket = await startServeProcess(t, dir, root);
  const source = join(local, "sparse.bin");
  await writeSparse(source);
  const copy = async (from: string, to: string) => {
    const started = performance.now();
    const result = await runCli(socket, ["cp", "-q", from, to], {
      timeoutMs: 10 * 60_000,
    });
    assert.equal(result.status, 0, result.stderr);
    return (performance.now() - started) / 1000;
  };

  const inSeconds = await copy(source, "c1:/big.bin");
  await assertMarkers(join(rootfs, "big.bin"));

  // Copy out from a fresh sparse file, so that only one full copy is on
  // disk at a time.
  await rm(join(rootfs, "big.bin"));
  await rm(source);
  await writeSparse(join(rootfs, "big.bin"));
  const outSeconds = await copy("c1:/big.bin", join(local, "out.bin"));
  await assertMarkers(join(local, "out.bin"));

  t.diagnostic(
    `8 GiB + 4097 bytes: copy in ${inSeconds.toFixed(1)} s, copy out ` +
      `${outSeconds.toFixed(1)} s (${protocol})`,
  );
});
