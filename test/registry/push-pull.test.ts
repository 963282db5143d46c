/**
 * Push and pull through a real containerd 1.7 and a docker-registry 2.8
 * over TLS on 127.0.0.1, without authentication.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { pullImage, pushImage } from "../../src/client/index.js";
import { TransferError } from "../../src/errors/index.js";
import type { Progress } from "../../src/transfer/index.js";
import {
  connectTo,
  imageDigest,
  manifestBlobs,
  registryEnv,
  removeImagesAfter,
  uniqueRepository,
} from "./registry-env.js";

test("push then pull keeps digest", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const client = connectTo(t, env);
  const remote = `${env.tlsRegistry}/${uniqueRepository("round-trip")}:1`;
  const pulledName = `example.test/ctt-pulled-${Date.now()}:1`;
  removeImagesAfter(t, env, pulledName);

  const pushed = await pushImage(client, env.image, remote);
  const pulled = await pullImage(client, remote, { name: pulledName });

  assert.equal(pushed.reference, remote);
  assert.equal(pulled.name, pulledName);
  const original = await imageDigest(env, env.image);
  assert.ok(original, `${env.image} is missing from containerd`);
  assert.equal(await imageDigest(env, pulledName), original);
});

test("pull under the reference name", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const client = connectTo(t, env);
  const remote = `${env.tlsRegistry}/${uniqueRepository("default-name")}:2`;
  removeImagesAfter(t, env, remote);
  await pushImage(client, env.image, remote);

  const pulled = await pullImage(client, remote);

  assert.equal(pulled.name, remote);
  assert.equal(
    await imageDigest(env, remote),
    await imageDigest(env, env.image),
  );
});

test("progress covers every blob", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const client = connectTo(t, env);
  const remote = `${env.tlsRegistry}/${uniqueRepository("progress")}:1`;
  const pulledName = `example.test/ctt-progress-${Date.now()}:1`;
  removeImagesAfter(t, env, pulledName);
  const digest = await imageDigest(env, env.image);
  assert.ok(digest, `${env.image} is missing from containerd`);
  const blobs = await manifestBlobs(env, digest);

  const push = await recordProgress((onProgress) =>
    pushImage(client, env.image, remote, { onProgress }),
  );
  const pull = await recordProgress((onProgress) =>
    pullImage(client, remote, { name: pulledName, onProgress }),
  );

  for (const [operation, record] of [
    ["push", push],
    ["pull", pull],
  ] as const) {
    assert.equal(record.late, 0, `${operation}: events after it settled`);
    for (const blob of [...blobs.layers, blobs.config]) {
      assert.ok(
        finished(record.events, blob),
        `${operation}: no final event for ${blob}`,
      );
    }
  }
  // containerd 1.7 often closes the progress stream of a push before it
  // reports the manifest it pushed last, so only the pull is checked.
  assert.ok(
    finished(pull.events, digest),
    `pull: no final event for manifest ${digest}`,
  );
  assert.ok(
    push.events.some((e) => e.event.startsWith("Completed push to")),
    "push: no completion event",
  );
  assert.ok(
    pull.events.some((e) => e.event.startsWith("Completed pull from")),
    "pull: no completion event",
  );
});

test("pull missing tag is not found", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const client = connectTo(t, env);
  const remote = `${env.tlsRegistry}/${uniqueRepository("missing")}:absent`;

  const pull = pullImage(client, remote);

  await assert.rejects(pull, (error: unknown) => {
    assert.ok(error instanceof TransferError);
    assert.equal(error.kind, "not found");
    assert.ok(error.rawMessage.includes(remote), error.rawMessage);
    return true;
  });
});

test("push missing image is not found", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const client = connectTo(t, env);
  const remote = `${env.tlsRegistry}/${uniqueRepository("no-local")}:1`;

  const push = pushImage(client, "example.test/ctt-absent:1", remote);

  await assert.rejects(push, (error: unknown) => {
    assert.ok(error instanceof TransferError);
    assert.equal(error.kind, "not found");
    return true;
  });
});

interface ProgressRecord {
  events: Progress[];
  /** Events that arrived after the operation settled. */
  late: number;
}

// Runs an operation and records its progress, counting events that come
// after it settled (with 500 ms to show up).
async function recordProgress(
  operation: (onProgress: (event: Progress) => void) => Promise<unknown>,
): Promise<ProgressRecord> {
  const record: ProgressRecord = { events: [], late: 0 };
  let settled = false;
  await operation((event) => {
    if (settled) {
      record.late++;
    }
    record.events.push(event);
  });
  settled = true;
  await new Promise((resolve) => setTimeout(resolve, 500));
  return record;
}

// Whether a blob named after `digest` reached a final state.
function finished(events: Progress[], digest: string): boolean {
  return events.some(
    (event) =>
      event.name.endsWith(digest) &&
      ["complete", "already exists"].includes(event.event),
  );
}
