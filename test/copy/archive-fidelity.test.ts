/**
 * What a copy keeps: names, hard links, empty directories, modes, mtimes
 * and, with `preserveOwnership`, owners; and what it skips with a
 * warning. Trees go in and back out.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  chmod,
  lchown,
  link,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { PassThrough, Readable, Writable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { test } from "node:test";
import { Parser } from "tar";
import {
  copyArchiveFromContainer,
  copyArchiveIntoContainer,
  copyFromContainer,
  copyIntoContainer,
} from "../../src/client/index.js";
import { rawTar } from "../helpers/raw-tar.js";
import {
  type CopyEndpoint,
  containerId,
  inodeOf,
  startCopyEndpoint,
  writeTree,
} from "./harness.js";

const isRoot = process.getuid?.() === 0;

/** Path → type, mode, mtime and content (or link target) below `base`. */
async function describeTree(base: string): Promise<Record<string, string>> {
  const found: Record<string, string> = {};
  const walk = async (relative: string) => {
    for (const name of (await readdir(join(base, relative))).sort()) {
      const path = relative === "" ? name : `${relative}/${name}`;
      const full = join(base, path);
      const stats = await lstat(full);
      const mode = (stats.mode & 0o7777).toString(8);
      const mtime = Math.floor(stats.mtimeMs / 1000);
      if (stats.isDirectory()) {
        found[path] = `dir ${mode} ${mtime}`;
        await walk(path);
      } else if (stats.isSymbolicLink()) {
        found[path] = `link ${await readlink(full)}`;
      } else {
        const content = await readFile(full, "utf8");
        found[path] = `file ${mode} ${mtime} ${content}`;
      }
    }
  };
  await walk("");
  return found;
}

/** Copies `local/src` to c1:/data and back to `local/out`. */
async function roundTrip(endpoint: CopyEndpoint): Promise<void> {
  const { client, local } = endpoint;
  await copyIntoContainer(client, join(local, "src"), {
    containerId,
    path: "/data",
  });
  await copyFromContainer(
    client,
    { containerId, path: "/data" },
    join(local, "out"),
  );
}

test("long and non-ASCII names", async (t) => {
  const endpoint = await startCopyEndpoint(t);
  const src = join(endpoint.local, "src");
  const long = "l".repeat(200);
  const deep = `${"d".repeat(90)}/${"e".repeat(90)}/${"f".repeat(90)}`;
  await writeTree(src, {
    "": "/",
    [long]: "long name",
    ünïcødé: "/",
    "ünïcødé/日本語のファイル.txt": "utf-8",
    [deep.split("/")[0]!]: "/",
    [deep.split("/").slice(0, 2).join("/")]: "/",
    [deep]: "deep path over 255 bytes",
    "space name.txt": "spaces",
    [`${"n".repeat(120)}\nsecond line`]: "newline in a long name",
    "newline-link": `->${"t".repeat(120)}\ntarget`,
  });

  await roundTrip(endpoint);

  const expected = await describeTree(src);
  assert.equal(Object.keys(expected).length, 9);
  assert.deepEqual(await describeTree(join(endpoint.rootfs, "data")), expected);
  assert.deepEqual(await describeTree(join(endpoint.local, "out")), expected);
});

test("hard links follow renamed top", async (t) => {
  const endpoint = await startCopyEndpoint(t);
  const src = join(endpoint.local, "src");
  await writeTree(src, { "": "/", a: "shared", sub: "/" });
  await link(join(src, "a"), join(src, "sub", "b"));

  // Both copies go to a new name, so the top entry and the hard link
  // targets under it are renamed in the archive.
  await roundTrip(endpoint);

  const data = join(endpoint.rootfs, "data");
  assert.equal(
    await inodeOf(join(data, "a")),
    await inodeOf(join(data, "sub/b")),
  );
  const out = join(endpoint.local, "out");
  assert.equal(
    await inodeOf(join(out, "a")),
    await inodeOf(join(out, "sub/b")),
  );
  assert.equal(await readFile(join(out, "sub/b"), "utf8"), "shared");
});

test("empty directories, modes and mtimes", async (t) => {
  const endpoint = await startCopyEndpoint(t);
  const src = join(endpoint.local, "src");
  await writeTree(src, {
    "": "/",
    empty: "/",
    private: "/",
    "private/secret": "s",
    "run.sh": "#!/bin/sh\n",
    "read-only": "r",
  });
  await chmod(join(src, "private"), 0o700);
  await chmod(join(src, "private/secret"), 0o600);
  await chmod(join(src, "run.sh"), 0o751);
  await chmod(join(src, "read-only"), 0o444);
  await chmod(join(src, "empty"), 0o775);
  let second = 1_600_000_000;
  for (const path of ["private/secret", "run.sh", "read-only", "empty"]) {
    second += 1000;
    await utimes(join(src, path), second, second);
  }
  await utimes(join(src, "private"), 1_500_000_000, 1_500_000_000);
  await utimes(src, 1_400_000_000, 1_400_000_000);

  await roundTrip(endpoint);

  const expected = await describeTree(src);
  assert.equal(expected.empty, "dir 775 1600004000");
  assert.deepEqual(await describeTree(join(endpoint.rootfs, "data")), expected);
  assert.deepEqual(await describeTree(join(endpoint.local, "out")), expected);
  const top = await lstat(join(endpoint.local, "out"));
  assert.equal(Math.floor(top.mtimeMs / 1000), 1_400_000_000);
});

test("special files skipped on copy in", async (t) => {
  const endpoint = await startCopyEndpoint(t);
  const src = join(endpoint.local, "src");
  await writeTree(src, { "": "/", kept: "k" });
  execFileSync("mkfifo", [join(src, "pipe")]);
  const server = createServer();
  await new Promise<void>((resolve) =>
    server.listen(join(src, "sock"), resolve),
  );
  t.after(() => server.close());
  if (isRoot) {
    execFileSync("mknod", [join(src, "null"), "c", "1", "3"]);
  }
  const warnings: string[] = [];

  await copyIntoContainer(
    endpoint.client,
    src,
    { containerId, path: "/data" },
    { onWarning: (code, message) => warnings.push(`${code}: ${message}`) },
  );

  assert.deepEqual(await readdir(join(endpoint.rootfs, "data")), ["kept"]);
  const expected = [
    new RegExp(`^type-skipped: skipped FIFO "${src}/pipe"`),
    new RegExp(`^socket-skipped: skipped socket "${src}/sock"`),
    ...(isRoot
      ? [new RegExp(`^type-skipped: skipped character device "${src}/null"`)]
      : []),
  ];
  assert.equal(warnings.length, expected.length, warnings.join("\n"));
  for (const pattern of expected) {
    assert.ok(
      warnings.some((warning) => pattern.test(warning)),
      `${pattern} in ${warnings.join("\n")}`,
    );
  }
});

test("every server warning arrives", async (t) => {
  const endpoint = await startCopyEndpoint(t);
  await mkdir(join(endpoint.rootfs, "in"));
  const fifos = Array.from({ length: 600 }, (_, i) => ({
    name: `p${i}`,
    type: "6",
  }));
  let warnings = 0;

  await copyArchiveIntoContainer(
    endpoint.client,
    Readable.from([rawTar(fifos)]),
    { containerId, path: "/in" },
    { onWarning: () => warnings++ },
  );

  assert.equal(warnings, 600);
});

test("server warnings reach the client", async (t) => {
  // The server skips these entries; only its Progress events tell the
  // client.
  const endpoint = await startCopyEndpoint(t);
  await mkdir(join(endpoint.rootfs, "in"));
  const archive = rawTar([
    { name: Buffer.from([0x61, 0xff]), body: "one" },
    { name: "dev", type: "3" },
    { name: "kept", body: "k" },
  ]);
  const inWarnings: string[] = [];

  await copyArchiveIntoContainer(
    endpoint.client,
    Readable.from([archive]),
    { containerId, path: "/in" },
    { onWarning: (code, _message, path) => inWarnings.push(`${code} ${path}`) },
  );

  assert.deepEqual(inWarnings, [
    "name-skipped /in/a\uFFFD",
    "type-skipped /in/dev",
  ]);
  assert.deepEqual(await readdir(join(endpoint.rootfs, "in")), ["kept"]);

  const data = join(endpoint.rootfs, "data");
  await mkdir(data);
  await writeFile(join(data, "kept"), "k");
  await writeFile(
    Buffer.concat([Buffer.from(`${data}/`), Buffer.from([0x62, 0xff])]),
    "x",
  );
  const outWarnings: string[] = [];

  await copyFromContainer(
    endpoint.client,
    { containerId, path: "/data" },
    join(endpoint.local, "out"),
    { onWarning: (code) => outWarnings.push(code) },
  );

  assert.deepEqual(outWarnings, ["name-skipped"]);
  assert.deepEqual(await readdir(join(endpoint.local, "out")), ["kept"]);
});

test("special files skipped on copy out", async (t) => {
  const endpoint = await startCopyEndpoint(t);
  const data = join(endpoint.rootfs, "data");
  await writeTree(data, { "": "/", kept: "k" });
  execFileSync("mkfifo", [join(data, "pipe")]);
  if (isRoot) {
    execFileSync("mknod", [join(data, "null"), "c", "1", "3"]);
  }
  const warnings: string[] = [];

  await copyFromContainer(
    endpoint.client,
    { containerId, path: "/data" },
    join(endpoint.local, "out"),
    { onWarning: (code, message) => warnings.push(`${code}: ${message}`) },
  );

  assert.deepEqual(await readdir(join(endpoint.local, "out")), ["kept"]);
  const out = join(endpoint.local, "out");
  const expected = [
    new RegExp(`^type-skipped: .*"${out}/pipe"`),
    ...(isRoot ? [new RegExp(`^type-skipped: .*"${out}/null"`)] : []),
  ];
  assert.equal(warnings.length, expected.length, warnings.join("\n"));
  for (const pattern of expected) {
    assert.ok(
      warnings.some((warning) => pattern.test(warning)),
      `${pattern} in ${warnings.join("\n")}`,
    );
  }
});

test("ownership kept only when asked", { skip: !isRoot }, async (t) => {
  const endpoint = await startCopyEndpoint(t);
  const { client, local, rootfs } = endpoint;
  await writeTree(local, { "in.txt": "i" });
  await lchown(join(local, "in.txt"), 1234, 5678);
  await writeTree(rootfs, { "out.txt": "o" });
  await lchown(join(rootfs, "out.txt"), 4321, 8765);
  const owner = async (path: string) => {
    const stats = await lstat(path);
    return `${stats.uid}:${stats.gid}`;
  };

  const location = (path: string) => ({ containerId, path });
  await copyIntoContainer(client, join(local, "in.txt"), location("/kept"), {
    preserveOwnership: true,
  });
  await copyIntoContainer(client, join(local, "in.txt"), location("/plain"));
  await copyFromContainer(client, location("/out.txt"), join(local, "kept"), {
    preserveOwnership: true,
  });
  await copyFromContainer(client, location("/out.txt"), join(local, "plain"));

  assert.equal(await owner(join(rootfs, "kept")), "1234:5678");
  assert.equal(await owner(join(rootfs, "plain")), "0:0");
  assert.equal(await owner(join(local, "kept")), "4321:8765");
  const self = `${process.getuid?.()}:${process.getgid?.()}`;
  assert.equal(await owner(join(local, "plain")), self);
});

test("special mode bits kept with owners", { skip: !isRoot }, async (t) => {
  const endpoint = await startCopyEndpoint(t);
  const { client, local, rootfs } = endpoint;
  const tree = join(local, "tree");
  await mkdir(join(tree, "shared"), { recursive: true });
  await mkdir(join(tree, "tmp"));
  await writeFile(join(tree, "small-setuid"), "s");
  await writeFile(join(tree, "large-setgid"), Buffer.alloc(200 * 1024, 1));
  const modes: [string, number][] = [
    ["small-setuid", 0o4755],
    ["large-setgid", 0o2755],
    ["shared", 0o2775],
    ["tmp", 0o1777],
  ];
  for (const [path, mode] of modes) {
    await chmod(join(tree, path), mode);
  }
  const modeOf = async (path: string) => (await lstat(path)).mode & 0o7777;
  const location = (path: string) => ({ containerId, path });

  await copyIntoContainer(client, tree, location("/kept"), {
    preserveOwnership: true,
  });
  await copyIntoContainer(client, tree, location("/plain"));
  await copyFromContainer(client, location("/kept"), join(local, "back"), {
    preserveOwnership: true,
  });

  for (const [path, mode] of modes) {
    assert.equal(await modeOf(join(rootfs, "kept", path)), mode, path);
    assert.equal(await modeOf(join(local, "back", path)), mode, path);
    assert.equal(
      await modeOf(join(rootfs, "plain", path)),
      mode & 0o1777,
      path,
    );
  }
});

test("tar stream into a directory", async (t) => {
  const { client, rootfs } = await startCopyEndpoint(t);
  await mkdir(join(rootfs, "dest"));
  const archive = rawTar([
    { name: "a/", type: "5" },
    { name: "a/b.txt", body: "from stdin" },
  ]);

  await copyArchiveIntoContainer(client, Readable.from([archive]), {
    containerId,
    path: "/dest",
  });

  assert.equal(
    await readFile(join(rootfs, "dest/a/b.txt"), "utf8"),
    "from stdin",
  );
  await assert.rejects(
    copyArchiveIntoContainer(client, Readable.from([archive]), {
      containerId,
      path: "/missing",
    }),
    /destination directory "c1:\/missing" does not exist/,
  );
});

test("tar stream out follows link", async (t) => {
  const { client, rootfs } = await startCopyEndpoint(t);
  await writeTree(rootfs, { real: "/", "real/f.txt": "x", ln: "->real" });
  const names = async (followLink: boolean) => {
    const sink = new PassThrough();
    const [archive] = await Promise.all([
      buffer(sink),
      copyArchiveFromContainer(client, { containerId, path: "/ln" }, sink, {
        followLink,
      }),
    ]);
    const found: string[] = [];
    new Parser({
      onReadEntry: (entry) => {
        found.push(entry.path);
        entry.resume();
      },
    }).end(archive);
    return found;
  };

  assert.deepEqual(await names(false), ["ln"]);
  assert.deepEqual(await names(true), ["ln/", "ln/f.txt"]);
});

test("tar stream out renamed, sink left open", async (t) => {
  // Standard output is a sink that the copy must not end. Following a
  // link renames the top entry on the client, and that copy used to wait
  // forever for its renamer to end.
  const { client, rootfs } = await startCopyEndpoint(t);
  await writeTree(rootfs, { "f.txt": "x", ln: "->f.txt" });
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });

  const summary = await copyArchiveFromContainer(
    client,
    { containerId, path: "/ln" },
    sink,
    { followLink: true, endSink: false },
  );

  assert.equal(summary.bytes, 2048);
  assert.equal(sink.writableEnded, false);
  const found: string[] = [];
  new Parser({
    onReadEntry: (entry) => {
      found.push(entry.path);
      entry.resume();
    },
  }).end(Buffer.concat(chunks));
  assert.deepEqual(found, ["ln"]);
});
