/**
 * Copies into and out of containers without a running task, through
 * their mounted snapshot, and checks that every mount goes away again.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";
import { TransferError } from "../../src/errors/index.js";
import { ContainerPath, ReadStream } from "../../src/transfer/index.js";
import { rawTar } from "../helpers/raw-tar.js";
import {
  type ContainerdEnv,
  containerdEnv,
  copyIn,
  copyOut,
  ctr,
  exec,
  leftoverMountPoints,
  processesMentioning,
  runContainer,
  type Served,
  serveContainerd,
  stopTask,
  taskStatus,
  uniqueId,
} from "./harness.js";

const run = promisify(execFile);

/**
 * Reads a file of a container's snapshot without the server: mounts the
 * snapshot with `ctr snapshots mounts` in a private mount namespace.
 */
async function readSnapshotFile(
  env: ContainerdEnv,
  id: string,
  path: string,
): Promise<string> {
  const script =
    'target=$(mktemp -d) && eval "$("$0" --address "$1" snapshots mounts ' +
    '"$target" "$2")" && cat "$target$3"';
  const { stdout } = await run("unshare", [
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    script,
    env.ctr,
    env.address,
    id,
    path,
  ]);
  return stdout;
}

/** Checks that the server left no mount point and no mount helper. */
async function assertUnmounted(served: Served): Promise<void> {
  assert.deepEqual(await leftoverMountPoints(served), []);
  assert.deepEqual(await processesMentioning(served.mountDirectory), []);
}

test("created container: copied into and out of", async (t) => {
  const env = containerdEnv(t);
  if (!env) return;
  const served = await serveContainerd(t, env);
  const id = uniqueId("created");
  await runContainer(t, env, id, { noTask: true });

  await copyIn(served.client, id, "/srv", [
    { name: "app.conf", body: "port=80\n" },
    { name: "lib", type: "5" },
    { name: "lib/x.txt", body: "x\n" },
  ]);
  const entries = await copyOut(served.client, id, "/srv");

  assert.equal(await readSnapshotFile(env, id, "/srv/app.conf"), "port=80\n");
  assert.equal(await readSnapshotFile(env, id, "/srv/lib/x.txt"), "x\n");
  assert.equal(entries.get("srv/app.conf")?.body, "port=80\n");
  assert.equal(entries.get("srv/lib/x.txt")?.body, "x\n");
  assert.equal(entries.get("srv/lib")?.type, "Directory");
  assert.equal(served.log.count("mounted snapshot"), 2);
  assert.equal(served.log.count("unmounted snapshot"), 2);
  await assertUnmounted(served);
});

test("stopped task: copied out, in, and again after delete", async (t) => {
  const env = containerdEnv(t);
  if (!env) return;
  const served = await serveContainerd(t, env);
  const id = uniqueId("stopped");
  await runContainer(t, env, id);
  await exec(env, id, "sh", "-c", "echo before stop > /root/log.txt");
  await stopTask(env, "default", id);
  assert.equal(await taskStatus(env, "default", id), "STOPPED");

  // The stopped task's rootfs is still mounted by the shim: used as is.
  const stopped = await copyOut(served.client, id, "/root/log.txt");
  await copyIn(served.client, id, "/root", [{ name: "added.txt", body: "+" }]);
  await ctr(env, "default", "tasks", "delete", id);
  const deleted = await copyOut(served.client, id, "/root");

  assert.equal(stopped.get("log.txt")?.body, "before stop\n");
  assert.equal(deleted.get("root/log.txt")?.body, "before stop\n");
  assert.equal(deleted.get("root/added.txt")?.body, "+");
  assert.equal(served.log.count("using mounted snapshot"), 2);
  assert.equal(served.log.count("mounted snapshot"), 1);
  await assertUnmounted(served);
});

for (const state of ["created", "stopped"] as const) {
  test(`${state} container: read-only rootfs rejects copy in`, async (t) => {
    const env = containerdEnv(t);
    if (!env) return;
    const served = await serveContainerd(t, env);
    const id = uniqueId(`ro-${state}`);
    await runContainer(t, env, id, {
      noTask: state === "created",
      readOnly: true,
    });
    if (state === "stopped") {
      await stopTask(env, "default", id);
    }

    const failure = await copyIn(served.client, id, "/etc", [
      { name: "motd", body: "changed" },
    ]).catch((error: unknown) => error);

    assert.ok(failure instanceof TransferError, `got ${failure}`);
    assert.equal(failure.kind, "permission denied");
    assert.match(failure.rawMessage, /"\/etc\/motd"/);
    assert.match(failure.rawMessage, /read-only file system/);
    const listing = await copyOut(served.client, id, "/etc");
    assert.equal(listing.has("etc/passwd"), true);
    assert.equal(listing.has("etc/motd"), false);
    await assertUnmounted(served);
  });
}

test("created container: canceled copy unmounts", async (t) => {
  const env = containerdEnv(t);
  if (!env) return;
  const served = await serveContainerd(t, env);
  const id = uniqueId("cancel");
  await runContainer(t, env, id, { noTask: true });
  const archive = rawTar([{ name: "big.bin", body: Buffer.alloc(256 * 1024) }]);
  const abort = new AbortController();

  // Sends part of the archive, then stalls until the copy is canceled.
  async function* stalling() {
    yield archive.subarray(0, 64 * 1024);
    abort.abort(new Error("test cancels the copy"));
    await new Promise(() => {});
  }
  const copy = served.client.transfer(
    new ReadStream(stalling()),
    new ContainerPath({ containerId: id, path: "/tmp" }),
    { signal: abort.signal },
  );

  await assert.rejects(copy);
  for (
    let i = 0;
    i < 100 && served.log.count("unmounted snapshot") === 0;
    i++
  ) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(served.log.count("unmounted snapshot"), 1);
  await assertUnmounted(served);
});

test("created container: concurrent copies share a mount", async (t) => {
  const env = containerdEnv(t);
  if (!env) return;
  const served = await serveContainerd(t, env);
  const id = uniqueId("shared");
  await runContainer(t, env, id, { noTask: true });

  // The first copy keeps its mount until the server has started the
  // second one on the same snapshot.
  async function* waitsForSecond() {
    const archive = rawTar([{ name: "first.txt", body: "1" }]);
    yield archive.subarray(0, 512);
    for (
      let i = 0;
      i < 100 && served.log.count("using the container's snapshot") < 2;
      i++
    ) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    yield archive.subarray(512);
  }
  await Promise.all([
    served.client.transfer(
      new ReadStream(waitsForSecond()),
      new ContainerPath({ containerId: id, path: "/" }),
    ),
    copyIn(served.client, id, "/", [{ name: "second.txt", body: "2" }]),
  ]);

  assert.equal(served.log.count("using the container's snapshot"), 2);
  assert.equal(served.log.count("mounted snapshot"), 1);
  assert.equal(await readSnapshotFile(env, id, "/first.txt"), "1");
  assert.equal(await readSnapshotFile(env, id, "/second.txt"), "2");
  await assertUnmounted(served);
});
