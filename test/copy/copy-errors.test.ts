/**
 * Failures of `cp` as a user meets them: the exit code, and a message on
 * standard error that names the path and, for a permission problem,
 * states it. Permission cases run the command, or the server, as `nobody`,
 * because root may read and write anything.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { truncateSync } from "node:fs";
import { chmod, lstat, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { runCopy } from "../../src/cli/cp.js";
import {
  type ContainerLocation,
  connect,
  copyFromContainer,
  copyIntoContainer,
} from "../../src/client/index.js";
import { Code, TransferError } from "../../src/errors/index.js";
import {
  containerId,
  protocol,
  readTree,
  runCli,
  startCopyEndpoint,
  startServeProcess,
  writeTree,
} from "./harness.js";

const isRoot = process.getuid?.() === 0;
const nobody = { uid: 65534, gid: 65534 };

/** Makes the endpoint's folders and socket usable by `nobody`. */
async function openToNobody(dir: string, socket: string): Promise<void> {
  await chmod(dir, 0o755);
  await chmod(socket, 0o777);
}

test("missing local source exits 1", async (t) => {
  const { socket, local } = await startCopyEndpoint(t);

  const result = await runCli(socket, [
    "cp",
    "-q",
    join(local, "absent.txt"),
    "c1:/",
  ]);

  assert.equal(result.status, 1, result.stderr);
  assert.match(
    result.stderr,
    new RegExp(`cannot copy "${local}/absent.txt": no such file`),
  );
});

test("cp short -a means archive", async (t) => {
  const { socket, local, rootfs } = await startCopyEndpoint(t);
  await writeFile(join(local, "owned.txt"), "kept\n");

  const result = await runCli(socket, [
    "cp",
    "-a",
    "-q",
    join(local, "owned.txt"),
    "c1:/owned.txt",
  ]);

  assert.equal(result.status, 0, result.stderr);
  assert.equal(await readFile(join(rootfs, "owned.txt"), "utf8"), "kept\n");
});

test("missing container source exits 1", async (t) => {
  const { socket, local } = await startCopyEndpoint(t);

  const result = await runCli(socket, [
    "cp",
    "-q",
    "c1:/etc/absent",
    join(local, "out"),
  ]);

  assert.equal(result.status, 1, result.stderr);
  assert.match(
    result.stderr,
    /cannot copy "c1:\/etc\/absent": no such file or directory in the container/,
  );
  assert.deepEqual(await readTree(local), {});
});

test("copy between two local paths exits 2", async (t) => {
  const { socket, local } = await startCopyEndpoint(t);

  const result = await runCli(socket, ["cp", local, join(local, "x")]);

  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /exactly one side must be CONTAINER:PATH/);
});

test("unreadable local file names permission", { skip: !isRoot }, async (t) => {
  const { socket, dir, local } = await startCopyEndpoint(t);
  await openToNobody(dir, socket);
  await chmod(local, 0o755);
  await writeTree(local, { src: "/", "src/secret.txt": "s", "src/ok": "o" });
  await chmod(join(local, "src/secret.txt"), 0o600);

  const result = await runCli(
    socket,
    ["cp", "-q", join(local, "src"), "c1:/data"],
    { user: nobody },
  );

  assert.equal(result.status, 1, result.stderr);
  assert.match(result.stderr, new RegExp(`"${local}/src/secret.txt"`));
  assert.match(result.stderr, /permission denied/);
});

test("unwritable local folder names permission", {
  skip: !isRoot,
}, async (t) => {
  const { socket, dir, local, rootfs } = await startCopyEndpoint(t);
  await openToNobody(dir, socket);
  await chmod(local, 0o755);
  await writeTree(rootfs, { "f.txt": "x" });

  const result = await runCli(
    socket,
    ["cp", "-q", "c1:/f.txt", join(local, "out.txt")],
    { user: nobody },
  );

  assert.equal(result.status, 1, result.stderr);
  assert.match(
    result.stderr,
    new RegExp(`cannot write to "${local}": permission denied`),
  );
  assert.deepEqual(await readTree(local), {});
});

test("copy out keeping owners as non-root says it needs root", {
  skip: !isRoot,
}, async (t) => {
  const { socket, dir, local, rootfs } = await startCopyEndpoint(t);
  await openToNobody(dir, socket);
  await chmod(local, 0o777);
  // The file is owned by root, and only root may chown a file to root.
  await writeTree(rootfs, { "f.txt": "x" });

  const result = await runCli(
    socket,
    ["cp", "-q", "-a", "c1:/f.txt", join(local, "out.txt")],
    { user: nobody },
  );

  assert.equal(result.status, 1, result.stderr);
  assert.match(result.stderr, new RegExp(`to "${local}/out.txt": `));
  assert.match(result.stderr, /-a\) needs root here: copy as root/);
  assert.deepEqual(await readTree(local), {});
});

test("container permission failure names path", {
  skip: !isRoot,
}, async (t) => {
  const { dir, root, rootfs, local } = await startCopyEndpoint(t);
  await chmod(join(root, containerId), 0o755);
  await writeTree(rootfs, { secret: "s", locked: "/" });
  await chmod(join(rootfs, "secret"), 0o600);
  await chmod(join(rootfs, "locked"), 0o755);
  await writeFile(join(local, "f.txt"), "x");
  await chmod(dir, 0o777);
  const socket = await startServeProcess(t, dir, root, nobody);
  const client = connect({ address: socket, protocol });
  t.after(() => client.close());
  const signal = new AbortController().signal;
  const flags = { quiet: true };

  await assert.rejects(
    runCopy(client, "c1:/secret", join(local, "out"), flags, signal),
    /failed to stat "c1:\/secret": failed to open "\/secret": permission denied/,
  );
  await assert.rejects(
    runCopy(client, join(local, "f.txt"), "c1:/locked/", flags, signal),
    /to "c1:\/locked\/f\.txt": failed to create "\/locked\/f\.txt": permission denied/,
  );
});

test("serve rejects missing root", async (t) => {
  const { dir } = await startCopyEndpoint(t);

  const result = await runCli(join(dir, "unused.sock"), [
    "serve",
    "--root",
    join(dir, "absent"),
    "--ttrpc",
    join(dir, "second.sock"),
  ]);

  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /invalid --root .*absent: no such directory/);
});

test("shrinking file fails copy out", async (t) => {
  const { client, rootfs, local } = await startCopyEndpoint(t);
  const source = join(rootfs, "log");
  const size = 64 * 1024 * 1024;
  await writeFile(source, Buffer.alloc(size, 7));
  let cut = false;

  // The server reads at most a window ahead of what the client received,
  // so the cut happens long before the end of the file.
  const copying = copyFromContainer(
    client,
    { containerId, path: "/log" },
    join(local, "log"),
    {
      onBytes: () => {
        if (!cut) {
          cut = true;
          truncateSync(source, 1000);
        }
      },
    },
  );

  await assert.rejects(
    copying,
    (error: unknown) =>
      error instanceof TransferError &&
      error.code === Code.Aborted &&
      new RegExp(`"/log" shrank from ${size} to \\d+ bytes`).test(
        error.message,
      ),
  );
  assert.deepEqual(await readdir(local), []);
});

test("empty local path rejected", async (t) => {
  const { client, rootfs } = await startCopyEndpoint(t);
  await writeTree(rootfs, { "f.txt": "kept" });
  const location = { containerId, path: "/f.txt" };

  await assert.rejects(
    copyIntoContainer(client, "", { containerId, path: "/in" }),
    (error: TransferError) =>
      error.code === Code.InvalidArgument &&
      /invalid local source "": give a path, or \./.test(error.rawMessage),
  );
  await assert.rejects(
    copyFromContainer(client, location, ""),
    (error: TransferError) =>
      error.code === Code.InvalidArgument &&
      /invalid local destination ""/.test(error.rawMessage),
  );
  assert.deepEqual(await readTree(rootfs), { "f.txt": "kept" });
});

test("malformed container location rejected", async (t) => {
  const { client, local } = await startCopyEndpoint(t);
  const cases: [unknown, unknown, RegExp][] = [
    [containerId, 5, /invalid container path 5: give the path as a string/],
    [
      containerId,
      "/a\0b",
      /invalid container path "\/a\\u0000b": it contains a NUL byte/,
    ],
    ["", "/", /invalid container id "": give the container's id/],
  ];

  for (const [id, path, message] of cases) {
    const location = { containerId: id, path } as ContainerLocation;
    await assert.rejects(
      copyFromContainer(client, location, join(local, "out")),
      (error: TransferError) =>
        error.code === Code.InvalidArgument && message.test(error.rawMessage),
    );
  }
  assert.deepEqual(await readTree(local), {});
});

test("empty cp argument exits 2", async (t) => {
  const { socket } = await startCopyEndpoint(t);

  const result = await runCli(socket, ["cp", "-q", "", "c1:/in"]);

  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /invalid copy argument "": give a path/);
});

test("server invalid argument exits 1", async (t) => {
  const { socket, local, rootfs } = await startCopyEndpoint(t);
  await writeTree(rootfs, { loop: "->loop" });

  const result = await runCli(socket, [
    "cp",
    "-q",
    "c1:/loop/f",
    join(local, "f"),
  ]);

  assert.equal(result.status, 1, result.stderr);
  assert.match(result.stderr, /more than 40 symlinks/);
});

test("copy never replaces a FIFO or device", async (t) => {
  const { client, local, rootfs } = await startCopyEndpoint(t);
  await writeTree(rootfs, { "f.txt": "data" });
  await writeFile(join(local, "f.txt"), "data");
  await promisify(execFile)("mkfifo", [
    join(local, "fifo"),
    join(rootfs, "fifo"),
  ]);
  const targets = [join(local, "fifo")];
  if (isRoot) {
    await promisify(execFile)("mknod", [join(local, "null"), "c", "1", "3"]);
    targets.push(join(local, "null"));
  }

  for (const target of targets) {
    await assert.rejects(
      copyFromContainer(client, { containerId, path: "/f.txt" }, target),
      /cannot replace (FIFO|character device) ".*": a copy writes only files/,
    );
  }
  await assert.rejects(
    copyIntoContainer(client, join(local, "f.txt"), {
      containerId,
      path: "/fifo",
    }),
    /cannot replace FIFO "c1:\/fifo"/,
  );
  assert.ok((await lstat(join(local, "fifo"))).isFIFO());
  assert.ok((await lstat(join(rootfs, "fifo"))).isFIFO());
  if (isRoot) {
    assert.ok((await lstat(join(local, "null"))).isCharacterDevice());
  }
});

test("FIFO in the container not copied to a local path", async (t) => {
  const { client, local, rootfs } = await startCopyEndpoint(t);
  await promisify(execFile)("mkfifo", [join(rootfs, "fifo")]);

  await assert.rejects(
    copyFromContainer(client, { containerId, path: "/fifo" }, local),
    (error: TransferError) =>
      error.code === Code.FailedPrecondition &&
      /^cannot copy FIFO "c1:\/fifo": a copy carries only files/.test(
        error.rawMessage,
      ),
  );
  assert.deepEqual(await readdir(local), []);
});

test("FIFO source rejected", async (t) => {
  const { client, local, rootfs } = await startCopyEndpoint(t);
  const fifo = join(local, "fifo");
  await promisify(execFile)("mkfifo", [fifo]);

  await assert.rejects(
    copyIntoContainer(client, fifo, { containerId, path: "/copied" }),
    (error: TransferError) =>
      error.code === Code.FailedPrecondition &&
      /cannot copy FIFO ".*fifo": a copy carries only files/.test(
        error.rawMessage,
      ),
  );
  assert.deepEqual(await readTree(rootfs), {});
});

test("a name with U+FFFD is refused, not skipped", async (t) => {
  const { client, local, rootfs } = await startCopyEndpoint(t);
  const name = "a\uFFFDb";
  await writeFile(join(local, name), "local");
  await writeFile(join(rootfs, name), "container");

  await assert.rejects(
    copyIntoContainer(client, join(local, name), { containerId, path: "/in" }),
    (error: TransferError) =>
      error.code === Code.InvalidArgument &&
      /contains U\+FFFD/.test(error.message),
  );
  await assert.rejects(
    copyFromContainer(
      client,
      { containerId, path: `/${name}` },
      join(local, "out"),
    ),
    (error: TransferError) =>
      error.code === Code.InvalidArgument &&
      /contains U\+FFFD/.test(error.message),
  );
  assert.deepEqual((await readdir(local)).sort(), [name]);
});
