/**
 * Credentials sent over the auth stream to a real containerd 1.7, which
 * uses them against a docker-registry 2.8 with htpasswd authentication
 * over TLS on 127.0.0.1.
 */
import assert from "node:assert/strict";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import {
  type Client,
  dockerConfigCredentials,
  pullImage,
  pushImage,
} from "../../src/client/index.js";
import { TransferError } from "../../src/errors/index.js";
import type {
  RegistryAuthRequest,
  RegistryWarning,
} from "../../src/transfer/index.js";
import {
  connectTo,
  imageDigest,
  type RegistryEnv,
  registryEnv,
  removeImagesAfter,
  uniqueRepository,
} from "./registry-env.js";

// Upper bound for an operation that must fail rather than hang.
const failWithinMs = 30_000;

test("callback credentials push and pull", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const client = connectTo(t, env);
  const remote = `${env.authRegistry}/${uniqueRepository("callback")}:1`;
  const pulledName = `example.test/ctt-auth-${Date.now()}:1`;
  removeImagesAfter(t, env, pulledName);
  const requests: RegistryAuthRequest[] = [];
  const credentials = (request: RegistryAuthRequest) => {
    requests.push(request);
    return { username: env.user, secret: env.password };
  };

  await pushImage(client, env.image, remote, { credentials });
  await pullImage(client, remote, { name: pulledName, credentials });

  assert.equal(
    await imageDigest(env, pulledName),
    await imageDigest(env, env.image),
  );
  assert.ok(requests.length >= 2, `${requests.length} auth requests`);
  for (const request of requests) {
    assert.equal(request.host, env.authRegistry);
    assert.equal(request.reference, remote);
  }
});

test("docker config credentials pull", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const client = connectTo(t, env);
  const remote = await pushAuthenticated(env, client, "docker-config");
  const dir = await temporaryDir(t);
  const auth = Buffer.from(`${env.user}:${env.password}`).toString("base64");
  await writeFile(
    join(dir, "config.json"),
    JSON.stringify({ auths: { [`https://${env.authRegistry}`]: { auth } } }),
  );
  const pulledName = `example.test/ctt-config-${Date.now()}:1`;
  removeImagesAfter(t, env, pulledName);

  await pullImage(client, remote, {
    name: pulledName,
    credentials: dockerConfigCredentials({ env: { DOCKER_CONFIG: dir } }),
  });

  assert.equal(
    await imageDigest(env, pulledName),
    await imageDigest(env, env.image),
  );
});

test("credential helper credentials pull", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const client = connectTo(t, env);
  const remote = await pushAuthenticated(env, client, "helper");
  const dir = await temporaryDir(t);
  const helper = join(dir, "docker-credential-ctt-test");
  const answer = JSON.stringify({ Username: env.user, Secret: env.password });
  await writeFile(
    helper,
    `#!/bin/sh\n[ "$(cat)" = '${env.authRegistry}' ] || exit 1\n` +
      `echo '${answer}'\n`,
  );
  await chmod(helper, 0o755);
  await writeFile(
    join(dir, "config.json"),
    JSON.stringify({ credHelpers: { [env.authRegistry]: "ctt-test" } }),
  );
  const pulledName = `example.test/ctt-helper-${Date.now()}:1`;
  removeImagesAfter(t, env, pulledName);

  await pullImage(client, remote, {
    name: pulledName,
    credentials: dockerConfigCredentials({
      env: { DOCKER_CONFIG: dir, PATH: `${dir}:${process.env.PATH}` },
    }),
  });

  assert.equal(
    await imageDigest(env, pulledName),
    await imageDigest(env, env.image),
  );
});

test("wrong password is unauthorized", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const client = connectTo(t, env);
  const remote = await pushAuthenticated(env, client, "wrong-password");
  let requests = 0;

  const pull = pullImage(client, remote, {
    credentials: () => {
      requests++;
      return { username: env.user, secret: `${env.password}-wrong` };
    },
    signal: AbortSignal.timeout(failWithinMs),
  });

  await assert.rejects(pull, (error: unknown) => {
    assert.ok(error instanceof TransferError);
    assert.equal(error.kind, "unauthorized");
    assert.match(error.rawMessage, /401 Unauthorized/);
    assert.ok(error.rawMessage.includes(remote), error.rawMessage);
    return true;
  });
  assert.ok(requests >= 1, "containerd asked for no credentials");
});

test("wrong password push is unauthorized", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const client = connectTo(t, env);
  const remote = `${env.authRegistry}/${uniqueRepository("push-wrong")}:1`;

  const push = pushImage(client, env.image, remote, {
    credentials: () => ({ username: "nobody", secret: "nothing" }),
    signal: AbortSignal.timeout(failWithinMs),
  });

  await assert.rejects(push, (error: unknown) => {
    assert.ok(error instanceof TransferError);
    assert.equal(error.kind, "unauthorized");
    assert.match(error.rawMessage, /401 Unauthorized/);
    return true;
  });
});

test("no credentials is unauthorized", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const client = connectTo(t, env);
  const remote = await pushAuthenticated(env, client, "anonymous");

  const pull = pullImage(client, remote, {
    signal: AbortSignal.timeout(failWithinMs),
  });

  await assert.rejects(pull, (error: unknown) => {
    assert.ok(error instanceof TransferError);
    assert.equal(error.kind, "unauthorized");
    // containerd 1.7 reports the registry's 401 when it has no auth
    // stream, and "no basic auth credentials" when the stream sent none.
    assert.match(
      error.rawMessage,
      /401 Unauthorized|no basic auth credentials/,
    );
    return true;
  });
});

test("throwing callback fails cleanly", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const client = connectTo(t, env);
  const remote = await pushAuthenticated(env, client, "throwing");
  const warnings: RegistryWarning[] = [];
  const started = Date.now();

  const pull = pullImage(client, remote, {
    credentials: () => {
      throw new Error("credential store unavailable");
    },
    registry: { onWarning: (warning) => warnings.push(warning) },
    signal: AbortSignal.timeout(failWithinMs),
  });

  await assert.rejects(pull, (error: unknown) => {
    assert.ok(error instanceof TransferError);
    assert.equal(error.kind, "unauthorized");
    // The NONE response reached containerd, which then had no credentials.
    assert.match(error.rawMessage, /no basic auth credentials/);
    return true;
  });
  assert.ok(Date.now() - started < failWithinMs);
  assert.ok(warnings.length >= 1, "no warning for the failed callback");
  assert.equal(warnings[0]?.code, "credentials-failed");
  assert.equal(warnings[0]?.host, env.authRegistry);
  assert.match(warnings[0]?.message ?? "", /credential store unavailable/);
});

test("hanging callback times out", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const client = connectTo(t, env);
  const remote = await pushAuthenticated(env, client, "hanging");
  const warnings: RegistryWarning[] = [];

  const pull = pullImage(client, remote, {
    credentials: () => new Promise(() => {}),
    registry: {
      credentialsTimeoutMs: 300,
      onWarning: (warning) => warnings.push(warning),
    },
    signal: AbortSignal.timeout(failWithinMs),
  });

  await assert.rejects(pull, (error: unknown) => {
    assert.ok(error instanceof TransferError);
    assert.equal(error.kind, "unauthorized");
    // The NONE response reached containerd, which then had no credentials.
    assert.match(error.rawMessage, /no basic auth credentials/);
    return true;
  });
  assert.equal(warnings[0]?.code, "credentials-timed-out");
});

test("abort during credentials lookup", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const client = connectTo(t, env);
  const remote = await pushAuthenticated(env, client, "abort");
  let callbackSignal: AbortSignal | undefined;
  const controller = new AbortController();
  const started = Date.now();

  const pull = pullImage(client, remote, {
    credentials: (_request, signal) => {
      callbackSignal = signal;
      setTimeout(() => controller.abort(new Error("test abort")), 200);
      return new Promise(() => {});
    },
    signal: controller.signal,
  });

  await assert.rejects(pull, (error: unknown) => {
    assert.ok(error instanceof TransferError);
    assert.equal(error.kind, "canceled");
    return true;
  });
  assert.ok(Date.now() - started < 10_000, "the abort took over 10 s");
  assert.equal(callbackSignal?.aborted, true);
  // containerd is free for the next pull of the same image.
  await pullImage(client, remote, {
    name: `example.test/ctt-after-abort-${Date.now()}:1`,
    credentials: () => ({ username: env.user, secret: env.password }),
    signal: AbortSignal.timeout(failWithinMs),
  }).then((summary) => removeImagesAfter(t, env, summary.name));
});

// Pushes the test image to a new repository of the authenticated registry
// and returns its reference.
async function pushAuthenticated(
  env: RegistryEnv,
  client: Client,
  name: string,
): Promise<string> {
  const remote = `${env.authRegistry}/${uniqueRepository(name)}:1`;
  await pushImage(client, env.image, remote, {
    credentials: () => ({ username: env.user, secret: env.password }),
  });
  return remote;
}

async function temporaryDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "ctt-docker-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
