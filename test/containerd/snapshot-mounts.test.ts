/**
 * The pieces behind snapshot mounts that need no containerd: mountinfo
 * parsing, `lowerdir` shortening, and the mount helper on overlays made
 * here. The mount tests need root.
 */
import assert from "node:assert/strict";
import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { TransferError } from "../../src/errors/index.js";
import { MountSchema } from "../../src/gen/containerd/types/mount_pb.js";
import {
  mountArguments,
  relativeLowerDirs,
} from "../../src/server/containerd-mount-helper.js";
import {
  findOverlayMount,
  makeDevice,
  parseMountInfo,
} from "../../src/server/containerd-mountinfo.js";
import { SnapshotMounts } from "../../src/server/containerd-snapshot-mount.js";
import { processesMentioning, RecordingLogger } from "./harness.js";

const mountinfo = [
  "22 27 0:21 / /proc rw,relatime - proc proc rw",
  "47 27 0:40 / /run/a\\040b/rootfs rw,relatime shared:12 master:3 - overlay " +
    "overlay rw,lowerdir=/l/1/fs,upperdir=/s/2\\054x/fs,workdir=/s/2/work",
  "bad line",
].join("\n");

test("mountinfo: escapes and optional fields", () => {
  const entries = parseMountInfo(mountinfo);

  assert.equal(entries.length, 2);
  assert.equal(entries[1]?.mountPoint, "/run/a b/rootfs");
  assert.equal(entries[1]?.fsType, "overlay");
  assert.equal(entries[1]?.device, 40n);
  assert.ok(entries[1]?.superOptions.includes("upperdir=/s/2,x/fs"));
});

test("mountinfo: overlay found by upperdir", () => {
  const entries = parseMountInfo(mountinfo);
  const overlay = (upperdir: string) =>
    create(MountSchema, {
      type: "overlay",
      source: "overlay",
      options: ["index=off", `upperdir=${upperdir}`, "lowerdir=/l/1/fs"],
    });

  assert.equal(findOverlayMount(entries, [overlay("/s/2,x/fs")])?.mountId, 47);
  assert.equal(findOverlayMount(entries, [overlay("/s/2/fs")]), undefined);
});

test("mountinfo: device numbers like makedev", () => {
  assert.equal(makeDevice(0, 40), 40n);
  assert.equal(makeDevice(8, 1), 2049n);
  assert.equal(makeDevice(259, 300), (259n << 8n) | 44n | (256n << 12n));
});

test("lowerdir: relative to common parent", () => {
  const options = [
    "index=off",
    "lowerdir=/var/lib/s/snapshots/12/fs:/var/lib/s/snapshots/3/fs",
  ];

  const directory = relativeLowerDirs(options);

  assert.equal(directory, "/var/lib/s/snapshots/");
  assert.deepEqual(options, ["index=off", "lowerdir=12/fs:3/fs"]);
});

test("lowerdir: short options kept absolute", () => {
  const mount = create(MountSchema, {
    type: "overlay",
    source: "overlay",
    options: ["lowerdir=/a/1/fs:/a/2/fs"],
  });

  assert.deepEqual(mountArguments(mount), [
    "overlay",
    "overlay",
    "lowerdir=/a/1/fs:/a/2/fs",
    "/",
  ]);
});

async function mountTest(t: TestContext) {
  if (process.getuid?.() !== 0) {
    t.skip("mounting needs root");
    return undefined;
  }
  const dir = await mkdtemp(join(tmpdir(), "ctt-mnt-"));
  const mountDirectory = join(dir, "mounts");
  await mkdir(mountDirectory);
  t.after(() => rm(dir, { recursive: true, force: true }));
  const log = new RecordingLogger();
  const mounts = new SnapshotMounts({ log, mountDirectory });
  return { dir, mountDirectory, log, mounts };
}

test("snapshot mounts: 60 long layers mounted", async (t) => {
  const setup = await mountTest(t);
  if (!setup) return;
  const { dir, mountDirectory, log, mounts } = setup;
  // 60 paths of about 100 bytes: more than a page of mount options.
  const layers = join(dir, "x".repeat(60), "snapshots");
  const lowerDirs: string[] = [];
  for (let i = 0; i < 60; i++) {
    const layer = join(layers, String(i), "fs");
    await mkdir(layer, { recursive: true });
    await writeFile(join(layer, `layer-${i}.txt`), String(i));
    lowerDirs.unshift(layer);
  }
  await mkdir(join(dir, "upper"));
  await mkdir(join(dir, "work"));
  const overlay = create(MountSchema, {
    type: "overlay",
    source: "overlay",
    options: [
      "index=off",
      `workdir=${join(dir, "work")}`,
      `upperdir=${join(dir, "upper")}`,
      `lowerdir=${lowerDirs.join(":")}`,
    ],
  });
  assert.ok(overlay.options.join(",").length > 4096);

  const lease = await mounts.acquire(
    { key: "test/60", mounts: [overlay], readOnly: false, describe: "test" },
    AbortSignal.timeout(30_000),
  );
  const names = await readdir(lease.path);
  await writeFile(join(lease.path, "written.txt"), "upper");
  await lease.release();

  assert.equal(names.length, 60);
  assert.equal(
    await readFile(join(dir, "upper", "written.txt"), "utf8"),
    "upper",
  );
  assert.equal(log.count("unmounted snapshot"), 1);
  assert.deepEqual(await readdir(mountDirectory), []);
  assert.deepEqual(await processesMentioning(mountDirectory), []);
});

test("snapshot mounts: mount failure reported", async (t) => {
  const setup = await mountTest(t);
  if (!setup) return;
  const { dir, mountDirectory, mounts } = setup;
  const broken = create(MountSchema, {
    type: "overlay",
    source: "overlay",
    options: [`lowerdir=${join(dir, "missing")}`],
  });

  const failure = await mounts
    .acquire(
      {
        key: "test/broken",
        mounts: [broken],
        readOnly: false,
        describe: "test",
      },
      AbortSignal.timeout(30_000),
    )
    .catch((error: unknown) => error);

  assert.ok(failure instanceof TransferError, `got ${failure}`);
  assert.equal(failure.kind, "internal");
  assert.match(failure.rawMessage, /failed to mount the snapshot of test/);
  assert.match(failure.rawMessage, /mount helper exited with 32/);
  assert.deepEqual(await readdir(mountDirectory), []);
});

test("snapshot mounts: read-only bind rejects writes", async (t) => {
  const setup = await mountTest(t);
  if (!setup) return;
  const { dir, mounts } = setup;
  const source = join(dir, "source");
  await mkdir(source);
  await writeFile(join(source, "kept.txt"), "kept");
  const bind = create(MountSchema, {
    type: "bind",
    source,
    options: ["rbind", "rw"],
  });

  const lease = await mounts.acquire(
    { key: "test/ro", mounts: [bind], readOnly: true, describe: "test" },
    AbortSignal.timeout(30_000),
  );
  const read = await readFile(join(lease.path, "kept.txt"), "utf8");
  const write = await writeFile(join(lease.path, "new.txt"), "x").catch(
    (error: NodeJS.ErrnoException) => error.code,
  );
  await lease.release();

  assert.equal(read, "kept");
  assert.equal(write, "EROFS");
  assert.deepEqual(await readdir(source), ["kept.txt"]);
});
