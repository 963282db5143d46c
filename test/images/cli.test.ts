/**
 * `containerd-transfer image` as a user runs it: a child process, with
 * files of its own under /tmp/imgfix-cli-PID.
 * Checks that fail before any request run against a socket path where
 * nothing listens, so reaching the daemon would fail them.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { getImage, importImage, tagImage } from "../../src/client/index.js";
import { ociArchive } from "./archives.js";
import { openDaemon } from "./daemon.js";

const main = fileURLToPath(new URL("../../cli.js", import.meta.url));

let dir = "";
let absent = "";
before(async () => {
  dir = await mkdtemp(`/tmp/imgfix-cli-${process.pid}-`);
  absent = join(dir, "absent.sock");
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

// Runs the CLI with `args` after `image`, against `address`.
function cli(address: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [main, "--address", address, "image", ...args],
      { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        let code = 0;
        if (error !== null) {
          const exitCode = (error as { code?: unknown }).code;
          code = typeof exitCode === "number" ? exitCode : -1;
        }
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Returns a name under imgfix.test that only this process uses. */
function imageName(path: string): string {
  return `imgfix.test/cli-${process.pid}/${path}`;
}

test("import names missing archives", async () => {
  const missing = join(dir, "missing.tar");
  const folder = join(dir, "archive-dir");
  await mkdir(folder);

  const missingResult = await cli(absent, ["import", missing]);
  const folderResult = await cli(absent, ["import", folder]);

  assert.equal(missingResult.code, 1, missingResult.stderr);
  assert.match(
    missingResult.stderr,
    new RegExp(`image archive "${missing}" not found`),
  );
  assert.equal(folderResult.code, 1, folderResult.stderr);
  assert.match(
    folderResult.stderr,
    new RegExp(`image archive "${folder}" is a directory`),
  );
});

test("import --unpack keeps the file", async (t) => {
  const daemon = openDaemon(t);
  if (!daemon) {
    return;
  }
  const archive = ociArchive({
    name: imageName("unpack:1"),
    fileBytes: 10_000,
    seed: 11,
  });
  daemon.cleanUp(archive.name);
  const file = join(dir, "unpack.tar");
  await writeFile(file, archive.bytes);

  const result = await cli(daemon.env.address, [
    "import",
    "-q",
    "--unpack",
    file,
  ]);

  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, `imported ${archive.name}\n`);
});

test("tag rejects invalid names", async (t) => {
  const daemon = openDaemon(t);
  if (!daemon) {
    return;
  }
  const source = imageName("source:1");
  daemon.cleanUp(source);
  await tagImage(daemon.client, daemon.env.image, source);
  const bad = [imageName("Bad Name:1"), imageName("x:UP per")];
  daemon.cleanUp(...bad);

  for (const target of bad) {
    const result = await cli(daemon.env.address, ["tag", source, target]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /invalid image name/);
    assert.ok(result.stderr.includes(`"${target}"`), result.stderr);
    await assert.rejects(getImage(daemon.client, target), /not found/);
  }
});

test("import rejects an invalid name", async (t) => {
  const daemon = openDaemon(t);
  if (!daemon) {
    return;
  }
  const archive = ociArchive({
    name: imageName("named:1"),
    fileBytes: 1_000,
    seed: 12,
  });
  daemon.cleanUp(archive.name);
  const bad = imageName("also bad");
  daemon.cleanUp(bad);

  await assert.rejects(
    importImage(daemon.client, [archive.bytes], { name: bad }),
    (error: { kind?: string; message?: string }) => {
      assert.equal(error.kind, "invalid argument", error.message);
      assert.ok(error.message?.includes(`"${bad}"`), error.message);
      return true;
    },
  );
  await assert.rejects(getImage(daemon.client, bad), /not found/);
  await assert.rejects(getImage(daemon.client, archive.name), /not found/);
});
