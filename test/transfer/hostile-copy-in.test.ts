import assert from "node:assert/strict";
import { mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { ContainerPath, ReadStream } from "../../src/transfer/index.js";
import { startEndpoint } from "../helpers/endpoint.js";
import { type RawEntry, rawTar } from "../helpers/raw-tar.js";

/** Lists every path below `dir` with file contents, for before/after checks. */
async function snapshot(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (path: string) => {
    for (const entry of await readdir(path, { withFileTypes: true })) {
      const full = join(path, entry.name);
      if (entry.isDirectory()) {
        found.push(`${full}/`);
        await walk(full);
      } else if (entry.isFile()) {
        found.push(`${full}=${await readFile(full, "utf8")}`);
      } else {
        found.push(full);
      }
    }
  };
  await walk(dir);
  return found.sort();
}

const cases: { name: string; entries: RawEntry[] }[] = [
  {
    name: "dot-dot name",
    entries: [{ name: "../../outside/escaped", body: "x" }],
  },
  { name: "absolute name", entries: [{ name: "/outside-abs", body: "x" }] },
  {
    name: "symlink then through it",
    entries: [
      { name: "link", type: "2", linkname: "../../outside" },
      { name: "link/escaped", body: "x" },
    ],
  },
  {
    name: "absolute symlink then through",
    entries: [
      { name: "abs", type: "2", linkname: "/" },
      { name: "abs/escaped", body: "x" },
    ],
  },
  {
    name: "hard link to outside",
    entries: [{ name: "hard", type: "1", linkname: "../../outside/secret" }],
  },
];

for (const { name, entries } of cases) {
  test(`hostile copy in: ${name}`, async (t) => {
    const { client, dir, addContainer } = await startEndpoint(t, "ttrpc");
    const rootfs = await addContainer("c1");
    const outside = join(dir, "root", "outside");
    await mkdir(outside);
    await writeFile(join(outside, "secret"), "keep me");
    const before = await snapshot(dir);

    const result = await client
      .transfer(
        new ReadStream([rawTar(entries)]),
        new ContainerPath({ containerId: "c1", path: "/" }),
      )
      .then(
        () => "ok",
        (error: Error) => error.message,
      );

    const after = (await snapshot(dir)).filter((p) => !p.startsWith(rootfs));
    const beforeOutside = before.filter((p) => !p.startsWith(rootfs));
    assert.deepEqual(after, beforeOutside, `result: ${result}`);
    assert.equal(await readFile(join(outside, "secret"), "utf8"), "keep me");
  });
}

test("hostile copy in: existing symlink", async (t) => {
  const { client, dir, addContainer } = await startEndpoint(t, "ttrpc");
  const rootfs = await addContainer("c1");
  const outside = join(dir, "root", "outside");
  await mkdir(outside);
  await symlink(outside, join(rootfs, "planted"));
  const before = await snapshot(outside);

  await client
    .transfer(
      new ReadStream([rawTar([{ name: "planted/escaped", body: "x" }])]),
      new ContainerPath({ containerId: "c1", path: "/" }),
    )
    .catch(() => {});

  assert.deepEqual(await snapshot(outside), before);
});

test("truncated archive fails copy in", async (t) => {
  const { client, addContainer } = await startEndpoint(t, "ttrpc");
  await addContainer("c1");
  const archive = rawTar([{ name: "big", body: Buffer.alloc(5000, 1) }]);

  await assert.rejects(
    client.transfer(
      new ReadStream([archive.subarray(0, 2048)]),
      new ContainerPath({ containerId: "c1", path: "/" }),
    ),
  );
});
