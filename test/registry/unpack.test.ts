/**
 * Pull with unpack through a real containerd 1.7, each test in a
 * namespace of its own so that no snapshot exists beforehand.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { type TestContext, test } from "node:test";
import { hostPlatform } from "../../src/client/image-platform.js";
import { connect, pullImage, pushImage } from "../../src/client/index.js";
import { TransferError } from "../../src/errors/index.js";
import {
  connectTo,
  ctr,
  ctrIn,
  type RegistryEnv,
  registryEnv,
  uniqueRepository,
} from "./registry-env.js";

test("pull with unpack creates snapshots", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const remote = await pushToTls(t, env, "unpack");
  const namespace = await temporaryNamespace(t, env);
  const client = connect({ address: env.address, namespace });
  t.after(() => client.close());

  await pullImage(client, remote, {
    unpack: [{ platform: hostPlatform() }],
  });

  const snapshots = await ctrIn(env, namespace, "snapshots", "ls");
  assert.match(snapshots, /sha256:[0-9a-f]{64}\s+Committed/);
});

test("pull without unpack creates none", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const remote = await pushToTls(t, env, "no-unpack");
  const namespace = await temporaryNamespace(t, env);
  const client = connect({ address: env.address, namespace });
  t.after(() => client.close());

  await pullImage(client, remote);

  const snapshots = await ctrIn(env, namespace, "snapshots", "ls");
  assert.doesNotMatch(snapshots, /sha256:/);
});

test("unpack to unlisted snapshotter fails", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const remote = await pushToTls(t, env, "bad-unpack");
  const namespace = await temporaryNamespace(t, env);
  const client = connect({ address: env.address, namespace });
  t.after(() => client.close());

  const pull = pullImage(client, remote, {
    unpack: [{ platform: hostPlatform(), snapshotter: "native" }],
  });

  // containerd 1.7 keeps only the pairs of its transfer plugin's
  // unpack_config (default: overlayfs) and fails when none is left.
  await assert.rejects(pull, (error: unknown) => {
    assert.ok(error instanceof TransferError);
    assert.equal(error.kind, "invalid argument");
    assert.match(error.rawMessage, /no unpack platforms defined/);
    return true;
  });
});

async function pushToTls(
  t: TestContext,
  env: RegistryEnv,
  name: string,
): Promise<string> {
  const remote = `${env.tlsRegistry}/${uniqueRepository(name)}:1`;
  await pushImage(connectTo(t, env), env.image, remote);
  return remote;
}

// Creates nothing by itself: containerd makes the namespace on first use.
// When the test ends its images and snapshots are removed, then the
// namespace.
async function temporaryNamespace(
  t: TestContext,
  env: RegistryEnv,
): Promise<string> {
  const namespace = `ctt-reg-${randomBytes(3).toString("hex")}`;
  t.after(async () => {
    const images = await ctrIn(env, namespace, "images", "ls", "-q");
    for (const image of images.split("\n").filter(Boolean)) {
      await ctrIn(env, namespace, "images", "rm", image);
    }
    const snapshots = await ctrIn(env, namespace, "snapshots", "ls");
    for (const line of snapshots.split("\n").slice(1)) {
      const key = line.trim().split(/\s+/)[0];
      if (key) {
        // containerd's garbage collector may remove the snapshot first,
        // once its image is gone.
        await ctrIn(env, namespace, "snapshots", "rm", key).catch((error) => {
          if (!/not found/.test(String(error))) {
            throw error;
          }
        });
      }
    }
    // Content is garbage-collected shortly after the images are gone.
    for (let attempt = 0; attempt < 50; attempt++) {
      const removed = await ctr(env, "namespaces", "rm", namespace).then(
        () => true,
        () => false,
      );
      if (removed) {
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });
  return namespace;
}
