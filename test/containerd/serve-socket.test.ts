/**
 * The server's sockets: their mode and group, one server per path, stale
 * files replaced, and `containerd-transfer serve --containerd` end to end.
 * Only the last test needs containerd.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  rm,
  writeFile,
} from "node:fs/promises";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { connect } from "../../src/client/index.js";
import { TransferError } from "../../src/errors/index.js";
import { TransferServer } from "../../src/server/index.js";
import { ReadStream, WriteStream } from "../../src/transfer/index.js";
import { containerdEnv, copyIn, exec, uniqueId } from "./harness.js";

const cli = fileURLToPath(new URL("../../cli.js", import.meta.url));

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "ctt-sock-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function startServer(
  t: TestContext,
  dir: string,
  options: { ttrpc?: string; grpc?: string; gid?: number },
): Promise<TransferServer> {
  const root = join(dir, "root");
  await mkdir(root, { recursive: true });
  const server = new TransferServer({ root });
  t.after(() => server.close());
  await server.listen(options);
  return server;
}

/** Leaves a socket file behind with no process listening on it. */
async function staleSocket(path: string): Promise<void> {
  const child = spawn(process.execPath, [
    "-e",
    "require('net').createServer().listen(process.argv[1], () => " +
      "console.log('ready'))",
    path,
  ]);
  await once(child.stdout, "data");
  child.kill("SIGKILL");
  await once(child, "exit");
  await chmod(path, 0o755);
}

test("serve socket: mode 0600 by default", async (t) => {
  const dir = await tempDir(t);
  const ttrpc = join(dir, "t.sock");
  const grpc = join(dir, "g.sock");
  await startServer(t, dir, { ttrpc, grpc });

  assert.equal((await lstat(ttrpc)).mode & 0o777, 0o600);
  assert.equal((await lstat(grpc)).mode & 0o777, 0o600);
  assert.ok((await lstat(ttrpc)).isSocket());
});

test("serve socket: group gets mode 0660", async (t) => {
  const dir = await tempDir(t);
  const ttrpc = join(dir, "t.sock");
  await startServer(t, dir, { ttrpc, gid: 4321 });

  const info = await lstat(ttrpc);
  assert.equal(info.mode & 0o777, 0o660);
  assert.equal(info.gid, 4321);
});

test("serve socket: second server rejected", async (t) => {
  const dir = await tempDir(t);
  const ttrpc = join(dir, "t.sock");
  await startServer(t, dir, { ttrpc });
  const before = await lstat(ttrpc);

  const second = new TransferServer({ root: join(dir, "root") });
  t.after(() => second.close());
  const failure = await second
    .listen({ ttrpc })
    .catch((error: unknown) => error);

  assert.ok(failure instanceof TransferError, `got ${failure}`);
  assert.equal(failure.kind, "already exists");
  assert.match(failure.rawMessage, /another server is listening/);
  assert.equal((await lstat(ttrpc)).ino, before.ino);
  const client = connect({ address: ttrpc, protocol: "ttrpc" });
  t.after(() => client.close());
  const echoed: Buffer[] = [];
  await client.transfer(
    new ReadStream([Buffer.from("still served")], "text/plain"),
    new WriteStream(
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          echoed.push(chunk);
          done();
        },
      }),
      "text/plain",
    ),
  );
  assert.equal(Buffer.concat(echoed).toString(), "still served");
});

test("serve socket: stale socket replaced", async (t) => {
  const dir = await tempDir(t);
  const ttrpc = join(dir, "t.sock");
  await staleSocket(ttrpc);
  // The new socket can reuse the stale one's inode number, so the mode
  // and a connection tell them apart.
  const staleMode = (await lstat(ttrpc)).mode & 0o777;

  await startServer(t, dir, { ttrpc });
  const accepted = await new Promise<boolean>((resolve) => {
    const socket = netConnect(ttrpc);
    socket.once("connect", () => resolve(true));
    socket.once("error", () => resolve(false));
    socket.once("close", () => socket.destroy());
    t.after(() => socket.destroy());
  });

  assert.notEqual(staleMode, 0o600);
  assert.equal((await lstat(ttrpc)).mode & 0o777, 0o600);
  assert.equal(accepted, true);
});

test("serve socket: regular file not replaced", async (t) => {
  const dir = await tempDir(t);
  const ttrpc = join(dir, "t.sock");
  await writeFile(ttrpc, "not a socket");

  const server = new TransferServer({ root: dir });
  t.after(() => server.close());
  const failure = await server.listen({ ttrpc }).catch((e: unknown) => e);

  assert.ok(failure instanceof TransferError, `got ${failure}`);
  assert.equal(failure.kind, "invalid argument");
  assert.equal(await readFile(ttrpc, "utf8"), "not a socket");
});

test("serve socket: close removes the file", async (t) => {
  const dir = await tempDir(t);
  const ttrpc = join(dir, "t.sock");
  const server = await startServer(t, dir, { ttrpc });

  await server.close();

  await assert.rejects(lstat(ttrpc), { code: "ENOENT" });
});

/** Starts the CLI; resolves with the process and its collected stderr. */
function startCli(args: string[]): {
  child: ChildProcess;
  stderr: () => string;
} {
  const child = spawn(process.execPath, [cli, ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    stderr += chunk;
  });
  return { child, stderr: () => stderr };
}

async function exitCode(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) {
    return child.exitCode;
  }
  const [code] = await once(child, "exit");
  return code as number | null;
}

test("serve command: root and containerd exclusive", async (t) => {
  const dir = await tempDir(t);
  const ttrpc = join(dir, "t.sock");

  const both = startCli([
    "serve",
    "--root",
    dir,
    "--containerd",
    join(dir, "containerd.sock"),
    "--ttrpc",
    ttrpc,
  ]);
  const neither = startCli(["serve", "--ttrpc", ttrpc]);

  assert.equal(await exitCode(both.child), 2);
  assert.match(both.stderr(), /exactly one of --containerd SOCKET/);
  assert.equal(await exitCode(neither.child), 2);
  assert.match(neither.stderr(), /exactly one of --containerd SOCKET/);
});

test("serve command: containerd mode end to end", async (t) => {
  const env = containerdEnv(t);
  if (!env) return;
  const dir = await tempDir(t);
  const ttrpc = join(dir, "t.sock");
  const first = startCli([
    "serve",
    "--containerd",
    env.address,
    "--ttrpc",
    ttrpc,
  ]);
  t.after(() => {
    first.child.kill("SIGKILL");
  });
  for (let i = 0; i < 100; i++) {
    if (await lstat(ttrpc).catch(() => undefined)) break;
    assert.equal(first.child.exitCode, null, first.stderr());
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const target = `/tmp/${uniqueId("cli")}`;
  t.after(() => exec(env, "c1", "rm", "-rf", target).then(() => {}));

  const client = connect({ address: ttrpc, protocol: "ttrpc" });
  t.after(() => client.close());
  await copyIn(client, "c1", target, [{ name: "via-cli.txt", body: "cli\n" }]);
  const second = startCli([
    "serve",
    "--containerd",
    env.address,
    "--ttrpc",
    ttrpc,
  ]);
  const secondCode = await exitCode(second.child);
  first.child.kill("SIGTERM");
  const firstCode = await exitCode(first.child);

  assert.equal(await exec(env, "c1", "cat", `${target}/via-cli.txt`), "cli\n");
  assert.equal(secondCode, 1);
  assert.match(second.stderr(), /another server is listening/);
  // The second server never started, so it reports no stop.
  assert.doesNotMatch(second.stderr(), /server stopped/);
  assert.equal(firstCode, 0, first.stderr());
  await assert.rejects(lstat(ttrpc), { code: "ENOENT" });
});
