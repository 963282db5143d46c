/**
 * `containerd-transfer image` as a user runs it: a child process, with
 * files, FIFOs and device nodes of its own under /tmp/fifofix-cli-PID.
 * Checks that fail before any request run against a socket path where
 * nothing listens, so reaching the daemon would fail them.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  rm,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { getImage, importImage, tagImage } from "../../src/client/index.js";
import { waitForSignalHandler } from "../helpers/process.js";
import { ociArchive } from "./archives.js";
import { openDaemon, tarFiles } from "./daemon.js";

const main = fileURLToPath(new URL("../../cli.js", import.meta.url));
const run = promisify(execFile);

let dir = "";
let absent = "";
before(async () => {
  dir = await mkdtemp(`/tmp/fifofix-cli-${process.pid}-`);
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

interface CliOptions {
  /** Global options, given before `image`. */
  global?: string[];
  /** Milliseconds after which SIGKILL ends the CLI; code is then -1. */
  killMs?: number;
}

// Runs the CLI with `args` after `image`, against `address`.
function cli(
  address: string,
  args: string[],
  options: CliOptions = {},
): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [main, "--address", address, ...(options.global ?? []), "image", ...args],
      {
        timeout: options.killMs ?? 60_000,
        killSignal: "SIGKILL",
        maxBuffer: 64 * 1024 * 1024,
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
  });
}

/**
 * Runs the CLI like {@link cli}, sends it SIGINT `delayMs` after it
 * started catching SIGINT, and returns its exit code (-1 when SIGKILL
 * ended it `killMs` after the SIGINT).
 */
async function interruptCli(
  address: string,
  args: string[],
  delayMs: number,
  killMs: number,
): Promise<{ code: number; stderr: string }> {
  const child = spawn(
    process.execPath,
    [main, "--address", address, "image", ...args],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on("exit", (code) => resolve(code)),
  );
  await waitForSignalHandler(child.pid!, "SIGINT");
  await delay(delayMs);
  child.kill("SIGINT");
  const killer = setTimeout(() => child.kill("SIGKILL"), killMs);
  const code = await exited;
  clearTimeout(killer);
  return { code: code ?? -1, stderr };
}

/** Returns a name under fifofix.test that only this process uses. */
function imageName(path: string): string {
  return `fifofix.test/cli-${process.pid}/${path}`;
}

test("export to directory fails early", async () => {
  const target = join(dir, "out");
  await mkdir(target);

  for (const file of [target, `${target}/`, join(dir, "new/")]) {
    const result = await cli(absent, ["export", "-q", file, "x.test/a:1"]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `cannot write the image archive to "${file}": (it is a directory|` +
          "a path that ends in / names a directory)",
      ),
    );
  }
  assert.deepEqual((await readdir(dir)).sort(), ["out"]);
  assert.deepEqual(await readdir(target), []);
});

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

test("name options are usage errors", async () => {
  const archive = join(dir, "named.tar");
  await writeFile(archive, Buffer.alloc(1024));
  const runs: [string[], string][] = [
    [["import", "--name", "fifofix.test/also bad", archive], "also bad"],
    [
      ["import", "--base-name", "fifofix.test/b:1", archive],
      "fifofix.test/b:1",
    ],
    [["pull", "fifofix.test/a:1", "--name", "fifofix.test/B:1"], "B:1"],
    [["tag", "fifofix.test/a:1", "fifofix.test/x:UP per"], "UP per"],
  ];

  for (const [args, value] of runs) {
    const result = await cli(absent, args);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, /invalid (image|base) name "/);
    assert.ok(result.stderr.includes(value), result.stderr);
  }
});

test("bad label is a usage error", async () => {
  const archive = join(dir, "labelled.tar");
  await writeFile(archive, Buffer.alloc(1024));

  const result = await cli(absent, ["import", "--label", "nokey", archive]);

  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /invalid label "nokey": use KEY=VALUE/);
});

test("export names a missing folder", async () => {
  const file = join(dir, "no-folder", "x.tar");

  const result = await cli(absent, ["export", "-q", file, "x.test/a:1"]);

  assert.equal(result.code, 1, result.stderr);
  assert.ok(result.stderr.includes(`"${file}"`), result.stderr);
  assert.match(result.stderr, /the folder \S+no-folder does not exist/);
  assert.doesNotMatch(result.stderr, /\.part/);
});

test("arguments are usage errors", async () => {
  const archive = join(dir, "arguments.tar");
  await writeFile(archive, Buffer.alloc(1024));
  const out = join(dir, "arguments-out.tar");
  const image = "fifofix.test/a:1";
  const runs: [string[], RegExp][] = [
    [["pull", "127.0.0.1:5443/x/BB:1"], /invalid image reference "/],
    [["push", image, "127.0.0.1:5443/x/UP:1"], /invalid image reference "/],
    [["push", ""], /invalid image name ""/],
    [["pull", "--platform", "linux", image], /invalid platform "linux"/],
    [["push", "--platform", "linux", image], /invalid platform "linux"/],
    [["import", "--platform", "linux", archive], /invalid platform/],
    [["export", "--platform", "a//b", out, image], /invalid platform/],
    [["pull", "--snapshotter", "", image], /invalid --snapshotter ""/],
    [["import", "--snapshotter", " ", archive], /invalid --snapshotter/],
    [["export", out, ` ${image}`], /invalid image name " /],
    [["tag", "", image], /invalid image name ""/],
    [["rm", image, ""], /invalid image name ""/],
    [
      ["tag", image, `fifofix.test/a@sha256:${"0".repeat(64)}`],
      /invalid target "fifofix\.test\/a@sha256:0+": a new name cannot carry a digest/,
    ],
  ];

  for (const [args, message] of runs) {
    const result = await cli(absent, args);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message);
  }
  assert.deepEqual(
    (await readdir(dir)).filter((f) => f.startsWith("arguments-out")),
    [],
  );
});

test("export into a FIFO", async (t) => {
  const daemon = openDaemon(t);
  if (!daemon) {
    return;
  }
  const name = imageName("fifo:1");
  daemon.cleanUp(name);
  await tagImage(daemon.client, daemon.env.image, name);
  const fifo = join(dir, "fifo");
  await run("mkfifo", [fifo]);

  // `cat` reads the FIFO. Unlike an open in this process, it can be
  // killed when nothing ever writes to the FIFO.
  const reader = spawn("cat", [fifo], { stdio: ["ignore", "pipe", "ignore"] });
  const chunks: Buffer[] = [];
  reader.stdout.on("data", (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise((resolve) => reader.on("close", resolve));
  const result = await cli(daemon.env.address, ["export", "-q", fifo, name]);
  const timer = setTimeout(() => reader.kill(), 10_000);
  await ended;
  clearTimeout(timer);

  assert.equal(result.code, 0, result.stderr);
  assert.ok((await lstat(fifo)).isFIFO(), "the FIFO was replaced");
  assert.ok(tarFiles(Buffer.concat(chunks)).has("index.json"));
  assert.deepEqual(
    (await readdir(dir)).filter((f) => f.endsWith(".part")),
    [],
  );
});

test("export waits for a FIFO reader", async () => {
  const fifo = join(dir, "unread");
  await run("mkfifo", [fifo]);

  // A CLI still waiting when SIGKILL ends it gets code -1.
  const result = await cli(absent, ["export", "-q", fifo, "x.test/a:1"], {
    global: ["--timeout", "1"],
    killMs: 20_000,
  });

  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /timed out: no result within 1 s/);
  await rm(fifo);
});

test("SIGINT ends a FIFO wait", async () => {
  const fifo = join(dir, "interrupted");
  await run("mkfifo", [fifo]);

  const result = await interruptCli(
    absent,
    ["export", "-q", fifo, "x.test/a:1"],
    500,
    10_000,
  );

  assert.equal(result.code, 130, result.stderr);
  assert.match(result.stderr, /canceled: interrupted/);
  await rm(fifo);
});

test("import waits for a FIFO writer", async (t) => {
  const daemon = openDaemon(t);
  if (!daemon) {
    return;
  }
  const fifo = join(dir, "unwritten");
  await run("mkfifo", [fifo]);

  const result = await cli(daemon.env.address, ["import", "-q", fifo], {
    global: ["--timeout", "1"],
    killMs: 20_000,
  });

  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /timed out: no result within 1 s/);
  await rm(fifo);
});

test("import from a FIFO", async (t) => {
  const daemon = openDaemon(t);
  if (!daemon) {
    return;
  }
  const archive = ociArchive({
    name: imageName("fifo-in:1"),
    fileBytes: 200_000,
    seed: 13,
  });
  daemon.cleanUp(archive.name);
  const file = join(dir, "fifo-in.tar");
  await writeFile(file, archive.bytes);
  const fifo = join(dir, "fifo-in");
  await run("mkfifo", [fifo]);

  const imported = cli(daemon.env.address, ["import", "-q", fifo], {
    killMs: 30_000,
  });
  // The writer comes after the CLI has opened the FIFO, or is about to.
  await delay(500);
  const writer = spawn("sh", ["-c", 'exec cat "$1" > "$2"', "sh", file, fifo], {
    stdio: "ignore",
  });
  const timer = setTimeout(() => writer.kill("SIGKILL"), 30_000);
  const written = new Promise((resolve) => writer.on("exit", resolve));
  const result = await imported;
  const writerCode = await written;
  clearTimeout(timer);

  assert.equal(writerCode, 0);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, `imported ${archive.name}\n`);
});

test("export into a character device", async (t) => {
  const daemon = openDaemon(t);
  if (!daemon) {
    return;
  }
  const node = join(dir, "null");
  // 1:3 are the null device's numbers. Creating a node needs CAP_MKNOD.
  const created = await run("mknod", [node, "c", "1", "3"]).then(
    () => true,
    () => false,
  );
  if (!created) {
    t.skip("mknod is not permitted here");
    return;
  }
  const name = imageName("device:1");
  daemon.cleanUp(name);
  await tagImage(daemon.client, daemon.env.image, name);

  const result = await cli(daemon.env.address, ["export", "-q", node, name]);

  assert.equal(result.code, 0, result.stderr);
  assert.ok((await lstat(node)).isCharacterDevice(), "the node was replaced");
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

test("rm goes on past a missing name", async (t) => {
  const daemon = openDaemon(t);
  if (!daemon) {
    return;
  }
  const first = imageName("rm-first:1");
  const last = imageName("rm-last:1");
  const missing = imageName("rm-missing:1");
  daemon.cleanUp(first, last);
  await tagImage(daemon.client, daemon.env.image, first);
  await tagImage(daemon.client, daemon.env.image, last);

  const result = await cli(daemon.env.address, ["rm", first, missing, last]);

  assert.equal(result.code, 1, result.stderr);
  assert.ok(result.stderr.includes(missing), result.stderr);
  assert.match(result.stderr, /failed to delete 1 of 3 images/);
  await assert.rejects(getImage(daemon.client, first), /not found/);
  await assert.rejects(getImage(daemon.client, last), /not found/);
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
