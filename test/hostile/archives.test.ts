/**
 * Hostile archives through both copy directions: copy in, where the server
 * extracts under the container root, and copy out, where the client
 * extracts under a local destination. A sentinel folder `outside` sits
 * beside both. Each test compares everything outside the extraction base
 * before and after, and checks the documented outcome.
 */
import assert from "node:assert/strict";
import { mkdir, readdir, symlink } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { copyFromContainer } from "../../src/client/index.js";
import { TransferError } from "../../src/errors/index.js";
import type { Transferrer } from "../../src/server/index.js";
import { sendBytes } from "../../src/streaming/index.js";
import { ContainerPath, ReadStream } from "../../src/transfer/index.js";
import {
  type CopyEndpoint,
  containerId,
  readTree,
  startCopyEndpoint,
  type Tree,
  writeTree,
} from "../copy/harness.js";
import { type RawEntry, rawTar } from "../helpers/raw-tar.js";

type Direction = "copy in" | "copy out";
const directions: Direction[] = ["copy in", "copy out"];

interface Case {
  name: string;
  /** Archives copied one after the other; entries sit under `data/`. */
  archives: (outside: string) => Buffer[];
  /** Prepares the extraction base (the folder that gets `data`). */
  plant?: (base: string, outside: string) => Promise<void>;
  /**
   * Expected outcome: "fail" when every copy must fail with `pattern`, "ok"
   * when all must succeed, "contained" when either is fine.
   */
  expect: "fail" | "ok" | "contained";
  pattern?: RegExp;
  /** Tree expected under `base/data` when the copies succeed. */
  inside?: Tree;
  /**
   * Path, relative to the root, where copy in puts the entry written
   * through an escaping symlink: the server resolves symlinks inside the
   * container root. Copy out drops that entry with a warning instead.
   */
  redirected?: (outside: string) => string;
}

const outsidePath = "../../../../../../outside";

const cases: Case[] = [
  {
    name: "symlink chain out",
    archives: () => [
      rawTar([
        { name: "data/", type: "5" },
        { name: "data/a", type: "2", linkname: "b" },
        { name: "data/b", type: "2", linkname: "c" },
        { name: "data/c", type: "2", linkname: outsidePath },
        { name: "data/a/escaped", body: "x" },
      ]),
    ],
    expect: "contained",
    redirected: () => "outside/escaped",
  },
  {
    name: "symlink to host path",
    archives: (outside) => [
      rawTar([
        { name: "data/", type: "5" },
        { name: "data/abs", type: "2", linkname: outside },
        { name: "data/abs/escaped", body: "x" },
      ]),
    ],
    expect: "contained",
    redirected: (outside) => `${outside.slice(1)}/escaped`,
  },
  {
    name: "symlink out across copies",
    archives: () => [
      rawTar([
        { name: "data/", type: "5" },
        { name: "data/link", type: "2", linkname: outsidePath },
      ]),
      rawTar([
        { name: "data/", type: "5" },
        { name: "data/link/escaped", body: "x" },
      ]),
    ],
    expect: "contained",
  },
  {
    name: "hard link to host path",
    archives: (outside) => [
      rawTar([
        { name: "data/", type: "5" },
        { name: "data/hard", type: "1", linkname: `${outside}/secret` },
        { name: "data/hard", body: "overwritten" },
      ]),
    ],
    expect: "contained",
  },
  {
    name: "hard link to escaping symlink",
    archives: () => [
      rawTar([
        { name: "data/", type: "5" },
        { name: "data/soft", type: "2", linkname: `${outsidePath}/secret` },
        { name: "data/hard", type: "1", linkname: "data/soft" },
        { name: "data/hard", body: "overwritten" },
      ]),
    ],
    expect: "contained",
  },
  {
    name: "devices and fifo",
    archives: () => [
      rawTar([
        { name: "data/", type: "5" },
        { name: "data/char", type: "3" },
        { name: "data/block", type: "4" },
        { name: "data/fifo", type: "6" },
        { name: "data/ok", body: "fine" },
      ]),
    ],
    expect: "ok",
    inside: { ok: "fine" },
  },
  {
    name: "directory over planted symlink",
    plant: async (base, outside) => {
      await mkdir(join(base, "data"), { recursive: true });
      await symlink(outside, join(base, "data", "planted"));
    },
    archives: () => [
      rawTar([
        { name: "data/", type: "5" },
        { name: "data/planted/", type: "5" },
        { name: "data/planted/escaped", body: "x" },
      ]),
    ],
    expect: "contained",
  },
  {
    name: "several MiB PAX header",
    archives: () => [
      rawTar([
        { name: "data/", type: "5" },
        { name: "PaxHeader/big", type: "x", body: paxRecord(4 << 20) },
        { name: "data/after", body: "x" },
      ]),
    ],
    expect: "fail",
    pattern: /extended header of \d+ bytes is over the 1 MiB limit/,
  },
  {
    // 24 KB of header that named 12 000 levels once took the server's
    // memory past its heap limit.
    name: "name thousands of directories deep",
    archives: () => [
      rawTar([
        { name: "data/", type: "5" },
        {
          name: "PaxHeader/deep",
          type: "x",
          body: paxRecordOf("path", `data/${"d/".repeat(12_000)}leaf`),
        },
        { name: "placeholder", body: "x" },
      ]),
    ],
    expect: "fail",
    pattern: /more than 256 directories deep/,
  },
  {
    name: "directories one level deeper each",
    archives: () => [
      rawTar(
        Array.from({ length: 300 }, (_, i): RawEntry[] => [
          {
            name: "PaxHeader/level",
            type: "x",
            body: paxRecordOf("path", `data/${"d/".repeat(i + 1)}`),
          },
          { name: "placeholder/", type: "5" },
        ]).flat(),
      ),
    ],
    expect: "fail",
    pattern: /more than 256 directories deep/,
  },
  {
    name: "truncated archive",
    archives: () => [
      rawTar([
        { name: "data/", type: "5" },
        { name: "data/big", body: Buffer.alloc(5000, 1) },
      ]).subarray(0, 2048),
    ],
    expect: "fail",
    pattern: /truncat|end-of-archive|unexpected end|ended/i,
  },
  {
    name: "bytes after end-of-archive",
    archives: () => [
      Buffer.concat([
        rawTar([
          { name: "data/", type: "5" },
          { name: "data/ok", body: "fine" },
        ]),
        Buffer.alloc(10_000, 0x41),
      ]),
    ],
    expect: "ok",
    inside: { ok: "fine" },
  },
];

/** Returns one PAX record of about `size` bytes: `<length> comment=...\n`. */
function paxRecord(size: number): Buffer {
  return paxRecordOf("comment", "a".repeat(size));
}

/** Returns the PAX record `<length> key=value\n`. */
function paxRecordOf(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  let length = body.length;
  while (`${length}${body}`.length !== length) {
    length = `${length}${body}`.length;
  }
  return Buffer.from(`${length}${body}`);
}

/** Serves each copy out with the next archive of `queue`. */
function servingArchives(queue: Buffer[]): Transferrer {
  return {
    name: "hostile-archives",
    async transfer(source, destination, context) {
      if (
        source.type !== "ContainerPath" ||
        destination.type !== "WriteStream"
      ) {
        return false;
      }
      // The client asks for the path alone first, to learn its type.
      const bytes = source.noWalk
        ? rawTar([{ name: "data/", type: "5" }])
        : queue.shift();
      assert.ok(bytes, "more copies than archives");
      await sendBytes(destination.stream, [bytes], { signal: context.signal });
      return true;
    },
  };
}

/** Runs one copy in `direction` and resolves with its error message or "ok". */
async function copy(
  direction: Direction,
  endpoint: CopyEndpoint,
  archive: Buffer,
  base: string,
  warnings: string[] = [],
): Promise<string> {
  try {
    if (direction === "copy in") {
      await endpoint.client.transfer(
        new ReadStream([archive]),
        new ContainerPath({ containerId, path: "/" }),
      );
    } else {
      await copyFromContainer(
        endpoint.client,
        { containerId, path: "/data" },
        base,
        {
          onWarning: (code, _message, path) => warnings.push(`${code} ${path}`),
        },
      );
    }
    return "ok";
  } catch (error) {
    assert.ok(error instanceof TransferError, String(error));
    return error.message;
  }
}

/** Everything in the test folder except the extraction base. */
async function outsideBase(dir: string, base: string): Promise<Tree> {
  const prefix = `${base.slice(dir.length + 1)}/`;
  return Object.fromEntries(
    Object.entries(await readTree(dir)).filter(
      ([path]) => !path.startsWith(prefix) && `${path}/` !== prefix,
    ),
  );
}

for (const direction of directions) {
  for (const hostile of cases) {
    test(`${direction}: ${hostile.name}`, async (t) => {
      const queue: Buffer[] = [];
      const endpoint = await startCopyEndpoint(t, {
        transferrers: [servingArchives(queue)],
      });
      const outside = join(endpoint.dir, "outside");
      await writeTree(outside, { "": "/", secret: "keep me", sub: "/" });
      const base =
        direction === "copy in"
          ? endpoint.rootfs
          : join(endpoint.local, "dest");
      await mkdir(base, { recursive: true });
      await hostile.plant?.(base, outside);
      const archives = hostile.archives(outside);
      queue.push(...archives);
      const before = await outsideBase(endpoint.dir, base);

      const results: string[] = [];
      const warnings: string[] = [];
      for (const archive of archives) {
        results.push(await copy(direction, endpoint, archive, base, warnings));
      }

      const label = `results: ${results.join(" | ")}`;
      t.diagnostic(label);
      assert.deepEqual(await outsideBase(endpoint.dir, base), before, label);
      const inside = await readTree(base);
      for (const [path, value] of Object.entries(inside)) {
        assert.notEqual(value, "?", `special file ${path} created`);
      }
      if (hostile.expect === "ok") {
        assert.deepEqual(
          results,
          archives.map(() => "ok"),
        );
      }
      if (hostile.expect === "fail") {
        for (const result of results) {
          assert.match(result, hostile.pattern ?? /./);
        }
      }
      const redirected = hostile.redirected?.(outside);
      if (redirected !== undefined && direction === "copy in") {
        assert.equal(inside[redirected], "x", `${redirected} inside the root`);
      }
      if (redirected !== undefined && direction === "copy out") {
        const top = redirected.split("/")[0];
        assert.deepEqual(warnings, [`outside-skipped /${top}`]);
      }
      for (const [path, value] of Object.entries(hostile.inside ?? {})) {
        assert.equal(inside[`data/${path}`], value, `data/${path}`);
      }
      const left = await readdir(base);
      assert.ok(
        left.every((name) => !name.startsWith(".containerd-transfer-")),
        `staging left in ${left.join(", ")}`,
      );
    });
  }
}

/**
 * 20 000 entries of one empty file: each entry costs about six system
 * calls, so the bound of 60 s only catches a cost that grows faster than
 * the entry count. The same name keeps the test from creating 20 000
 * inodes.
 */
const bombEntries: RawEntry[] = [{ name: "data/", type: "5" }];
for (let i = 0; i < 20_000; i++) {
  bombEntries.push({ name: "data/empty" });
}

for (const direction of directions) {
  test(`${direction}: tar bomb of empty entries`, async (t) => {
    const bomb = rawTar(bombEntries);
    const endpoint = await startCopyEndpoint(t, {
      transferrers: [servingArchives([bomb])],
    });
    const base =
      direction === "copy in" ? endpoint.rootfs : join(endpoint.local, "dest");
    await mkdir(base, { recursive: true });
    const started = Date.now();

    const result = await copy(direction, endpoint, bomb, base);

    const seconds = (Date.now() - started) / 1000;
    assert.equal(result, "ok");
    assert.ok(seconds < 60, `took ${seconds} s`);
    assert.deepEqual(await readTree(join(base, "data")), { empty: "" });
  });
}
