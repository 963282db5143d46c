/**
 * Messages of the command outside a copy: its version, `serve` with bad
 * sockets, and an image command sent to an endpoint that has no image
 * service.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { mainScript, protocol, runCli, startCopyEndpoint } from "./harness.js";

interface Output {
  status: number | null;
  stdout: string;
  stderr: string;
}

function runCommand(args: string[]): Promise<Output> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [mainScript, ...args],
      { timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : error.code;
        resolve({
          status: typeof code === "number" ? code : null,
          stdout,
          stderr,
        });
      },
    );
  });
}

async function tempDir(t: { after(fn: () => unknown): void }) {
  const dir = await mkdtemp(join(tmpdir(), "ct-cli-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test("version matches package.json", async () => {
  const manifest = JSON.parse(
    await readFile(new URL("../../../package.json", import.meta.url), "utf8"),
  ) as { version: string };

  const result = await runCommand(["--version"]);

  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout.trim(), manifest.version);
});

test("serve rejects one socket twice", async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, "root"));
  const socket = join(dir, "both.sock");

  const result = await runCommand([
    "serve",
    "--root",
    join(dir, "root"),
    "--ttrpc",
    socket,
    "--grpc",
    socket,
  ]);

  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /--ttrpc and --grpc both name/);
  assert.ok(result.stderr.includes(socket), result.stderr);
});

test("serve names a missing socket folder", async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, "root"));
  const folder = join(dir, "absent");

  const result = await runCommand([
    "serve",
    "--root",
    join(dir, "root"),
    "--ttrpc",
    join(folder, "t.sock"),
  ]);

  assert.equal(result.status, 1, result.stderr);
  assert.ok(
    result.stderr.includes(`folder ${folder} does not exist`),
    result.stderr,
  );
  assert.doesNotMatch(result.stderr, /mkdtemp/);
});

test("image command names the endpoint", async (t) => {
  const { socket } = await startCopyEndpoint(t);

  const result = await runCli(socket, ["image", "ls"]);

  assert.equal(result.status, 1, result.stderr);
  assert.ok(
    result.stderr.includes(`${protocol} endpoint ${socket}`),
    result.stderr,
  );
  assert.match(result.stderr, /containerd\.services\.images\.v1\.Images/);
  assert.match(result.stderr, /need containerd's gRPC socket/);
});
