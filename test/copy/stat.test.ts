import assert from "node:assert/strict";
import { chmod, symlink, truncate, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { runStat } from "../../src/cli/stat.js";
import { Code, statContainerPath, TransferError } from "../../src/index.js";
import { containerId, startCopyEndpoint, writeTree } from "./harness.js";

const mtime = new Date("2021-03-04T05:06:07Z");
const noSignal = new AbortController().signal;

test("stat of a regular file", async (t) => {
  const { client, rootfs } = await startCopyEndpoint(t);
  await writeTree(rootfs, { etc: "/", "etc/hosts": "127.0.0.1 localhost\n" });
  await chmod(join(rootfs, "etc/hosts"), 0o640);
  await utimes(join(rootfs, "etc/hosts"), mtime, mtime);

  const stat = await statContainerPath(client, {
    containerId,
    path: "/etc/hosts",
  });

  assert.equal(stat.name, "hosts");
  assert.equal(stat.type, "file");
  assert.equal(stat.size, 20);
  assert.equal(stat.mode, 0o640);
  assert.equal(stat.mtime.getTime(), mtime.getTime());
  assert.equal(stat.linkTarget, "");
});

test("stat of a directory", async (t) => {
  const { client, rootfs } = await startCopyEndpoint(t);
  await writeTree(rootfs, { var: "/", "var/log": "/", "var/log/a": "x" });
  await chmod(join(rootfs, "var/log"), 0o1777);

  const stat = await statContainerPath(client, {
    containerId,
    path: "var/log/",
  });

  assert.equal(stat.name, "log");
  assert.equal(stat.type, "directory");
  assert.equal(stat.size, 0);
  assert.equal(stat.mode, 0o1777);
});

test("stat of the container root", async (t) => {
  const { client } = await startCopyEndpoint(t);

  const stat = await statContainerPath(client, { containerId, path: "/" });

  assert.equal(stat.name, "/");
  assert.equal(stat.type, "directory");
});

test("stat of a symlink", async (t) => {
  const { client, rootfs } = await startCopyEndpoint(t);
  await writeTree(rootfs, { "target.txt": "abc" });
  await symlink("target.txt", join(rootfs, "link"));

  const stat = await statContainerPath(client, { containerId, path: "/link" });
  const followed = await statContainerPath(
    client,
    { containerId, path: "/link" },
    { followLink: true },
  );

  assert.equal(stat.type, "symlink");
  assert.equal(stat.linkTarget, "target.txt");
  assert.equal(followed.type, "file");
  assert.equal(followed.name, "target.txt");
  assert.equal(followed.size, 3);
});

test("stat with a trailing slash asks for a directory", async (t) => {
  const { client, rootfs } = await startCopyEndpoint(t);
  await writeTree(rootfs, { "a.txt": "abc", dir: "/" });
  await symlink("dir", join(rootfs, "to-dir"));

  const error = await statContainerPath(client, {
    containerId,
    path: "/a.txt/",
  }).then(
    () => undefined,
    (failure: unknown) => failure,
  );
  const throughLink = await statContainerPath(client, {
    containerId,
    path: "/to-dir/",
  });

  assert.ok(error instanceof TransferError, String(error));
  assert.equal(error.code, Code.FailedPrecondition);
  assert.match(
    error.message,
    /"c1:\/a\.txt\/": not a directory \(it is a file\)/,
  );
  assert.equal(throughLink.type, "directory");
  assert.equal(throughLink.name, "dir");
});

test("stat of a missing path", async (t) => {
  const { client } = await startCopyEndpoint(t);

  await assert.rejects(
    statContainerPath(client, { containerId, path: "/no/such" }),
    (error: unknown) => {
      assert.ok(error instanceof TransferError);
      assert.equal(error.code, Code.NotFound);
      assert.match(error.message, /c1:\/no\/such": no such file/);
      return true;
    },
  );
});

test("stat of a large file", async (t) => {
  const { client, rootfs } = await startCopyEndpoint(t);
  await writeFile(join(rootfs, "big"), "");
  await truncate(join(rootfs, "big"), 2 * 1024 ** 3);
  const started = Date.now();

  const stat = await statContainerPath(client, { containerId, path: "/big" });

  assert.equal(stat.size, 2 * 1024 ** 3);
  // Receiving 2 GiB would take seconds; the stat stops after the header.
  assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
});

test("stat command prints fields", async (t) => {
  const { client, rootfs } = await startCopyEndpoint(t);
  await writeTree(rootfs, { "a.txt": "hello" });
  await chmod(join(rootfs, "a.txt"), 0o4755);
  await utimes(join(rootfs, "a.txt"), mtime, mtime);

  const text = await runStat(client, "c1:/a.txt", {}, noSignal);
  const json = JSON.parse(
    await runStat(client, "c1:/a.txt", { json: true }, noSignal),
  );

  assert.match(text, /^type: file$/m);
  assert.match(text, /^size: 5$/m);
  assert.match(text, /^mode: -rwsr-xr-x \(4755\)$/m);
  assert.match(text, /^modified: 2021-03-04T05:06:07.000Z$/m);
  assert.equal(json.type, "file");
  assert.equal(json.mode, 0o4755);
  assert.equal(json.mtime, "2021-03-04T05:06:07.000Z");
});

test("stat command rejects local path", async (t) => {
  const { client } = await startCopyEndpoint(t);

  await assert.rejects(
    runStat(client, "./a.txt", {}, noSignal),
    /invalid stat argument "\.\/a\.txt"/,
  );
});
