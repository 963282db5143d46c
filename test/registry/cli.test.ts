/**
 * `containerd-transfer image pull|push` as a user runs them: a child
 * process against a real containerd 1.7 and the loopback registries.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  imageDigest,
  type RegistryEnv,
  registryEnv,
  removeImagesAfter,
  uniqueRepository,
} from "./registry-env.js";

const main = fileURLToPath(new URL("../../cli.js", import.meta.url));

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

// Runs the CLI with `args` after `image`, writing `input` to its standard
// input. DOCKER_CONFIG points nowhere, so only --user gives credentials.
function cli(env: RegistryEnv, args: string[], input = ""): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [main, "--address", env.address, "image", ...args],
      {
        timeout: 60_000,
        env: { ...process.env, DOCKER_CONFIG: "/nonexistent" },
      },
      (error, stdout, stderr) => {
        let code = 0;
        if (error !== null) {
          const exitCode = (error as { code?: unknown }).code;
          code = typeof exitCode === "number" ? exitCode : -1;
        }
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(input);
  });
}

test("cli push and pull with user", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const remote = `${env.authRegistry}/${uniqueRepository("cli")}:1`;
  const pulledName = `example.test/ctt-cli-${Date.now()}:1`;
  removeImagesAfter(t, env, pulledName);
  const user = `${env.user}:${env.password}`;

  const push = await cli(env, ["push", env.image, remote, "--user", user]);
  const pull = await cli(
    env,
    ["pull", remote, "--name", pulledName, "-u", env.user, "--password-stdin"],
    `${env.password}\n`,
  );

  assert.equal(push.code, 0, push.stderr);
  assert.equal(push.stdout, `${remote}\n`);
  assert.match(push.stderr, /Completed push to/);
  assert.equal(pull.code, 0, pull.stderr);
  assert.equal(pull.stdout, `${pulledName}\n`);
  assert.match(pull.stderr, /Completed pull from/);
  assert.match(pull.stderr, /^layer [0-9a-f]{12}: (complete|already exists)/m);
  assert.equal(
    await imageDigest(env, pulledName),
    await imageDigest(env, env.image),
  );
});

test("cli shows registry's rejection", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const remote = `${env.authRegistry}/${uniqueRepository("cli-wrong")}:1`;

  const pull = await cli(env, [
    "pull",
    remote,
    "--quiet",
    "--user",
    `${env.user}:not-the-password`,
  ]);

  assert.equal(pull.code, 1);
  assert.equal(pull.stdout, "");
  assert.match(pull.stderr, /401 Unauthorized/);
  assert.match(pull.stderr, /\nhint: the registry .* rejected the credentials/);
  assert.ok(!pull.stderr.includes("\\x0a"), "the line break is escaped");
  assert.ok(
    !pull.stderr.includes("not-the-password"),
    "the password appears in the output",
  );
});

test("cli quiet pull prints no progress", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const remote = `${env.tlsRegistry}/${uniqueRepository("cli-quiet")}:1`;
  const pulledName = `example.test/ctt-cli-quiet-${Date.now()}:1`;
  removeImagesAfter(t, env, pulledName);
  const push = await cli(env, ["push", env.image, remote, "-q"]);
  assert.equal(push.code, 0, push.stderr);

  const pull = await cli(env, ["pull", remote, "--name", pulledName, "-q"]);

  assert.equal(pull.code, 0, pull.stderr);
  assert.equal(pull.stderr, "");
  assert.equal(pull.stdout, `${pulledName}\n`);
});

test("cli pull missing tag fails", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;
  const remote = `${env.tlsRegistry}/${uniqueRepository("cli-missing")}:no`;

  const pull = await cli(env, ["pull", remote, "-q"]);

  assert.equal(pull.code, 1);
  assert.match(pull.stderr, /not found/);
  assert.ok(pull.stderr.includes(remote), pull.stderr);
});

test("cli user without password", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;

  const pull = await cli(env, ["pull", `${env.authRegistry}/x:1`, "-u", "me"]);

  assert.equal(pull.code, 2);
  assert.match(pull.stderr, /missing password for user me/);
});

test("cli empty password on stdin", async (t) => {
  const env = await registryEnv(t);
  if (!env) return;

  const pull = await cli(
    env,
    ["pull", `${env.authRegistry}/x:1`, "-u", "me", "--password-stdin"],
    "\n",
  );

  assert.equal(pull.code, 2);
  assert.match(pull.stderr, /missing password for user me/);
});
