/**
 * Set-up for the registry tests: a containerd 1.7 and loopback
 * docker-registry 2.8 instances started by `ci/containerd-start.sh
 * --registry-auth USER:PASS`, named by the peers.env file in
 * CONTAINERD_TEST_ENV. Without it a test is skipped, except under CI,
 * where it fails.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { TestContext } from "node:test";
import { promisify } from "node:util";
import { type Client, connect } from "../../src/client/index.js";

const run = promisify(execFile);

export interface RegistryEnv {
  /** containerd's gRPC socket. */
  address: string;
  ctr: string;
  /** An image in containerd's `default` namespace, to push. */
  image: string;
  /** HTTPS registry without authentication, `127.0.0.1:PORT`. */
  tlsRegistry: string;
  /** HTTPS registry with htpasswd basic authentication. */
  authRegistry: string;
  user: string;
  password: string;
}

/**
 * Reads CONTAINERD_TEST_ENV. Returns undefined after marking the test
 * skipped when it is not set, and throws under CI.
 */
export async function registryEnv(
  t: TestContext,
): Promise<RegistryEnv | undefined> {
  const file = process.env.CONTAINERD_TEST_ENV;
  if (!file) {
    if (process.env.CI) {
      throw new Error(
        "CONTAINERD_TEST_ENV is not set: .ci/run starts containerd and the " +
          "registries and sets it",
      );
    }
    t.skip("no containerd: set CONTAINERD_TEST_ENV to a peers.env file");
    return undefined;
  }

  const values = new Map<string, string>();
  for (const line of (await readFile(file, "utf8")).split("\n")) {
    const equals = line.indexOf("=");
    if (equals > 0) {
      values.set(line.slice(0, equals), line.slice(equals + 1));
    }
  }
  const value = (key: string) => {
    const found = values.get(key);
    assert.ok(
      found,
      `${file} has no ${key}: start containerd with ci/containerd-start.sh ` +
        "--registry-auth USER:PASS",
    );
    return found;
  };
  return {
    address: value("CONTAINERD_ADDRESS"),
    ctr: value("CTR"),
    image: value("TEST_IMAGE"),
    tlsRegistry: value("TEST_REGISTRY_TLS"),
    authRegistry: value("TEST_REGISTRY_AUTH"),
    user: value("TEST_REGISTRY_USER"),
    password: value("TEST_REGISTRY_PASSWORD"),
  };
}

/** Connects to containerd; the client is closed when the test ends. */
export function connectTo(t: TestContext, env: RegistryEnv): Client {
  const client = connect({ address: env.address });
  t.after(() => client.close());
  return client;
}

/** Returns a repository path that no other test run uses. */
export function uniqueRepository(name: string): string {
  return `ctt/${name}-${randomBytes(4).toString("hex")}`;
}

/** Runs ctr in the `default` namespace and returns its standard output. */
export function ctr(env: RegistryEnv, ...args: string[]): Promise<string> {
  return ctrIn(env, "default", ...args);
}

/** Runs ctr in `namespace` and returns its standard output. */
export async function ctrIn(
  env: RegistryEnv,
  namespace: string,
  ...args: string[]
): Promise<string> {
  try {
    const { stdout } = await run(
      env.ctr,
      ["--address", env.address, "--namespace", namespace, ...args],
      { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
    );
    return stdout;
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new Error(`ctr ${args.join(" ")} failed: ${stderr ?? error}`);
  }
}

/** Returns the target digest of a containerd image, or undefined. */
export async function imageDigest(
  env: RegistryEnv,
  name: string,
): Promise<string | undefined> {
  const listing = await ctr(env, "images", "ls");
  const row = listing
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .find((fields) => fields[0] === name);
  return row?.[2];
}

/** Deletes containerd images when the test ends. */
export function removeImagesAfter(
  t: TestContext,
  env: RegistryEnv,
  ...names: string[]
): void {
  t.after(async () => {
    for (const name of names) {
      await ctr(env, "images", "rm", name).catch(() => {});
    }
  });
}

/** Returns the digests of the config and layers of a manifest in containerd. */
export async function manifestBlobs(
  env: RegistryEnv,
  manifestDigest: string,
): Promise<{ config: string; layers: string[] }> {
  const manifest = JSON.parse(
    await ctr(env, "content", "get", manifestDigest),
  ) as { config: { digest: string }; layers: { digest: string }[] };
  return {
    config: manifest.config.digest,
    layers: manifest.layers.map((layer) => layer.digest),
  };
}
