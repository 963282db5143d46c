/**
 * Messages of the command outside a copy: its version, `serve` with bad
 * sockets, an image command sent to an endpoint without the image
 * service, and gRPC sent to a peer that is not an HTTP/2 server.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  truncate,
  writeFile,
} from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { mainScript, protocol, runCli, startCopyEndpoint } from "./harness.js";

interface Output {
  status: number | null;
  stdout: string;
  stderr: string;
}

function runCommand(
  args: string[],
  options: { cwd?: string } = {},
): Promise<Output> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [mainScript, ...args],
      { timeout: 30_000, ...options },
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

/** Starts `cp SOURCE -` against `socket`, its standard output a pipe. */
function spawnCopyOut(socket: string, source: string) {
  return spawn(process.execPath, [
    mainScript,
    "--address",
    socket,
    "--protocol",
    protocol,
    "cp",
    source,
    "-",
  ]);
}

/** Runs `serve` over the folder `dir`/root with the socket options given. */
async function runServe(
  dir: string,
  sockets: string[],
  options: { cwd?: string } = {},
): Promise<Output> {
  await mkdir(join(dir, "root"), { recursive: true });
  return runCommand(
    ["serve", "--root", join(dir, "root"), ...sockets],
    options,
  );
}

test("version matches package.json", async () => {
  const manifest = JSON.parse(
    await readFile(new URL("../../../package.json", import.meta.url), "utf8"),
  ) as { version: string };

  const result = await runCommand(["--version"]);

  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout.trim(), manifest.version);
});

test("usage error gives a hint, not the help", async () => {
  const result = await runCommand(["--protocol", "xx", "stat", "c1:/"]);

  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /argument 'xx' is invalid/);
  assert.match(result.stderr, /\(add --help for usage\)/);
  assert.doesNotMatch(result.stderr, /Usage:/);
});

test("program option after the command is explained", async () => {
  const late = await runCommand(["cp", "--timeout", "5", "a", "c1:/"]);
  const unknown = await runCommand(["cp", "--bogus", "a", "c1:/"]);

  assert.equal(late.status, 2, late.stderr);
  assert.match(late.stderr, /unknown option '--timeout'/);
  assert.match(late.stderr, /\nhint: --timeout is an option of the whole/);
  assert.equal(unknown.status, 2, unknown.stderr);
  assert.doesNotMatch(unknown.stderr, /hint:/);
});

test("serve rejects one socket twice", async (t) => {
  const dir = await tempDir(t);
  const socket = join(dir, "both.sock");

  const result = await runServe(dir, ["--ttrpc", socket, "--grpc", socket]);

  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /--ttrpc and --grpc both name/);
  assert.ok(result.stderr.includes(socket), result.stderr);
});

test("serve rejects one socket spelled twice", async (t) => {
  const dir = await tempDir(t);

  const result = await runServe(
    dir,
    ["--ttrpc", "s.sock", "--grpc", join(dir, "s.sock")],
    { cwd: dir },
  );

  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /--ttrpc and --grpc both name/);
});

test("serve rejects a too long socket path", async (t) => {
  const dir = await tempDir(t);
  const socket = join(dir, `${"s".repeat(120)}.sock`);

  const result = await runServe(dir, ["--ttrpc", socket]);

  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /holds at most 107/);
  assert.equal(existsSync(socket), false);
});

test("serve names a missing socket folder", async (t) => {
  const dir = await tempDir(t);
  const folder = join(dir, "absent");

  const result = await runServe(dir, ["--ttrpc", join(folder, "t.sock")]);

  assert.equal(result.status, 1, result.stderr);
  assert.ok(
    result.stderr.includes(`folder ${folder} does not exist`),
    result.stderr,
  );
  assert.doesNotMatch(result.stderr, /mkdtemp/);
});

test("gRPC to an HTTP/1 peer fails cleanly", async (t) => {
  const dir = await tempDir(t);
  const socket = join(dir, "http1.sock");
  const server = createServer((connection) => {
    connection.once("data", () => {
      connection.end("HTTP/1.1 400 Bad Request\r\n\r\n");
    });
    connection.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));

  const result = await runCommand(["--address", socket, "image", "ls"]);

  assert.equal(result.status, 1, result.stderr);
  assert.doesNotMatch(result.stderr, /Unhandled 'error' event/);
  assert.ok(result.stderr.includes(socket), result.stderr);
});

test("timeout gives up on a silent server", async (t) => {
  const dir = await tempDir(t);
  const socket = join(dir, "silent.sock");
  const server = createServer((connection) => {
    connection.resume();
    connection.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.after(() => {
    server.close();
    server.unref();
  });
  const globals = ["--address", socket, "--protocol", protocol];

  for (const args of [
    ["stat", "c1:/etc"],
    ["cp", "-q", "c1:/etc/hosts", join(dir, "hosts")],
  ]) {
    const result = await runCommand([...globals, "--timeout", "0.5", ...args]);

    assert.equal(result.status, 1, result.stderr);
    assert.match(
      result.stderr,
      /timed out: no result within 0\.5 s \(--timeout\)/,
    );
  }
  assert.deepEqual(await readdir(dir), ["silent.sock"]);
});

test("timeout of zero or not a decimal is a usage error", async () => {
  for (const value of ["0", "0x10", " 5", "1e-9"]) {
    const result = await runCommand(["--timeout", value, "image", "ls"]);

    assert.equal(result.status, 2, `${value}: ${result.stderr}`);
    assert.match(result.stderr, /expected a number of seconds above 0/);
  }
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

test("image transfers and removals name the endpoint", async (t) => {
  const { socket } = await startCopyEndpoint(t);
  const dir = await tempDir(t);

  for (const args of [
    ["image", "pull", "x.test/a:1"],
    ["image", "export", join(dir, "out.tar"), "x.test/a:1"],
    ["image", "tag", "x.test/a:1", "x.test/b:1"],
    ["image", "rm", "x.test/a:1", "x.test/b:1"],
  ]) {
    const result = await runCli(socket, args);

    assert.equal(result.status, 1, result.stderr);
    assert.ok(
      result.stderr.includes(`${protocol} endpoint ${socket}`),
      `${args.join(" ")}: ${result.stderr}`,
    );
    assert.match(result.stderr, /need containerd's gRPC socket/);
    // One line: rm stops at the missing service instead of trying each
    // name.
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  }
});

test("closed standard output named, not the server", async (t) => {
  const { socket, rootfs } = await startCopyEndpoint(t);
  await writeFile(join(rootfs, "big"), Buffer.alloc(32 * 1024 * 1024, 1));
  const child = spawnCopyOut(socket, "c1:/big");
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });

  // Closes the pipe after the first bytes, as `| head -c 10` does.
  await once(child.stdout, "data");
  child.stdout.destroy();
  const [code] = await once(child, "exit");

  assert.equal(code, 1, stderr);
  assert.match(stderr, /the output was closed by its reader \(EPIPE\)/);
  assert.doesNotMatch(stderr, /endpoint/);
});

/**
 * Starts `cp` of a 4 GiB sparse file out of the container and resolves
 * once its staging folder exists, that is, once the copy is under way.
 */
async function startLargeCopyOut(t: TestContext) {
  const { socket, rootfs, local } = await startCopyEndpoint(t);
  await writeFile(join(rootfs, "big"), "");
  await truncate(join(rootfs, "big"), 4 * 1024 ** 3);
  const child = spawn(process.execPath, [
    mainScript,
    ...["--address", socket, "--protocol", protocol],
    ...["cp", "-q", "c1:/big", join(local, "out")],
  ]);
  const output = { stderr: "" };
  child.stderr.on("data", (chunk: Buffer) => {
    output.stderr += chunk.toString();
  });
  const exited = once(child, "exit");

  for (let wait = 0; (await readdir(local)).length === 0; wait++) {
    assert.ok(wait < 200, "the copy never started");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { child, output, exited, local };
}

test("copy out signalled twice cleans up", async (t) => {
  // `timeout` and a terminal send a signal to the process and to its
  // group, so the second can arrive while the first is handled.
  const { child, output, exited, local } = await startLargeCopyOut(t);

  // Removing a large partial file takes long enough for the second
  // signal to arrive during the clean-up.
  await new Promise((resolve) => setTimeout(resolve, 700));
  child.kill("SIGINT");
  await new Promise((resolve) => setTimeout(resolve, 20));
  child.kill("SIGINT");
  const [code, signal] = await exited;

  // Node.js restores the default handlers as it exits, so a signal that
  // arrives after the clean-up ends the process by itself: a shell shows
  // 130 for both.
  assert.ok(code === 130 || signal === "SIGINT", `${code} ${signal}`);
  assert.match(output.stderr, /canceled: interrupted/);
  assert.deepEqual(await readdir(local), []);
});

test("copy out hung up cleans up", async (t) => {
  const { child, output, exited, local } = await startLargeCopyOut(t);

  child.kill("SIGHUP");
  const [code] = await exited;

  assert.equal(code, 129, output.stderr);
  assert.match(output.stderr, /canceled: hung up/);
  assert.deepEqual(await readdir(local), []);
});

test("interrupted copy from an idle pipe exits at once", async (t) => {
  const { socket } = await startCopyEndpoint(t);
  // Standard input is a pipe that stays open and sends nothing.
  const child = spawn(
    process.execPath,
    [
      mainScript,
      ...["--address", socket, "--protocol", protocol],
      ...["cp", "-", "c1:/"],
    ],
    { stdio: ["pipe", "ignore", "pipe"] },
  );
  // A command that hangs is killed, so that the test run ends.
  t.after(() => {
    child.kill("SIGKILL");
    child.stdin.destroy();
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  await new Promise((resolve) => setTimeout(resolve, 1000));

  child.kill("SIGTERM");
  const [code] = await Promise.race([
    once(child, "exit"),
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`still running: ${stderr}`)), 5000),
    ),
  ]);

  assert.equal(code, 143, stderr);
  assert.match(stderr, /canceled: terminated/);
});

test("interrupted copy to a stalled pipe exits at once", async (t) => {
  const { socket, rootfs } = await startCopyEndpoint(t);
  await writeFile(join(rootfs, "big"), Buffer.alloc(32 * 1024 * 1024, 1));
  // Standard output is a pipe that the test never reads.
  const child = spawn(
    process.execPath,
    [
      mainScript,
      ...["--address", socket, "--protocol", protocol],
      ...["cp", "c1:/big", "-"],
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  t.after(() => {
    child.kill("SIGKILL");
    child.stdout.destroy();
  });
  child.stdout.pause();
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  await new Promise((resolve) => setTimeout(resolve, 1500));

  child.kill("SIGINT");
  const [code] = await Promise.race([
    once(child, "exit"),
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`still running: ${stderr}`)), 5000),
    ),
  ]);

  assert.equal(code, 130, stderr);
  assert.match(stderr, /canceled: interrupted/);
});

test("non-UTF-8 source name explained", async (t) => {
  const dir = await tempDir(t);
  // A name with the byte 0xfe, which UTF-8 never uses.
  await mkdir(Buffer.concat([Buffer.from(`${dir}/bad`), Buffer.from([0xfe])]));

  const result = await new Promise<Output>((resolve) => {
    execFile(
      "sh",
      [
        "-c",
        `"$0" "$1" cp "$(printf '%s/bad\\376' "$2")" c1:/x`,
        process.execPath,
        mainScript,
        dir,
      ],
      {
        timeout: 30_000,
        env: { ...process.env, CONTAINERD_ADDRESS: join(dir, "none.sock") },
      },
      (error, stdout, stderr) =>
        resolve({ status: error === null ? 0 : 1, stdout, stderr }),
    );
  });

  assert.equal(result.status, 1);
  assert.match(result.stderr, /invalid argument ".*\/bad\uFFFD"/);
  assert.match(result.stderr, /not valid UTF-8/);
});

test("non-UTF-8 container path and destination are usage errors", async (t) => {
  const dir = await tempDir(t);
  for (const [source, destination] of [
    ["c1:/nu/srv\\377bad", "."],
    ["c1:/x", "out\\377"],
  ]) {
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(
        "sh",
        [
          "-c",
          `"$0" "$1" cp "$(printf '${source}')" "$(printf '${destination}')"`,
          process.execPath,
          mainScript,
        ],
        {
          cwd: dir,
          env: { ...process.env, CONTAINERD_ADDRESS: join(dir, "none.sock") },
        },
      );
      child.on("exit", resolve);
    });

    assert.equal(code, 2, `${source} ${destination}`);
  }
  assert.deepEqual(await readdir(dir), []);
});

test("copy out to a slow pipe intact", async (t) => {
  const { socket, rootfs } = await startCopyEndpoint(t);
  const content = Buffer.alloc(24 * 1024 * 1024);
  for (let index = 0; index < content.length; index += 4) {
    content.writeUInt32LE(index, index);
  }
  await writeFile(join(rootfs, "big"), content);
  const child = spawnCopyOut(socket, "c1:/big");

  // Reads in bursts with pauses, so that writes to the pipe wait while
  // more messages arrive and the received memory could be reused early.
  const chunks: Buffer[] = [];
  child.stdout.on("data", (chunk: Buffer) => {
    chunks.push(chunk);
    if (chunks.length % 8 === 0) {
      child.stdout.pause();
      setTimeout(() => child.stdout.resume(), 20);
    }
  });
  const [code] = await Promise.all([
    once(child, "exit").then(([exitCode]) => exitCode),
    once(child.stdout, "end"),
  ]);

  assert.equal(code, 0);
  const archive = Buffer.concat(chunks);
  // One header block, then the body.
  const body = archive.subarray(512, 512 + content.length);
  assert.equal(body.length, content.length);
  assert.ok(body.equals(content), "the archive body differs from the file");
});

test("--timeout with serve is a usage error", async (t) => {
  const dir = await tempDir(t);

  const result = await runCommand([
    "--timeout",
    "1",
    "serve",
    "--root",
    dir,
    "--ttrpc",
    join(dir, "s.sock"),
  ]);

  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /--timeout does not apply to serve/);
  assert.deepEqual(await readdir(dir), []);
});
