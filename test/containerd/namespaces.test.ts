/**
 * Containers are looked up in the namespace the client sends, and a
 * container that is not there is NotFound with its id and namespace.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { TransferError } from "../../src/errors/index.js";
import {
  type ContainerdEnv,
  containerdEnv,
  copyIn,
  copyOut,
  ctr,
  runContainer,
  serveContainerd,
  uniqueId,
} from "./harness.js";

/**
 * Removes a namespace, waiting up to 5 s for containerd's garbage
 * collector to empty it.
 */
async function removeNamespace(
  env: ContainerdEnv,
  namespace: string,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await ctr(env, "default", "namespaces", "rm", namespace);
      return;
    } catch (error) {
      if (attempt === 25) {
        throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

test("missing container: not found with id and namespace", async (t) => {
  const env = containerdEnv(t);
  if (!env) return;
  const { client } = await serveContainerd(t, env);

  const failure = await copyOut(client, "ctt-no-such-container", "/").catch(
    (error: unknown) => error,
  );

  assert.ok(failure instanceof TransferError, `got ${failure}`);
  assert.equal(failure.kind, "not found");
  assert.match(failure.rawMessage, /"ctt-no-such-container"/);
  assert.match(failure.rawMessage, /namespace "default"/);
});

test("namespace: c1 not found in another namespace", async (t) => {
  const env = containerdEnv(t);
  if (!env) return;
  const served = await serveContainerd(t, env);
  const other = served.clientIn(uniqueId("ns"));

  const failure = await copyOut(other, "c1", "/etc/passwd").catch(
    (error: unknown) => error,
  );

  assert.ok(failure instanceof TransferError, `got ${failure}`);
  assert.equal(failure.kind, "not found");
  assert.match(failure.rawMessage, /container "c1" not found/);
  assert.match(
    failure.rawMessage,
    new RegExp(`namespace "${other.namespace}"`),
  );
});

test("namespace: container of another namespace copied", async (t) => {
  const env = containerdEnv(t);
  if (!env) return;
  const served = await serveContainerd(t, env);
  const namespace = uniqueId("ns");
  const id = uniqueId("other");
  const dir = await mkdtemp(join(tmpdir(), "ctt-image-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await ctr(
    env,
    "default",
    "images",
    "export",
    join(dir, "image.tar"),
    env.image,
  );
  await ctr(env, namespace, "images", "import", join(dir, "image.tar"));
  await runContainer(t, env, id, { namespace, noTask: true });
  // t.after hooks run in the order they were added: this one after the
  // container's removal.
  t.after(async () => {
    await ctr(env, namespace, "images", "rm", "--sync", env.image);
    await removeNamespace(env, namespace);
  });
  const inNamespace = served.clientIn(namespace);

  await copyIn(inNamespace, id, "/", [{ name: "where.txt", body: namespace }]);
  const entries = await copyOut(inNamespace, id, "/where.txt");
  const fromDefault = await copyOut(served.client, id, "/").catch(
    (error: unknown) => error,
  );

  assert.equal(entries.get("where.txt")?.body, namespace);
  assert.ok(fromDefault instanceof TransferError, `got ${fromDefault}`);
  assert.equal(fromDefault.kind, "not found");
});
