import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import {
  appendFile,
  chmod,
  link,
  mkdir,
  rm,
  symlink,
  truncate,
  utimes,
  writeFile,
} from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, test } from "node:test";
import { Parser, type ReadEntry } from "tar";
import {
  extractArchive,
  packChunks,
  packPath,
} from "../../src/archive/index.js";
import { chunkBytes } from "../../src/archive/pack-buffers.js";
import { Code, TransferError } from "../../src/errors/index.js";
import {
  collect,
  isRoot,
  type Layout,
  makeLayout,
  modes,
  useMode,
} from "./fixtures.js";

interface ListedEntry {
  path: string;
  type: string;
  mode: number | undefined;
  size: number;
  linkpath: string | undefined;
  uid: number | undefined;
  mtime: Date | undefined;
  devmaj: number | undefined;
  body: string;
}

/** Parses an archive with node-tar and returns its entries in order. */
async function list(archive: Buffer): Promise<ListedEntry[]> {
  const entries: ListedEntry[] = [];
  const parser = new Parser({ strict: true });
  const done = new Promise<void>((resolve, reject) => {
    parser.on("end", () => resolve());
    parser.on("error", reject);
  });
  parser.on("entry", (entry: ReadEntry) => {
    const chunks: Buffer[] = [];
    entry.on("data", (chunk: Buffer) => chunks.push(chunk));
    entry.on("end", () =>
      entries.push({
        path: entry.path,
        type: entry.type,
        mode: entry.mode,
        size: entry.size,
        linkpath: entry.linkpath,
        uid: entry.uid,
        mtime: entry.mtime,
        devmaj: entry.header.devmaj,
        body: Buffer.concat(chunks).toString(),
      }),
    );
  });
  parser.end(archive);
  await done;
  return entries;
}

/**
 * Packs `path` and returns the error code and message. Root bypasses file
 * permissions, so as root it runs the packer in a child process as the
 * user nobody (uid 65534).
 */
async function packAsUnprivileged(
  layout: Layout,
  path: string,
  mode: (typeof modes)[number],
): Promise<{ code: Code | undefined; message: string }> {
  if (!isRoot) {
    const error = await collect(packPath(layout.root, path)).then(
      () => undefined,
      (reason: unknown) => reason,
    );
    assert.ok(error instanceof TransferError, "packing should fail");
    return { code: error.code, message: error.message };
  }

  await chmod(layout.base, 0o755);
  await chmod(layout.root, 0o755);
  const modules = {
    archive: new URL("../../src/archive/index.js", import.meta.url).href,
    handle: new URL("../../src/archive/directory-handle.js", import.meta.url)
      .href,
  };
  const script = `
    const { packPath } = await import(${JSON.stringify(modules.archive)});
    const { forcePathMode } = await import(${JSON.stringify(modules.handle)});
    forcePathMode(${mode === "path"});
    try {
      for await (const _ of packPath(${JSON.stringify(layout.root)}, ${JSON.stringify(path)})) {}
      console.log(JSON.stringify({ message: "packing succeeded" }));
    } catch (error) {
      console.log(JSON.stringify({ code: error.code, message: error.message }));
    }`;
  const child = spawnSync(
    process.execPath,
    ["--input-type=module", "-e", script],
    { uid: 65534, gid: 65534, encoding: "utf8" },
  );
  assert.equal(child.status, 0, child.stderr);
  return JSON.parse(child.stdout);
}

const isTransferError = (code: Code, pattern: RegExp) => (error: unknown) =>
  error instanceof TransferError &&
  error.code === code &&
  pattern.test(error.message);

for (const mode of modes) {
  describe(`packPath in ${mode} mode`, () => {
    test("file entry is named by basename", async (t) => {
      useMode(mode);
      const { root } = await makeLayout(t);
      await mkdir(join(root, "tmp"));
      await writeFile(join(root, "tmp", "a.txt"), "hello");
      await chmod(join(root, "tmp", "a.txt"), 0o4751);
      const mtime = new Date("2001-02-03T04:05:06Z");
      await utimes(join(root, "tmp", "a.txt"), mtime, mtime);

      const entries = await list(await collect(packPath(root, "/tmp/a.txt")));

      assert.equal(entries.length, 1);
      assert.equal(entries[0]!.path, "a.txt");
      assert.equal(entries[0]!.type, "File");
      assert.equal(entries[0]!.body, "hello");
      assert.equal(entries[0]!.mode, 0o4751);
      assert.equal(entries[0]!.uid, process.getuid?.());
      assert.equal(entries[0]!.mtime?.getTime(), mtime.getTime());
    });

    test("directory walk in byte order", async (t) => {
      useMode(mode);
      const { root } = await makeLayout(t);
      await mkdir(join(root, "etc", "b"), { recursive: true });
      await mkdir(join(root, "etc", "empty"));
      for (const name of ["z", "B", "a", "b/inner", "é", "ａ"]) {
        await writeFile(join(root, "etc", name), name);
      }
      await symlink("/does/not/matter", join(root, "etc", "link"));

      const entries = await list(await collect(packPath(root, "etc")));

      assert.deepEqual(
        entries.map((entry) => entry.path),
        [
          "etc/",
          "etc/B",
          "etc/a",
          "etc/b/",
          "etc/b/inner",
          "etc/empty/",
          "etc/link",
          "etc/z",
          "etc/é",
          "etc/ａ",
        ],
      );
      const link = entries.find((entry) => entry.path === "etc/link");
      assert.equal(link?.type, "SymbolicLink");
      assert.equal(link?.linkpath, "/does/not/matter");
    });

    test("noWalk gives one directory entry", async (t) => {
      useMode(mode);
      const { root } = await makeLayout(t);
      await mkdir(join(root, "dir"));
      await writeFile(join(root, "dir", "file"), "x");

      const archive = await collect(packPath(root, "/dir", { noWalk: true }));
      const entries = await list(archive);

      assert.deepEqual(
        entries.map((entry) => [entry.path, entry.type]),
        [["dir/", "Directory"]],
      );
    });

    test("root packs as dot with children", async (t) => {
      useMode(mode);
      const { root } = await makeLayout(t);
      await mkdir(join(root, "bin"));
      await writeFile(join(root, "bin", "sh"), "#!");
      await writeFile(join(root, ".bashrc"), "");

      for (const path of ["", "/", ".", "/.."]) {
        const entries = await list(await collect(packPath(root, path)));
        assert.deepEqual(
          entries.map((entry) => entry.path),
          ["./", ".bashrc", "bin/", "bin/sh"],
          `path "${path}"`,
        );
      }
    });

    test("intermediate absolute symlink resolves inside", async (t) => {
      useMode(mode);
      const { root, outside } = await makeLayout(t);
      await mkdir(join(root, "run"));
      await writeFile(join(root, "run", "pid"), "inside");
      await mkdir(join(root, "var"));
      await symlink("/run", join(root, "var", "run"));
      // The same name on the host must not be what gets packed.
      await symlink(outside, join(root, "host"));

      const viaVar = await list(await collect(packPath(root, "/var/run/pid")));
      const viaHost = packPath(root, "/host/secret");

      assert.deepEqual(
        viaVar.map((entry) => [entry.path, entry.body]),
        [["pid", "inside"]],
      );
      await assert.rejects(
        collect(viaHost),
        isTransferError(Code.NotFound, /secret|host/),
      );
    });

    test("tree at and past the depth limit", async (t) => {
      useMode(mode);
      const { root } = await makeLayout(t);
      // 256 levels of directories below the root, and one more below that.
      const deepest = join(root, "top", ..."d".repeat(255).split(""));
      await mkdir(deepest, { recursive: true });
      await writeFile(join(deepest, "leaf"), "x");

      const entries = await list(await collect(packPath(root, "/top")));
      assert.equal(entries.at(-1)?.body, "x");
      // What packs also extracts.
      const out = join(root, "out");
      await mkdir(out);
      await extractArchive(
        out,
        "/",
        Readable.from([await collect(packPath(root, "/top"))]),
      );
      assert.equal(
        readFileSync(
          join(out, "top", ..."d".repeat(255).split(""), "leaf"),
          "utf8",
        ),
        "x",
      );

      await mkdir(join(deepest, "more"));
      await assert.rejects(
        collect(packPath(root, "/top")),
        isTransferError(Code.InvalidArgument, /more than 256 directories deep/),
      );
    });

    test("hard links become link entries", async (t) => {
      useMode(mode);
      const { root } = await makeLayout(t);
      await mkdir(join(root, "d"));
      await writeFile(join(root, "d", "first"), "shared");
      await link(join(root, "d", "first"), join(root, "d", "second"));

      const entries = await list(await collect(packPath(root, "/")));

      const second = entries.find((entry) => entry.path === "d/second");
      assert.equal(second?.type, "Link");
      assert.equal(second?.linkpath, "d/first");
      assert.equal(second?.size, 0);
    });

    test("topName renames the top entry and link targets", async (t) => {
      useMode(mode);
      const { root } = await makeLayout(t);
      await mkdir(join(root, "d", "sub"), { recursive: true });
      await writeFile(join(root, "d", "sub", "first"), "shared");
      await link(join(root, "d", "sub", "first"), join(root, "d", "second"));
      await writeFile(join(root, "single"), "one");

      const directory = await list(
        await collect(packPath(root, "/d", { topName: "copy" })),
      );
      const file = await list(
        await collect(packPath(root, "/single", { topName: "renamed" })),
      );
      const rootForm = await list(
        await collect(packPath(root, "/", { topName: "whole" })),
      );

      assert.deepEqual(
        directory.map((entry) => [entry.path, entry.linkpath ?? ""]),
        [
          ["copy/", ""],
          ["copy/second", ""],
          ["copy/sub/", ""],
          ["copy/sub/first", "copy/second"],
        ],
      );
      assert.deepEqual(
        file.map((entry) => [entry.path, entry.body]),
        [["renamed", "one"]],
      );
      assert.ok(
        rootForm.every((entry) => entry.path.startsWith("whole/")),
        rootForm.map((entry) => entry.path).join(" "),
      );
      assert.ok(rootForm.some((entry) => entry.path === "whole/d/sub/first"));
    });

    test("skipSpecialFiles drops a FIFO with a warning", async (t) => {
      useMode(mode);
      const { root } = await makeLayout(t);
      await mkdir(join(root, "run"));
      const mkfifo = spawnSync("mkfifo", [join(root, "run", "pipe")]);
      assert.equal(mkfifo.status, 0, String(mkfifo.stderr));
      await writeFile(join(root, "run", "z"), "after");
      const warnings: string[] = [];

      const withoutSpecial = await list(
        await collect(
          packPath(root, "/run", {
            skipSpecialFiles: true,
            onWarning: (code, message) => warnings.push(`${code}: ${message}`),
          }),
        ),
      );
      const packed = await list(await collect(packPath(root, "/run")));

      assert.deepEqual(
        withoutSpecial.map((entry) => entry.path),
        ["run/", "run/z"],
      );
      assert.deepEqual(warnings, [
        'type-skipped: skipped FIFO "/run/pipe": a copy takes only files, ' +
          "directories and links",
      ]);
      assert.equal(
        packed.find((entry) => entry.path === "run/pipe")?.type,
        "FIFO",
      );
    });

    test("long and non-ASCII names survive", async (t) => {
      useMode(mode);
      const { root } = await makeLayout(t);
      const longDir = "d".repeat(120);
      const longFile = `${"f".repeat(140)}-日本語.txt`;
      await mkdir(join(root, longDir));
      await writeFile(join(root, longDir, longFile), "deep");

      const entries = await list(await collect(packPath(root, longDir)));

      assert.deepEqual(
        entries.map((entry) => entry.path),
        [`${longDir}/`, `${longDir}/${longFile}`],
      );
      assert.equal(entries[1]!.body, "deep");
    });

    test("socket skipped with a warning", async (t) => {
      useMode(mode);
      const { root } = await makeLayout(t);
      await mkdir(join(root, "run"));
      const server = createServer();
      await new Promise<void>((resolve) =>
        server.listen(join(root, "run", "s.sock"), resolve),
      );
      t.after(() => server.close());
      await writeFile(join(root, "run", "z"), "after");
      const warnings: string[][] = [];

      const archive = await collect(
        packPath(root, "/run", {
          onWarning: (code, message, path) =>
            warnings.push([code, message, path]),
        }),
      );
      const entries = await list(archive);

      assert.deepEqual(
        entries.map((entry) => entry.path),
        ["run/", "run/z"],
      );
      assert.deepEqual(warnings, [
        ["socket-skipped", 'skipped socket "/run/s.sock"', "/run/s.sock"],
      ]);
      await assert.rejects(
        collect(packPath(root, "/run/s.sock")),
        isTransferError(Code.InvalidArgument, /socket/),
      );
    });

    test("devices and FIFOs get headers", { skip: !isRoot }, async (t) => {
      useMode(mode);
      const { root } = await makeLayout(t);
      await mkdir(join(root, "dev"));
      const mknod = spawnSync("mknod", [
        join(root, "dev", "null"),
        "c",
        "1",
        "3",
      ]);
      const mkfifo = spawnSync("mkfifo", [join(root, "dev", "pipe")]);
      assert.equal(mknod.status, 0, String(mknod.stderr));
      assert.equal(mkfifo.status, 0, String(mkfifo.stderr));

      const entries = await list(await collect(packPath(root, "/dev")));

      const nullDevice = entries.find((entry) => entry.path === "dev/null");
      assert.equal(nullDevice?.type, "CharacterDevice");
      assert.equal(nullDevice?.devmaj, 1);
      const pipe = entries.find((entry) => entry.path === "dev/pipe");
      assert.equal(pipe?.type, "FIFO");
    });

    test("archive ends with two zero blocks", async (t) => {
      useMode(mode);
      const { root } = await makeLayout(t);
      await writeFile(join(root, "f"), "x".repeat(513));

      const archive = await collect(packPath(root, "f"));

      // Header, two body blocks, end-of-archive marker; no record padding.
      assert.equal(archive.length, 512 + 1024 + 1024);
      assert.ok(archive.subarray(-1024).every((byte) => byte === 0));
      assert.notEqual(archive[512 + 512], 0);
    });

    test("missing path is NotFound", async (t) => {
      useMode(mode);
      const { root } = await makeLayout(t);
      await mkdir(join(root, "tmp"));

      await assert.rejects(
        collect(packPath(root, "/tmp/missing")),
        isTransferError(Code.NotFound, /"\/tmp\/missing"/),
      );
      await assert.rejects(
        collect(packPath(root, "/nope/missing")),
        isTransferError(Code.NotFound, /"\/nope"/),
      );
    });

    test("unreadable file is PermissionDenied", async (t) => {
      useMode(mode);
      const layout = await makeLayout(t);
      await writeFile(join(layout.root, "secret"), "x", { mode: 0o000 });

      const outcome = await packAsUnprivileged(layout, "/secret", mode);

      assert.equal(outcome.code, Code.PermissionDenied, outcome.message);
      assert.match(outcome.message, /"\/secret": permission denied/);
    });
  });
}

test("GNU tar reads the archive", async (t) => {
  const { root } = await makeLayout(t);
  const longName = `${"n".repeat(150)}-é`;
  await mkdir(join(root, "tree"));
  await writeFile(join(root, "tree", longName), "content");
  await symlink("../elsewhere", join(root, "tree", "rel"));
  const archive = await collect(packPath(root, "/tree"));

  const listed = spawnSync("tar", ["-tf", "-"], { input: archive });

  if (listed.error) {
    t.skip("tar is not installed");
    return;
  }
  assert.equal(listed.status, 0, String(listed.stderr));
  assert.deepEqual(String(listed.stdout).trim().split("\n"), [
    "tree/",
    `tree/${longName}`,
    "tree/rel",
  ]);
});

test("abort destroys the stream as Canceled", async (t) => {
  const { root } = await makeLayout(t);
  await writeFile(join(root, "big"), Buffer.alloc(4 * 1024 * 1024));
  const controller = new AbortController();
  const stream = packPath(root, "/big", { signal: controller.signal });

  const reading = (async () => {
    for await (const _chunk of stream) {
      controller.abort(new Error("stop"));
    }
  })();

  await assert.rejects(reading, isTransferError(Code.Canceled, /stop/));
});

test("shrinking file fails the archive", async (t) => {
  const { root } = await makeLayout(t);
  const path = join(root, "log");
  await writeFile(path, Buffer.alloc(4 * chunkBytes, 1));
  const chunks = packChunks(root, "/log");

  // The first chunk contains the header and the first read; the next read
  // meets the end of the cut file.
  const first = await chunks.next();
  assert.equal(first.done, false);
  await truncate(path, 1000);

  await assert.rejects(
    collect(chunks),
    isTransferError(
      Code.Aborted,
      new RegExp(`"/log" shrank from ${4 * chunkBytes} to \\d+ bytes`),
    ),
  );
});

test("growing file packed with a warning", async (t) => {
  const { root } = await makeLayout(t);
  const path = join(root, "log");
  await writeFile(path, Buffer.alloc(4 * chunkBytes, 1));
  const warnings: string[] = [];
  const chunks = packChunks(root, "/log", {
    onWarning: (code, message) => warnings.push(`${code}: ${message}`),
  });

  const first = await chunks.next();
  assert.equal(first.done, false);
  await appendFile(path, Buffer.alloc(chunkBytes, 2));
  const rest = await collect(chunks);

  const entries = await list(Buffer.concat([first.value!, rest]));
  assert.equal(entries[0]?.size, 4 * chunkBytes);
  assert.deepEqual(warnings, [
    'changed: "/log" changed while it was read, so its copy may mix old ' +
      "and new content; copy it again once the file no longer changes",
  ]);
});

test("stream honours backpressure", async (t) => {
  const { root } = await makeLayout(t);
  await writeFile(join(root, "big"), Buffer.alloc(8 * 1024 * 1024, 1));
  const stream = packPath(root, "/big");

  const first = await new Promise<Buffer>((resolve) =>
    stream.once("data", resolve),
  );
  stream.pause();
  await new Promise((resolve) => setTimeout(resolve, 100));

  // Without a consumer, at most about one high-water mark is read ahead.
  assert.ok(first.length <= chunkBytes);
  assert.ok(
    stream.readableLength <= 4 * chunkBytes,
    `buffered ${stream.readableLength} bytes`,
  );
  stream.destroy();
});

/**
 * Packs `path` with buffer reuse, copying each chunk and giving its buffer
 * back at once, and counts the buffers lent and lent again.
 */
async function packCopying(root: string, path: string) {
  const lent = new Set<ArrayBufferLike>();
  let reusedBuffers = 0;
  const copies: Buffer[] = [];
  for await (const chunk of packChunks(root, path, {
    reuseChunk: (lentChunk, reuse) => {
      if (lent.has(lentChunk.buffer)) {
        reusedBuffers++;
      }
      lent.add(lentChunk.buffer);
      // The consumer below copies each chunk before the packer reads on,
      // so the buffer may be given back at once.
      queueMicrotask(reuse);
    },
  })) {
    copies.push(Buffer.from(chunk));
  }
  return { archive: Buffer.concat(copies), lent, reusedBuffers };
}

test("pack chunks reuse given-back buffers", async (t) => {
  const { root } = await makeLayout(t);
  const content = Buffer.alloc(6 * chunkBytes + 1000);
  for (let index = 0; index < content.length; index++) {
    content[index] = (index * 131) & 0xff;
  }
  await writeFile(join(root, "big"), content);
  const expected = await collect(packPath(root, "/big"));

  const { archive, lent, reusedBuffers } = await packCopying(root, "/big");

  assert.ok(reusedBuffers > 0, "no read buffer was reused");
  assert.ok(lent.size < 6, `${lent.size} buffers for 7 reads`);
  assert.deepEqual(archive, expected);
});

test("small files packed with reuse", async (t) => {
  const { root } = await makeLayout(t);
  await mkdir(join(root, "tree"));
  for (let index = 0; index < 300; index++) {
    const size = (index * 977) % (70 * 1024);
    await writeFile(
      join(root, "tree", `f${index}`),
      Buffer.alloc(size, index & 0xff),
    );
  }
  const expected = await collect(packPath(root, "/tree"));

  const { archive, reusedBuffers } = await packCopying(root, "/tree");

  assert.ok(reusedBuffers > 0, "no gather buffer was reused");
  assert.deepEqual(archive, expected);
});

test("small file chunks survive held chunks", async (t) => {
  const { root } = await makeLayout(t);
  await mkdir(join(root, "tree"));
  for (let index = 0; index < 200; index++) {
    await writeFile(
      join(root, "tree", `f${index}`),
      Buffer.alloc((index * 331) % 9000, index & 0xff),
    );
  }
  const expected = await collect(packPath(root, "/tree"));

  // A consumer that keeps every chunk and never gives a buffer back.
  const heldChunks: Buffer[] = [];
  for await (const chunk of packChunks(root, "/tree", {
    reuseChunk: () => {},
  })) {
    heldChunks.push(chunk);
  }

  assert.deepEqual(Buffer.concat(heldChunks), expected);
});

test("small entries are gathered into large chunks", async (t) => {
  const { root } = await makeLayout(t);
  await mkdir(join(root, "tree"));
  let total = 0;
  for (let index = 0; index < 400; index++) {
    const size = (index * 613) % 5000;
    total += size;
    await writeFile(join(root, "tree", `f${index}`), Buffer.alloc(size, 7));
  }

  for (const reuse of [false, true]) {
    const chunks: Buffer[] = [];
    for await (const chunk of packChunks(root, "/tree", {
      reuseChunk: reuse ? () => {} : undefined,
    })) {
      chunks.push(Buffer.from(chunk));
    }

    const archive = Buffer.concat(chunks);
    assert.ok(archive.length > total, `${archive.length} bytes`);
    assert.ok(
      chunks.slice(0, -1).every((chunk) => chunk.length >= 64 * 1024),
      `chunk sizes ${chunks.map((chunk) => chunk.length).join(" ")}`,
    );
    const entries = await list(archive);
    assert.equal(entries.length, 401);
    assert.equal(entries[400]!.path, "tree/f99");
    assert.equal(entries[400]!.body.length, (99 * 613) % 5000);
  }
});

test("name swapped for a FIFO after listing not opened", async (t) => {
  const { root } = await makeLayout(t);
  await writeFile(join(root, "a_big"), Buffer.alloc(4 * chunkBytes));
  await writeFile(join(root, "z"), "file");
  const warnings: string[] = [];

  const chunks: Buffer[] = [];
  for await (const chunk of packPath(root, "/", {
    onWarning: (code, message) => warnings.push(`${code}: ${message}`),
  })) {
    if (chunks.length === 0) {
      // The directory is listed by now, and "z" not yet packed.
      await rm(join(root, "z"));
      const mkfifo = spawnSync("mkfifo", [join(root, "z")]);
      assert.equal(mkfifo.status, 0, String(mkfifo.stderr));
    }
    chunks.push(Buffer.from(chunk));
  }

  // The lstat right before the open finds the FIFO, stored as one.
  const entries = await list(Buffer.concat(chunks));
  assert.equal(entries.find((entry) => entry.path === "z")?.type, "FIFO");
  assert.deepEqual(warnings, []);
});

test("mtime before 1970 rounded down", async (t) => {
  const { root } = await makeLayout(t);
  const cases: [string, number, number][] = [
    ["half-before", -1.5, -2],
    ["whole-before", -100, -100],
    ["just-before", -0.5, -1],
    ["after", 1.5, 1],
  ];
  for (const [name, seconds] of cases) {
    await writeFile(join(root, name), name);
    // A negative number means now to utimes, a Date does not.
    const time = new Date(seconds * 1000);
    await utimes(join(root, name), time, time);
  }

  const entries = await list(await collect(packPath(root, "/")));

  for (const [name, , expected] of cases) {
    const entry = entries.find((listed) => listed.path === name);
    assert.equal(entry?.mtime?.getTime(), expected * 1000, name);
  }
});

test("small file shorter than its size packed as read", async (t) => {
  // A sysfs attribute reports 4096 bytes and contains a few.
  const sysfs = "/sys/kernel";
  const name = "address_bits";
  if (!existsSync(join(sysfs, name))) {
    t.skip(`no ${sysfs}/${name} on this machine`);
    return;
  }
  const content = readFileSync(join(sysfs, name));
  assert.ok(statSync(join(sysfs, name)).size > content.length);
  const warnings: string[] = [];

  const archive = await collect(
    packChunks(sysfs, `/${name}`, {
      onWarning: (code, message) => warnings.push(`${code}: ${message}`),
    }),
  );

  const [entry] = await list(archive);
  assert.equal(entry?.size, content.length);
  assert.equal(entry?.body, content.toString());
  assert.equal(warnings.length, 1);
  assert.match(
    warnings[0] ?? "",
    new RegExp(`^changed: "/${name}" ended after ${content.length} of the`),
  );
});
