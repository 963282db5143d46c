import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import {
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import { Header, Pax } from "tar";
import { extractArchive } from "../../src/archive/index.js";
import { Code, TransferError } from "../../src/errors/index.js";
import { rawTar } from "../helpers/raw-tar.js";
import {
  chunked,
  isRoot,
  makeLayout,
  rawArchive,
  rawEntry,
  trailer,
} from "./fixtures.js";

const isTransferError = (code: Code, pattern: RegExp) => (error: unknown) =>
  error instanceof TransferError &&
  error.code === code &&
  pattern.test(error.message);

test("destination created like mkdir -p", async (t) => {
  const { root } = await makeLayout(t);

  const summary = await extractArchive(
    root,
    "/new/deep/dir",
    chunked(rawArchive([{ path: "x.txt", body: "x" }])),
  );

  assert.equal(await readFile(join(root, "new/deep/dir/x.txt"), "utf8"), "x");
  const created = await stat(join(root, "new", "deep"));
  assert.equal(created.mode & 0o777, 0o755 & ~process.umask());
  assert.deepEqual(summary, { entries: 1, skipped: 0, bytes: 1 });
});

test("destination through container symlink", async (t) => {
  const { root } = await makeLayout(t);
  await mkdir(join(root, "run"));
  await mkdir(join(root, "var"));
  await symlink("/run", join(root, "var", "run"));

  await extractArchive(
    root,
    "/var/run/app",
    chunked(rawArchive([{ path: "pid", body: "1" }])),
  );

  assert.equal(await readFile(join(root, "run", "app", "pid"), "utf8"), "1");
});

test("destination that is a file fails", async (t) => {
  const { root } = await makeLayout(t);
  await writeFile(join(root, "file"), "");

  await assert.rejects(
    extractArchive(root, "/file", chunked(rawArchive([{ path: "x" }]))),
    isTransferError(Code.FailedPrecondition, /"\/file" is not a directory/),
  );
});

test("existing file replaced whole", async (t) => {
  const { root } = await makeLayout(t);
  await writeFile(join(root, "conf"), "a much longer old content", {
    mode: 0o600,
  });

  await extractArchive(
    root,
    "/",
    chunked(rawArchive([{ path: "conf", body: "new", mode: 0o640 }])),
  );

  const after = await lstat(join(root, "conf"));
  assert.equal(after.mode & 0o777, 0o640);
  assert.equal(await readFile(join(root, "conf"), "utf8"), "new");
  assert.deepEqual(await readdir(root), ["conf"]);
});

test("truncated entry keeps existing file", async (t) => {
  const { root } = await makeLayout(t);
  await writeFile(join(root, "conf"), "old content");
  const archive = rawArchive([{ path: "conf", body: "x".repeat(4096) }]);

  await assert.rejects(
    extractArchive(root, "/", chunked(archive.subarray(0, 512 + 1000))),
    (error: TransferError) => error.code === Code.DataLoss,
  );

  assert.equal(await readFile(join(root, "conf"), "utf8"), "old content");
  assert.deepEqual(await readdir(root), ["conf"]);
});

test("existing directory keeps its mode", async (t) => {
  const { root } = await makeLayout(t);
  await mkdir(join(root, "d"), { mode: 0o700 });

  await extractArchive(
    root,
    "/",
    chunked(rawArchive([{ path: "d/", type: "Directory", mode: 0o777 }])),
  );

  assert.equal((await stat(join(root, "d"))).mode & 0o777, 0o700);
});

test("new directory without owner write", async (t) => {
  const { root } = await makeLayout(t);

  await extractArchive(
    root,
    "/",
    chunked(
      rawArchive([
        { path: "ro/", type: "Directory", mode: 0o555 },
        { path: "ro/inside", body: "written before the mode" },
      ]),
    ),
  );

  assert.equal((await stat(join(root, "ro"))).mode & 0o777, 0o555);
  assert.equal(
    await readFile(join(root, "ro", "inside"), "utf8"),
    "written before the mode",
  );
});

test("symlink replaces existing file", async (t) => {
  const { root } = await makeLayout(t);
  await writeFile(join(root, "name"), "old");

  await extractArchive(
    root,
    "/",
    chunked(
      rawArchive([{ path: "name", type: "SymbolicLink", linkpath: "target" }]),
    ),
  );

  assert.equal(await readlink(join(root, "name")), "target");
});

test("file over directory is rejected", async (t) => {
  const { root } = await makeLayout(t);
  await mkdir(join(root, "d"));

  await assert.rejects(
    extractArchive(root, "/", chunked(rawArchive([{ path: "d", body: "x" }]))),
    isTransferError(Code.FailedPrecondition, /directory "\/d"/),
  );
  assert.ok((await lstat(join(root, "d"))).isDirectory());
});

test("ownership kept on request", { skip: !isRoot }, async (t) => {
  const { root } = await makeLayout(t);
  const archive = rawArchive([
    { path: "d/", type: "Directory", uid: 1234, gid: 5678 },
    { path: "d/f", body: "x", uid: 1234, gid: 5678 },
    { path: "d/l", type: "SymbolicLink", linkpath: "f", uid: 4321, gid: 8765 },
  ]);

  await extractArchive(root, "/owned", chunked(archive), {
    preserveOwnership: true,
  });
  await extractArchive(root, "/plain", chunked(archive));

  for (const [path, uid, gid] of [
    ["owned/d", 1234, 5678],
    ["owned/d/f", 1234, 5678],
    ["owned/d/l", 4321, 8765],
    ["plain/d/f", 0, 0],
  ] as const) {
    const stats = await lstat(join(root, path));
    assert.deepEqual([stats.uid, stats.gid], [uid, gid], path);
  }
});

test("owner beyond 32 bits rejected", async (t) => {
  const { root } = await makeLayout(t);
  const archive = rawArchive([{ path: "f", body: "x", uid: 2 ** 40, gid: 0 }]);
  const badGid = rawArchive([{ path: "g", body: "x", uid: 0, gid: 2 ** 40 }]);

  await assert.rejects(
    extractArchive(root, "/", chunked(archive), { preserveOwnership: true }),
    isTransferError(
      Code.InvalidArgument,
      /invalid owner of "\/f": uid 1099511627776 is not an integer from 0 to 4294967294$/,
    ),
  );
  await assert.rejects(
    extractArchive(root, "/", chunked(badGid), { preserveOwnership: true }),
    isTransferError(
      Code.InvalidArgument,
      /invalid owner of "\/g": gid 1099511627776 is not an integer/,
    ),
  );
});

test("FIFO in the way is kept", async (t) => {
  const { root } = await makeLayout(t);
  await mkdir(join(root, "d"));
  for (const name of ["small", "large", "link"]) {
    execFileSync("mkfifo", [join(root, "d", name)]);
  }
  const entries = [
    { path: "d/small", body: "x" },
    { path: "d/large", body: "y".repeat(300 * 1024) },
    { path: "d/link", type: "SymbolicLink" as const, linkpath: "small" },
  ];

  for (const entry of entries) {
    await assert.rejects(
      extractArchive(root, "/", chunked(rawArchive([entry]))),
      isTransferError(
        Code.FailedPrecondition,
        new RegExp(`cannot replace the FIFO "/${entry.path}" with a`),
      ),
    );
    assert.ok((await lstat(join(root, entry.path))).isFIFO(), entry.path);
  }
});

test("devices and FIFOs skipped with warnings", async (t) => {
  const { root } = await makeLayout(t);
  const warnings: string[] = [];

  const summary = await extractArchive(
    root,
    "/dev",
    chunked(
      rawArchive([
        { path: "null", type: "CharacterDevice", devmaj: 1, devmin: 3 },
        { path: "sda", type: "BlockDevice", devmaj: 8, devmin: 0 },
        { path: "pipe", type: "FIFO" },
        { path: "after", body: "ok" },
      ]),
    ),
    { onWarning: (code, _message, path) => warnings.push(`${code} ${path}`) },
  );

  assert.deepEqual(warnings, [
    "type-skipped /dev/null",
    "type-skipped /dev/sda",
    "type-skipped /dev/pipe",
  ]);
  assert.deepEqual(summary, { entries: 1, skipped: 3, bytes: 2 });
  await assert.rejects(lstat(join(root, "dev", "null")), { code: "ENOENT" });
  await assert.rejects(lstat(join(root, "dev", "pipe")), { code: "ENOENT" });
});

test("unknown typeflag skipped with warning", async (t) => {
  const { root } = await makeLayout(t);
  const entry = rawEntry({ path: "odd", body: "data" });
  entry[156] = "Z".charCodeAt(0);
  fixChecksum(entry);
  const warnings: string[] = [];

  const summary = await extractArchive(
    root,
    "/",
    chunked(
      Buffer.concat([entry, rawEntry({ path: "next", body: "n" }), trailer]),
    ),
    { onWarning: (code, message) => warnings.push(`${code}: ${message}`) },
  );

  assert.deepEqual(warnings, [
    'type-skipped: skipped "/odd": its typeflag is not a known entry type',
  ]);
  assert.equal(summary.entries, 1);
  assert.equal(await readFile(join(root, "next"), "utf8"), "n");
});

test("names not valid UTF-8 skipped", async (t) => {
  // Both names decode to "a" and U+FFFD: written, the second would
  // replace the first.
  const { root } = await makeLayout(t);
  await mkdir(join(root, "in"));
  const warnings: string[] = [];

  const summary = await extractArchive(
    root,
    "/in",
    chunked(
      rawTar([
        { name: Buffer.from([0x61, 0xff]), body: "one" },
        { name: Buffer.from([0x61, 0xfe]), body: "two" },
        { name: "link", type: "2", linkname: "b\uFFFD" },
        { name: "kept", body: "three" },
      ]),
    ),
    { onWarning: (code, _message, path) => warnings.push(`${code} ${path}`) },
  );

  assert.deepEqual(warnings, [
    "name-skipped /in/a\uFFFD",
    "name-skipped /in/a\uFFFD",
    "name-skipped /in/link",
  ]);
  assert.deepEqual(summary, { entries: 1, skipped: 3, bytes: 5 });
  assert.deepEqual(await readdir(join(root, "in")), ["kept"]);
});

test("destination-named entry skipped, type 7 kept", async (t) => {
  const { root } = await makeLayout(t);
  await mkdir(join(root, "in"));
  const warnings: string[] = [];

  const summary = await extractArchive(
    root,
    "/in",
    chunked(
      rawTar([
        { name: "./", type: "5" },
        { name: "..", body: "one" },
        { name: "a/..", body: "two" },
        { name: "kept", type: "7", body: "three" },
      ]),
    ),
    { onWarning: (code, message) => warnings.push(`${code}: ${message}`) },
  );

  assert.deepEqual(warnings, [
    'name-skipped: skipped the File entry "..": its name leads to the destination itself',
    'name-skipped: skipped the File entry "a/..": its name leads to the destination itself',
  ]);
  assert.deepEqual(summary, { entries: 1, skipped: 3, bytes: 5 });
  assert.deepEqual(await readdir(join(root, "in")), ["kept"]);
});

test("marker-only archive extracts nothing", async (t) => {
  const { root } = await makeLayout(t);

  const summary = await extractArchive(root, "/", chunked(trailer));

  assert.deepEqual(summary, { entries: 0, skipped: 0, bytes: 0 });
});

test("empty input is DataLoss", async (t) => {
  const { root } = await makeLayout(t);

  await assert.rejects(
    extractArchive(root, "/", Readable.from([], { objectMode: false })),
    isTransferError(Code.DataLoss, /empty/),
  );
});

test("gzip input is rejected", async (t) => {
  const { root } = await makeLayout(t);
  const archive = gzipSync(rawArchive([{ path: "x", body: "x" }]));

  await assert.rejects(
    extractArchive(root, "/", chunked(archive, 1)),
    isTransferError(Code.InvalidArgument, /gzip/),
  );
  await assert.rejects(lstat(join(root, "x")), { code: "ENOENT" });
});

test("corrupt header is InvalidArgument", async (t) => {
  const { root } = await makeLayout(t);
  const archive = rawArchive([{ path: "a", body: "a" }, { path: "b" }]);
  archive[1024 + 10] ^= 0xff;

  await assert.rejects(
    extractArchive(root, "/", chunked(archive)),
    isTransferError(Code.InvalidArgument, /checksum/),
  );
});

test("trailing bytes ignored and drained", async (t) => {
  const { root } = await makeLayout(t);
  const archive = rawArchive([{ path: "x", body: "x" }]);
  const garbage = Buffer.alloc(200 * 1024, 0x41);
  const source = new PassThrough();
  source.write(archive);

  const summary = await extractArchive(root, "/", source);
  // The producer keeps writing after the marker and must not block.
  for (let offset = 0; offset < garbage.length; offset += 16 * 1024) {
    if (!source.write(garbage.subarray(offset, offset + 16 * 1024))) {
      await once(source, "drain");
    }
  }
  source.end();
  await once(source, "end");

  assert.deepEqual(summary, { entries: 1, skipped: 0, bytes: 1 });
  assert.equal(await readFile(join(root, "x"), "utf8"), "x");
});

test("trailing data past limit releases source", async (t) => {
  const { root } = await makeLayout(t);
  const archive = rawArchive([{ path: "x", body: "x" }]);
  let released = false;
  async function* endless() {
    try {
      yield archive;
      for (let i = 0; i < 10_000; i++) {
        yield Buffer.alloc(1024, 1);
      }
    } finally {
      released = true;
    }
  }

  await extractArchive(root, "/", endless(), { maxTrailingBytes: 4096 });
  await new Promise((resolve) => setTimeout(resolve, 50));

  assert.equal(released, true);
});

test("failure releases the source", async (t) => {
  const { root } = await makeLayout(t);
  const source = new PassThrough();
  source.write(rawEntry({ path: "x", body: "partial body" }).subarray(0, 600));

  const controller = new AbortController();
  // A ref'd timer: AbortSignal.timeout would let the idle test process exit.
  const timer = setTimeout(() => controller.abort(new Error("late")), 50);
  t.after(() => clearTimeout(timer));

  await assert.rejects(
    extractArchive(root, "/", source, { signal: controller.signal }),
    isTransferError(Code.Canceled, /late/),
  );
  assert.equal(source.destroyed, true);
});

test("abort stops writing as Canceled", async (t) => {
  const { root } = await makeLayout(t);
  const controller = new AbortController();
  const source = new PassThrough();
  source.write(rawEntry({ path: "first", body: "1" }));
  const extracting = extractArchive(root, "/", source, {
    signal: controller.signal,
  });
  await new Promise((resolve) => setTimeout(resolve, 20));

  controller.abort(new Error("user stop"));
  source.write(rawArchive([{ path: "second", body: "2" }]));

  await assert.rejects(extracting, isTransferError(Code.Canceled, /user stop/));
  await assert.rejects(lstat(join(root, "second")), { code: "ENOENT" });
});

/** Recomputes a header block's checksum after a test edited it. */
function fixChecksum(block: Buffer): void {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) {
    sum += block[i]!;
  }
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
}

test("buffered small files written in order", async (t) => {
  const { root } = await makeLayout(t);
  const first = rawArchive([
    { path: "d/", type: "Directory" },
    { path: "d/a", body: "a" },
  ]).subarray(0, -1024);
  const second = rawArchive([
    { path: "d/same", body: "first" },
    { path: "d/same", body: "second" },
    { path: "d/other", body: "o" },
    { path: "d/same", body: "third" },
    { path: "d/link", type: "Link", linkpath: "d/same" },
  ]);
  // The second chunk comes once the first is written, so node-tar has
  // every body of it buffered when its first entry is written.
  async function* source() {
    yield first;
    await new Promise((resolve) => setTimeout(resolve, 50));
    yield second;
  }

  await extractArchive(root, "/", source());

  assert.equal(await readFile(join(root, "d", "same"), "utf8"), "third");
  assert.equal(await readFile(join(root, "d", "link"), "utf8"), "third");
  assert.equal(await readFile(join(root, "d", "other"), "utf8"), "o");
  assert.deepEqual((await readdir(join(root, "d"))).sort(), [
    "a",
    "link",
    "other",
    "same",
  ]);
});

test("concurrent writes leave one whole file", async (t) => {
  const { root } = await makeLayout(t);
  const bodies = ["a", "b"].map((letter) => letter.repeat(1024 * 1024));

  await Promise.all(
    bodies.map((body) =>
      extractArchive(root, "/", chunked(rawArchive([{ path: "f", body }]))),
    ),
  );

  const result = await readFile(join(root, "f"), "utf8");
  assert.ok(bodies.includes(result), "the file mixes both copies");
  assert.deepEqual(await readdir(root), ["f"]);
});

test("bind-mounted file gets content in place", {
  skip: process.getuid?.() !== 0 && "needs root to bind-mount",
}, async (t) => {
  const { base, root } = await makeLayout(t);
  const mounted = join(root, "hosts");
  const backing = join(base, "backing");
  await writeFile(mounted, "");
  await writeFile(backing, "old\n");
  execFileSync("mount", ["--bind", backing, mounted]);
  try {
    await extractArchive(
      root,
      "/",
      chunked(rawArchive([{ path: "hosts", body: "new\n", mode: 0o644 }])),
    );
  } finally {
    // Before the layout's clean-up, which cannot remove a mount point.
    execFileSync("umount", [mounted]);
  }

  assert.equal(await readFile(backing, "utf8"), "new\n");
  assert.deepEqual(await readdir(root), ["hosts"]);
});

test("longest multibyte name extracted", async (t) => {
  const { root } = await makeLayout(t);
  // 255 bytes of two- and three-byte characters, the longest file name.
  const name = "é".repeat(42) + "€".repeat(57);

  await extractArchive(
    root,
    "/",
    chunked(rawArchive([{ path: name, body: "x", pax: true }])),
  );

  assert.deepEqual(await readdir(root), [name]);
});

test("later PAX header name wins", async (t) => {
  const { root } = await makeLayout(t);
  const archive = Buffer.concat([
    new Pax({ path: "first\nname" }).encode(),
    rawEntry({ path: "second name", body: "x", pax: true }),
    rawEntry({ path: "third\nname", body: "y", pax: true }),
    trailer,
  ]);

  await extractArchive(root, "/", chunked(archive));

  assert.deepEqual((await readdir(root)).sort(), [
    "second name",
    "third\nname",
  ]);
});

test("PAX value piece setting a field rejected", async (t) => {
  for (const [name, field] of [
    [`${"L".repeat(110)}a\n9 size=0`, "size"],
    [`${"L".repeat(110)}u\n12 uid=4242`, "uid"],
  ] as const) {
    const { root } = await makeLayout(t);
    const archive = rawArchive([
      { path: "before", body: "kept" },
      { path: name, body: "x".repeat(1024), pax: true },
      { path: "after", body: "never" },
    ]);

    await assert.rejects(
      extractArchive(root, "/", chunked(archive)),
      isTransferError(
        Code.InvalidArgument,
        new RegExp(`PAX header of entry .* sets "${field}" from a piece`),
      ),
    );
    assert.deepEqual(await readdir(root), ["before"]);
  }
});

test("GNU long name like PAX records kept", async (t) => {
  const { root } = await makeLayout(t);
  const target = `${"Z".repeat(100)}\nq`;
  const lookalike = `112 path=${target}\n`;
  assert.equal(Buffer.byteLength(lookalike), 112);
  const archive = rawArchive([
    {
      path: "././@LongLink",
      type: "NextFileHasLongPath",
      body: `${lookalike}\0`,
    },
    { path: "placeholder", body: "first" },
    { path: target, body: "second", pax: true },
  ]);

  await extractArchive(root, "/", chunked(archive));

  assert.deepEqual((await readdir(root)).sort(), [lookalike, target].sort());
  assert.equal(await readFile(join(root, lookalike), "utf8"), "first");
  assert.equal(await readFile(join(root, target), "utf8"), "second");
});

/** Encodes a PAX record from bytes, with a length that counts its own digits. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([
    Buffer.from(` ${key}=`),
    value,
    Buffer.from("\n"),
  ]);
  let length = body.length + String(body.length).length;
  length = body.length + String(length).length;
  return Buffer.concat([Buffer.from(String(length)), body]);
}

/** Encodes a PAX header entry, local or global, containing `records`. */
function rawPaxHeader(records: Buffer[], global = false): Buffer {
  const body = Buffer.concat(records);
  const header = new Header({
    path: "PaxHeader",
    type: global ? "GlobalExtendedHeader" : "ExtendedHeader",
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: body.length,
    mtime: new Date("2020-01-02T03:04:05Z"),
  });
  header.encode();
  return Buffer.concat([
    header.block!,
    body,
    Buffer.alloc((512 - (body.length % 512)) % 512),
  ]);
}

test("PAX pieces of other values rejected", async (t) => {
  const long = "T".repeat(110);
  const cases: [string, Buffer[], boolean][] = [
    [
      "path",
      [
        paxRecord("path", Buffer.from("short")),
        paxRecord("linkpath", Buffer.from(`${long}\n13 path=evil`)),
      ],
      false,
    ],
    [
      "path",
      [paxRecord("SCHILY.xattr.user.note", Buffer.from("v\n13 path=evil"))],
      false,
    ],
    [
      "size",
      [
        paxRecord(
          "path",
          Buffer.concat([
            Buffer.from(long),
            Buffer.from([0xe9]),
            Buffer.from("\n9 size=0"),
          ]),
        ),
      ],
      false,
    ],
    ["size", [paxRecord("comment", Buffer.from("hello\n9 size=0"))], true],
  ];
  for (const [field, records, global] of cases) {
    const { root } = await makeLayout(t);
    const archive = Buffer.concat([
      rawPaxHeader(records, global),
      rawEntry({ path: "short", body: "x".repeat(1024) }),
      rawEntry({ path: "after", body: "never" }),
      trailer,
    ]);

    await assert.rejects(
      extractArchive(root, "/", chunked(archive)),
      isTransferError(
        Code.InvalidArgument,
        new RegExp(`sets "${field}" from a piece`),
      ),
    );
    assert.deepEqual(await readdir(root), []);
  }
});

test("binary PAX value without newline accepted", async (t) => {
  const { root } = await makeLayout(t);
  const archive = Buffer.concat([
    rawPaxHeader([
      paxRecord("SCHILY.xattr.user.bin", Buffer.from([0xff, 0xfe, 0, 1])),
      paxRecord("mtime", Buffer.from("1234567890")),
    ]),
    rawEntry({ path: "kept", body: "kept" }),
    trailer,
  ]);

  await extractArchive(root, "/", chunked(archive));

  assert.equal(await readFile(join(root, "kept"), "utf8"), "kept");
});

for (const format of ["gnu", "pax"]) {
  test(`sparse file in a ${format} archive rejected`, async (t) => {
    const { root, base } = await makeLayout(t);
    const source = join(base, "sparse-source");
    await mkdir(source);
    // A 10 MiB file with a hole, then five bytes.
    await writeFile(join(source, "sparse"), "");
    execFileSync("truncate", ["-s", "10M", join(source, "sparse")]);
    execFileSync("sh", [
      "-c",
      'printf hello | dd of="$0" bs=1 seek=5000000 conv=notrunc 2>/dev/null',
      join(source, "sparse"),
    ]);
    const archive = execFileSync("tar", [
      `--format=${format}`,
      "-cS",
      "-C",
      source,
      "sparse",
    ]);

    await assert.rejects(
      extractArchive(root, "/", Readable.from([archive])),
      isTransferError(Code.InvalidArgument, /is a sparse file/),
    );
    assert.deepEqual(await readdir(root), []);
  });
}
