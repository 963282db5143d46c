import assert from "node:assert/strict";
import { link, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { type TestContext, test } from "node:test";
import { Parser, type ReadEntry } from "tar";
import { packPath } from "../../src/archive/index.js";
import {
  type RewriteOptions,
  rewriteArchive,
} from "../../src/client/copy-rewrite.js";
import { rawTar } from "../helpers/raw-tar.js";

interface ListedEntry {
  path: string;
  type: string;
  linkpath: string | undefined;
  body: string;
}

/** Lists the entries of a tar archive with node-tar's parser. */
async function listTar(archive: Buffer): Promise<ListedEntry[]> {
  const entries: ListedEntry[] = [];
  const bodies: Promise<void>[] = [];
  const parser = new Parser({
    onReadEntry: (entry: ReadEntry) => {
      const listed: ListedEntry = {
        path: entry.path,
        type: entry.type,
        linkpath: entry.linkpath || undefined,
        body: "",
      };
      entries.push(listed);
      bodies.push(
        entry.concat().then((body) => {
          listed.body = body.toString("utf8");
        }),
      );
    },
  });
  parser.end(archive);
  await Promise.all(bodies);
  return entries;
}

async function rewrite(
  archive: Buffer,
  options: RewriteOptions,
  chunkBytes = archive.length,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for (let i = 0; i < archive.length; i += chunkBytes) {
    chunks.push(archive.subarray(i, i + chunkBytes));
  }
  return buffer(Readable.from(chunks).pipe(rewriteArchive(options)));
}

async function sampleTree(t: TestContext, top = "top"): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "ct-rewrite-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const root = join(dir, top);
  await mkdir(join(root, "sub", "empty"), { recursive: true });
  await writeFile(join(root, "a.txt"), "alpha");
  await writeFile(join(root, "sub", "b.txt"), "beta");
  await link(join(root, "a.txt"), join(root, "sub", "hard"));
  await symlink("../a.txt", join(root, "sub", "link"));
  return dir;
}

test("rename top directory entries", async (t) => {
  const dir = await sampleTree(t);
  const archive = await buffer(packPath(dir, "top"));

  const entries = await listTar(
    await rewrite(archive, { rename: { from: "top", to: "renamed" } }),
  );

  assert.deepEqual(
    entries.map((entry) => entry.path),
    [
      "renamed/",
      "renamed/a.txt",
      "renamed/sub/",
      "renamed/sub/b.txt",
      "renamed/sub/empty/",
      "renamed/sub/hard",
      "renamed/sub/link",
    ],
  );
  const hard = entries.find((entry) => entry.path === "renamed/sub/hard");
  assert.equal(hard?.type, "Link");
  assert.equal(hard?.linkpath, "renamed/a.txt");
  const soft = entries.find((entry) => entry.path === "renamed/sub/link");
  assert.equal(soft?.linkpath, "../a.txt");
  const file = entries.find((entry) => entry.path === "renamed/sub/b.txt");
  assert.equal(file?.body, "beta");
});

test("rename to long non-ASCII name", async (t) => {
  const dir = await sampleTree(t);
  const archive = await buffer(packPath(dir, "top"));
  const name = `${"ü".repeat(60)}-${"x".repeat(90)}`;

  const entries = await listTar(
    await rewrite(archive, { rename: { from: "top", to: name } }),
  );

  assert.equal(entries[0]?.path, `${name}/`);
  const hard = entries.find((entry) => entry.path === `${name}/sub/hard`);
  assert.equal(hard?.linkpath, `${name}/a.txt`);
  assert.equal(
    entries.find((entry) => entry.path === `${name}/a.txt`)?.body,
    "alpha",
  );
});

test("rename keeps newline in names", async () => {
  const archive = rawTar([
    { name: "top/", type: "5" },
    { name: "top/a\nb", body: "nl" },
  ]);

  const entries = await listTar(
    await rewrite(archive, { rename: { from: "top", to: "renamed" } }),
  );

  assert.deepEqual(
    entries.map((entry) => entry.path),
    ["renamed/", "renamed/a\nb"],
  );
  assert.equal(entries[1]?.body, "nl");
});

test("rename from long name", async (t) => {
  const top = `long-${"n".repeat(120)}`;
  const dir = await sampleTree(t, top);
  const archive = await buffer(packPath(dir, top));

  const entries = await listTar(
    await rewrite(archive, { rename: { from: top, to: "short" } }),
  );

  assert.deepEqual(
    entries.map((entry) => entry.path).filter((p) => !p.startsWith("short")),
    [],
  );
  assert.equal(entries.length, 7);
});

test("rename root form archive", async (t) => {
  const dir = await sampleTree(t);
  const archive = await buffer(packPath(join(dir, "top"), "/"));

  const entries = await listTar(
    await rewrite(archive, { rename: { from: "", to: "new" } }),
  );

  assert.equal(entries[0]?.path, "new/");
  assert.equal(entries[1]?.path, "new/a.txt");
  const hard = entries.find((entry) => entry.path === "new/sub/hard");
  assert.equal(hard?.linkpath, "new/a.txt");
});

test("unmatched names pass byte for byte", async (t) => {
  const dir = await sampleTree(t);
  const archive = await buffer(packPath(dir, "top"));

  const output = await rewrite(archive, { rename: { from: "other", to: "x" } });

  assert.ok(output.equals(archive));
});

test("one-byte chunks give same output", async (t) => {
  const dir = await sampleTree(t);
  const archive = await buffer(packPath(dir, "top"));
  const options = { rename: { from: "top", to: "x".repeat(130) } };

  const whole = await rewrite(archive, options);
  const bytewise = await rewrite(archive, options, 1);

  assert.ok(bytewise.equals(whole));
});

test("whole body chunks pass as same objects", async () => {
  const body = Buffer.alloc(4096, 7);
  const archive = rawTar([{ name: "big.bin", body }]);
  const header = archive.subarray(0, 512);
  const bodyChunks = [Buffer.from(body.subarray(0, 2048)), body.subarray(2048)];
  const rest = archive.subarray(512 + body.length);
  const rewriter = rewriteArchive({ rename: { from: "big.bin", to: "b" } });
  const output: Buffer[] = [];
  rewriter.on("data", (chunk: Buffer) => output.push(chunk));
  const ended = new Promise((resolve) => rewriter.on("end", resolve));

  for (const chunk of [header, ...bodyChunks, rest]) {
    rewriter.write(chunk);
  }
  rewriter.end();
  await ended;

  assert.ok(output.includes(bodyChunks[0]!));
  assert.ok(output.includes(bodyChunks[1]!));
  const entries = await listTar(Buffer.concat(output));
  assert.equal(entries[0]?.path, "b");
  assert.equal(entries[0]?.body, body.toString("utf8"));
});

test("GNU long names are renamed", async () => {
  const longName = `top/${"g".repeat(150)}`;
  const archive = rawTar([
    { name: "top/", type: "5" },
    { name: "././@LongLink", type: "L", body: `${longName}\0` },
    { name: longName.slice(0, 99), body: "gnu" },
  ]);

  const entries = await listTar(
    await rewrite(archive, { rename: { from: "top", to: "dst" } }),
  );

  assert.deepEqual(
    entries.map((entry) => entry.path),
    ["dst/", `dst/${"g".repeat(150)}`],
  );
  assert.equal(entries[1]?.body, "gnu");
});

test("bad header checksum is rejected", async () => {
  const archive = rawTar([{ name: "top", body: "x" }]);
  archive[0] = "u".charCodeAt(0);

  await assert.rejects(
    rewrite(archive, { rename: { from: "top", to: "x" } }),
    /bad checksum/,
  );
});

test("unchanged whole entries pass as same chunk", async () => {
  const entries = rawTar(
    [
      { name: "a.txt", body: "alpha" },
      { name: "b.txt", body: "b".repeat(700) },
    ],
    { trailer: false },
  );
  const renamed = rawTar([{ name: "top", body: "x" }], { trailer: false });
  const trailer = Buffer.alloc(1024);
  const rewriter = rewriteArchive({ rename: { from: "top", to: "new" } });
  const output: Buffer[] = [];
  rewriter.on("data", (chunk: Buffer) => output.push(chunk));
  const ended = new Promise((resolve) => rewriter.on("end", resolve));

  for (const chunk of [entries, renamed, trailer]) {
    rewriter.write(chunk);
  }
  rewriter.end();
  await ended;

  assert.ok(output.includes(entries), "unchanged entries were copied");
  assert.ok(!output.includes(renamed), "the renamed entry passed unchanged");
  const listed = await listTar(Buffer.concat(output));
  assert.deepEqual(
    listed.map((entry) => entry.path),
    ["a.txt", "b.txt", "new"],
  );
});
