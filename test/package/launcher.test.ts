/**
 * The package's bin, a shell launcher: it runs the command, and Node.js
 * starts without NODE_EXTRA_CA_CERTS, which it would otherwise load
 * before any JavaScript runs.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const packageRoot = fileURLToPath(new URL("../../../", import.meta.url));
const launcher = `${packageRoot}bin/containerd-transfer`;

test("launcher runs the command", async () => {
  const { version } = JSON.parse(
    readFileSync(`${packageRoot}package.json`, "utf8"),
  ) as { version: string };

  const { stdout } = await promisify(execFile)(launcher, ["--version"]);

  assert.equal(stdout.trim(), version);
});

test("launcher starts Node.js without extra CA certificates", async () => {
  // Node.js warns at start-up when the file is missing, so a warning
  // shows that it read the variable.
  const env = { ...process.env, NODE_EXTRA_CA_CERTS: "/nonexistent-ca.pem" };
  const direct = await promisify(execFile)(process.execPath, ["-e", "0"], {
    env,
  });

  const launched = await promisify(execFile)(launcher, ["--version"], { env });

  assert.match(direct.stderr, /Ignoring extra certs/);
  assert.equal(launched.stderr, "");
});
