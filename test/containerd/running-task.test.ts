/**
 * Copies into and out of containers whose task runs, through the task's
 * view of its file system: the CI container c1 and containers of our own
 * with tmpfs and read-only mounts.
 */
import assert from "node:assert/strict";
import {
  access,
  mkdtemp,
  readdir,
  readFile,
  rm,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { TransferError } from "../../src/errors/index.js";
import {
  containerdEnv,
  copyIn,
  copyOut,
  exec,
  runContainer,
  serveContainerd,
  uniqueId,
} from "./harness.js";

/** Creates a folder in c1 for one test and removes it afterwards. */
async function scratchInC1(
  t: import("node:test").TestContext,
  env: NonNullable<Awaited<ReturnType<typeof containerdEnv>>>,
): Promise<string> {
  const dir = `/tmp/${uniqueId("dir")}`;
  await exec(env, "c1", "mkdir", "-p", dir);
  t.after(() => exec(env, "c1", "rm", "-rf", dir).then(() => {}));
  return dir;
}

test("running task: file and folder copied in", async (t) => {
  const env = containerdEnv(t);
  if (!env) return;
  const { client } = await serveContainerd(t, env);
  const dir = await scratchInC1(t, env);

  await copyIn(client, "c1", dir, [
    { name: "note.txt", body: "hello from the host\n" },
    { name: "tree", type: "5" },
    { name: "tree/a.txt", body: "a\n" },
    { name: "tree/sub", type: "5" },
    { name: "tree/sub/b.txt", body: "b\n", mode: 0o600 },
  ]);

  assert.equal(
    await exec(env, "c1", "cat", `${dir}/note.txt`),
    "hello from the host\n",
  );
  assert.equal(await exec(env, "c1", "cat", `${dir}/tree/a.txt`), "a\n");
  assert.equal(await exec(env, "c1", "cat", `${dir}/tree/sub/b.txt`), "b\n");
  assert.equal(
    (await exec(env, "c1", "stat", "-c", "%a", `${dir}/tree/sub/b.txt`)).trim(),
    "600",
  );
});

test("running task: file written inside copied out", async (t) => {
  const env = containerdEnv(t);
  if (!env) return;
  const { client } = await serveContainerd(t, env);
  const dir = await scratchInC1(t, env);
  await exec(env, "c1", "sh", "-c", `echo written inside > ${dir}/out.txt`);

  const entries = await copyOut(client, "c1", `${dir}/out.txt`);

  assert.deepEqual([...entries.keys()], ["out.txt"]);
  assert.equal(entries.get("out.txt")?.body, "written inside\n");
});

test("running task: absolute symlink destination stays inside", async (t) => {
  const env = containerdEnv(t);
  if (!env) return;
  const { client } = await serveContainerd(t, env);
  const dir = await scratchInC1(t, env);
  // Both links are absolute: on the host they would lead to the host's
  // own /tmp and /.
  await exec(env, "c1", "mkdir", `${dir}/real`);
  await exec(env, "c1", "ln", "-s", `${dir}/real`, `${dir}/dest`);
  await exec(env, "c1", "ln", "-s", "/", `${dir}/slash`);

  await copyIn(client, "c1", `${dir}/dest`, [{ name: "one.txt", body: "1" }]);
  await copyIn(client, "c1", `${dir}/slash${dir}/real`, [
    { name: "two.txt", body: "2" },
  ]);

  assert.equal(await exec(env, "c1", "cat", `${dir}/real/one.txt`), "1");
  assert.equal(await exec(env, "c1", "cat", `${dir}/real/two.txt`), "2");
  await assert.rejects(access(dir), { code: "ENOENT" }, "written on the host");
});

test("running task: tmpfs mount copied into and out of", async (t) => {
  const env = containerdEnv(t);
  if (!env) return;
  const { client } = await serveContainerd(t, env);
  const id = uniqueId("tmpfs");
  await runContainer(t, env, id, {
    mounts: ["type=tmpfs,src=tmpfs,dst=/data,options=size=1m"],
  });
  await exec(env, id, "sh", "-c", "echo made inside > /data/inside.txt");

  await copyIn(client, id, "/data", [{ name: "in.txt", body: "on tmpfs\n" }]);
  const entries = await copyOut(client, id, "/data");

  assert.equal(await exec(env, id, "cat", "/data/in.txt"), "on tmpfs\n");
  assert.equal(entries.get("data/inside.txt")?.body, "made inside\n");
  assert.equal(entries.get("data/in.txt")?.body, "on tmpfs\n");
  // The file is on the container's tmpfs, not in its rootfs snapshot.
  const rootfs = join(
    env.workdir,
    "state/io.containerd.runtime.v2.task/default",
    id,
    "rootfs",
  );
  assert.deepEqual(await readdir(join(rootfs, "data")).catch(() => []), []);
});

test("running task: read-only mount rejects copy in", async (t) => {
  const env = containerdEnv(t);
  if (!env) return;
  const { client } = await serveContainerd(t, env);
  const hostDir = await mkdtemp(join(tmpdir(), "ctt-ro-"));
  t.after(() => rm(hostDir, { recursive: true, force: true }));
  await writeFile(join(hostDir, "kept.txt"), "unchanged");
  const id = uniqueId("ro");
  await runContainer(t, env, id, {
    mounts: [`type=bind,src=${hostDir},dst=/ro,options=rbind:ro`],
  });

  const failure = await copyIn(client, id, "/ro", [
    { name: "kept.txt", body: "overwritten" },
    { name: "new.txt", body: "new" },
  ]).catch((error: unknown) => error);

  assert.ok(failure instanceof TransferError, `got ${failure}`);
  assert.equal(failure.kind, "permission denied");
  assert.match(failure.rawMessage, /"\/ro\/kept\.txt"/);
  assert.match(failure.rawMessage, /read-only file system/);
  assert.deepEqual(await readdir(hostDir), ["kept.txt"]);
  assert.equal(await readFile(join(hostDir, "kept.txt"), "utf8"), "unchanged");
});

test("running task: mounted file written in place", async (t) => {
  const env = containerdEnv(t);
  if (!env) return;
  const { client } = await serveContainerd(t, env);
  const hostDir = await mkdtemp(join(tmpdir(), "ctt-file-"));
  t.after(() => rm(hostDir, { recursive: true, force: true }));
  const hostFile = join(hostDir, "app.conf");
  await writeFile(hostFile, "old\n");
  const id = uniqueId("filemount");
  await runContainer(t, env, id, {
    mounts: [`type=bind,src=${hostFile},dst=/etc/app.conf,options=rbind:rw`],
  });

  // Both the small-file path and the path of a file written in parts.
  await copyIn(client, id, "/etc", [{ name: "app.conf", body: "new\n" }]);
  assert.equal(await readFile(hostFile, "utf8"), "new\n");
  const large = "x".repeat(3 * 1024 * 1024);
  await copyIn(client, id, "/etc", [{ name: "app.conf", body: large }]);
  assert.equal(await readFile(hostFile, "utf8"), large);

  // The mount is still there: the container writes to the host's file.
  await exec(env, id, "sh", "-c", "echo app > /etc/app.conf");
  assert.equal(await readFile(hostFile, "utf8"), "app\n");
  const failure = await copyIn(client, id, "/etc", [
    { name: "app.conf", type: "2", linkname: "/etc/passwd" },
  ]).catch((error: unknown) => error);
  assert.ok(failure instanceof TransferError, `got ${failure}`);
  assert.equal(failure.kind, "failed precondition");
  assert.equal(await readFile(hostFile, "utf8"), "app\n");
});

test("running task: read-only mounted file rejects", async (t) => {
  const env = containerdEnv(t);
  if (!env) return;
  const { client } = await serveContainerd(t, env);
  const hostDir = await mkdtemp(join(tmpdir(), "ctt-rofile-"));
  t.after(() => rm(hostDir, { recursive: true, force: true }));
  const hostFile = join(hostDir, "secret");
  await writeFile(hostFile, "unchanged");
  const id = uniqueId("rofile");
  await runContainer(t, env, id, {
    mounts: [`type=bind,src=${hostFile},dst=/etc/secret,options=rbind:ro`],
  });

  const failure = await copyIn(client, id, "/etc", [
    { name: "secret", body: "overwritten" },
  ]).catch((error: unknown) => error);

  assert.ok(failure instanceof TransferError, `got ${failure}`);
  assert.equal(failure.kind, "permission denied");
  assert.equal(await readFile(hostFile, "utf8"), "unchanged");
  assert.equal(await exec(env, id, "cat", "/etc/secret"), "unchanged");
});

test("running task: read-only rootfs rejects copy in", async (t) => {
  const env = containerdEnv(t);
  if (!env) return;
  const { client } = await serveContainerd(t, env);
  const id = uniqueId("rorootfs");
  await runContainer(t, env, id, { readOnly: true });

  const failure = await copyIn(client, id, "/etc", [
    { name: "passwd", body: "root::0:0::/:/bin/sh\n" },
  ]).catch((error: unknown) => error);

  assert.ok(failure instanceof TransferError, `got ${failure}`);
  assert.equal(failure.kind, "permission denied");
  assert.match(failure.rawMessage, /"\/etc\/passwd"/);
  assert.equal(
    await exec(env, id, "cat", "/etc/passwd"),
    "root:x:0:0:root:/root:/bin/sh\n",
  );
});

test("running task: procfs rejects copy in", async (t) => {
  const env = containerdEnv(t);
  if (!env) return;
  const { client } = await serveContainerd(t, env);

  const failure = await copyIn(client, "c1", "/proc", [
    { name: "added.txt", body: "x" },
  ]).catch((error: unknown) => error);

  assert.ok(failure instanceof TransferError, `got ${failure}`);
  assert.match(failure.rawMessage, /failed to create "\/proc\/added\.txt"/);
  assert.match(
    failure.rawMessage,
    /takes no new names: a file system such as \/proc/,
  );
});
