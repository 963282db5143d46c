/**
 * Files of at most `smallFileBytes`, which extraction writes and packing
 * reads with synchronous calls, keep the guarantees of larger files.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import {
  lstat,
  mkdir,
  readdir,
  readFile,
  rename,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Parser, type ReadEntry } from "tar";
import { smallFileBytes } from "../../src/archive/entry-writer.js";
import { extractArchive, packPath } from "../../src/archive/index.js";
import { Code, TransferError } from "../../src/errors/index.js";
import {
  chunked,
  makeLayout,
  modes,
  outsideSnapshot,
  rawArchive,
  rawEntry,
  trailer,
  useMode,
} from "./fixtures.js";

const hiddenName = /\.ct-[0-9a-f]{12}$/;

/** Lists every name under `dir`, hidden ones included. */
async function listAll(dir: string): Promise<string[]> {
  const names = await readdir(dir, { recursive: true });
  return names.map(String).sort();
}

for (const mode of modes) {
  describe(`small files in ${mode} mode`, () => {
    test.beforeEach(() => useMode(mode));
    test.afterEach(() => useMode("pinned"));

    test("small file replaces symlink unfollowed", async (t) => {
      const layout = await makeLayout(t);
      const { root, outside } = layout;
      await symlink(join(outside, "secret"), join(root, "x"));
      await symlink("../outside/secret", join(root, "y"));
      const before = await outsideSnapshot(layout);

      await extractArchive(
        root,
        "/",
        chunked(
          rawArchive([
            { path: "x", body: "new x" },
            { path: "y", body: "new y" },
          ]),
        ),
      );

      assert.deepEqual(await outsideSnapshot(layout), before);
      assert.ok((await lstat(join(root, "x"))).isFile());
      assert.ok((await lstat(join(root, "y"))).isFile());
      assert.equal(await readFile(join(root, "x"), "utf8"), "new x");
      assert.equal(await readFile(join(root, "y"), "utf8"), "new y");
    });

    test("files at size limit leave no hidden names", async (t) => {
      const { root } = await makeLayout(t);
      const sizes = [0, 1, 512, smallFileBytes, smallFileBytes + 1];
      const entries = sizes.map((size, i) => ({
        path: `dir/f${i}`,
        body: Buffer.alloc(size, i + 1),
        mode: 0o640,
      }));

      const summary = await extractArchive(
        root,
        "/",
        chunked(rawArchive(entries), 4096),
      );

      assert.deepEqual(
        await listAll(join(root, "dir")),
        sizes.map((_, i) => `f${i}`),
      );
      for (const [i, size] of sizes.entries()) {
        const path = join(root, "dir", `f${i}`);
        assert.deepEqual(await readFile(path), Buffer.alloc(size, i + 1));
        assert.equal((await stat(path)).mode & 0o777, 0o640);
        assert.equal(
          (await stat(path)).mtime.toISOString(),
          "2020-01-02T03:04:05.000Z",
        );
      }
      const total = sizes.reduce((sum, size) => sum + size, 0);
      assert.deepEqual(summary, { entries: 5, skipped: 0, bytes: total });
    });

    test("small file rename error names path", async (t) => {
      const { root } = await makeLayout(t);
      const name = "n".repeat(300);

      await assert.rejects(
        extractArchive(
          root,
          "/dir",
          chunked(rawArchive([{ path: name, body: "x", pax: true }])),
        ),
        (error: unknown) =>
          error instanceof TransferError &&
          error.message.includes(`"/dir/${name}"`) &&
          error.message.includes("file name too long"),
      );
      assert.deepEqual(await listAll(join(root, "dir")), []);
    });

    test("small file over directory fails", async (t) => {
      const { root } = await makeLayout(t);
      await mkdir(join(root, "taken"));

      await assert.rejects(
        extractArchive(
          root,
          "/",
          chunked(rawArchive([{ path: "taken", body: "x" }])),
        ),
        (error: unknown) =>
          error instanceof TransferError &&
          error.code === Code.FailedPrecondition &&
          error.message.includes('"/taken"'),
      );
      assert.ok((await lstat(join(root, "taken"))).isDirectory());
      const hidden = (await listAll(root)).filter((n) => hiddenName.test(n));
      assert.deepEqual(hidden, []);
    });

    test("truncated small file leaves nothing", async (t) => {
      const { root } = await makeLayout(t);
      const whole = rawEntry({ path: "cut", body: Buffer.alloc(3000, 7) });

      await assert.rejects(
        extractArchive(root, "/", chunked(whole.subarray(0, 2000))),
        (error: unknown) =>
          error instanceof TransferError && error.code === Code.DataLoss,
      );
      assert.deepEqual(await listAll(root), []);
    });
  });
}

test("parent swapped after small file stays pinned", async (t) => {
  useMode("pinned");
  const layout = await makeLayout(t);
  const { root, outside } = layout;
  await mkdir(join(root, "dir"));
  const before = await outsideSnapshot(layout);
  const first = rawEntry({ path: "dir/a", body: "a" });
  const second = Buffer.concat([
    rawEntry({ path: "dir/b", body: "b" }),
    trailer,
  ]);

  async function* source(): AsyncGenerator<Buffer> {
    yield first;
    // Swaps the directory for a symlink to the host folder once the
    // writer has it open for the first entry.
    for (let i = 0; i < 500 && !existsSync(join(root, "dir", "a")); i++) {
      await sleep(10);
    }
    await rename(join(root, "dir"), join(root, "moved"));
    await symlink(outside, join(root, "dir"));
    yield second;
  }

  await extractArchive(root, "/", Readable.from(source()));

  assert.deepEqual(await outsideSnapshot(layout), before);
  assert.equal(await readFile(join(root, "moved", "a"), "utf8"), "a");
  assert.equal(await readFile(join(root, "moved", "b"), "utf8"), "b");
});

/** Reads the entries of an archive with node-tar: name to body. */
async function readEntries(archive: Buffer): Promise<Map<string, Buffer>> {
  const entries = new Map<string, Buffer>();
  const parser = new Parser();
  parser.on("entry", (entry: ReadEntry) => {
    const chunks: Buffer[] = [];
    entry.on("data", (chunk: Buffer) => chunks.push(chunk));
    entry.on("end", () => entries.set(entry.path, Buffer.concat(chunks)));
  });
  await new Promise<void>((resolve, reject) => {
    parser.on("error", reject);
    parser.end(archive, resolve);
  });
  return entries;
}

test("pack gathers small files into chunks", async (t) => {
  const { root } = await makeLayout(t);
  const sizes = [0, 1, 511, 512, smallFileBytes, smallFileBytes + 1];
  await mkdir(join(root, "data"));
  for (const [i, size] of sizes.entries()) {
    await writeFile(join(root, "data", `s${i}`), Buffer.alloc(size, i + 1));
  }
  for (let i = 0; i < 200; i++) {
    await writeFile(join(root, "data", `m${i}`), Buffer.alloc(1000, i));
  }

  const chunks: Buffer[] = [];
  for await (const chunk of packPath(root, "/data")) {
    chunks.push(chunk as Buffer);
  }
  const entries = await readEntries(Buffer.concat(chunks));

  for (const [i, size] of sizes.entries()) {
    assert.deepEqual(entries.get(`data/s${i}`), Buffer.alloc(size, i + 1));
  }
  for (let i = 0; i < 200; i++) {
    assert.deepEqual(entries.get(`data/m${i}`), Buffer.alloc(1000, i));
  }
  // 200 files of 1 000 bytes take 1 536 bytes each with their header,
  // 300 KiB in all, which gathering puts in a handful of chunks.
  assert.ok(chunks.length < 30, `${chunks.length} chunks`);
});
