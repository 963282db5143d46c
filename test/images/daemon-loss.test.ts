/**
 * A daemon that dies or hangs during an import. The test runs its own
 * containerd (no container) from the test daemon's installation in a
 * temporary folder, so killing it disturbs no other test.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile } from "node:fs/promises";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { connect, importImage } from "../../src/client/index.js";
import { requireContainerd } from "../helpers/containerd.js";
import { ociArchive } from "./archives.js";

const run = promisify(execFile);
const ciDir = fileURLToPath(new URL("../../../ci/", import.meta.url));
const mib = 1024 * 1024;

interface PrivateDaemon {
  address: string;
  pid: number;
}

/** Starts (or restarts) containerd in `workdir` with ci/containerd-start.sh. */
async function startDaemon(
  prefix: string,
  workdir: string,
): Promise<PrivateDaemon> {
  await run("bash", [
    `${ciDir}containerd-start.sh`,
    prefix,
    workdir,
    "--no-container",
  ]);
  const env = await readFile(`${workdir}/peers.env`, "utf8");
  const value = (key: string) =>
    new RegExp(`^${key}=(.*)$`, "m").exec(env)?.[1] ?? "";
  return {
    address: value("CONTAINERD_ADDRESS"),
    pid: Number(value("CONTAINERD_PID")),
  };
}

/** Waits up to 10 s for process `pid` to be gone (and reaped). */
async function waitForExit(pid: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`containerd pid ${pid} is still there 10 s after SIGKILL`);
}

/**
 * Yields `archive` in 64 KiB chunks, calling `onHalf` once half of it was
 * handed to the sender, then slowly enough that the import is still
 * running a second later.
 */
async function* slowly(archive: Buffer, onHalf: () => void) {
  const chunk = 64 * 1024;
  for (let offset = 0; offset < archive.length; offset += chunk) {
    if (offset >= archive.length / 2) {
      onHalf();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    yield archive.subarray(offset, offset + chunk);
  }
}

test("daemon loss fails the import", async (t) => {
  const shared = requireContainerd(t);
  if (!shared) {
    return;
  }
  const workdir = await mkdtemp("/tmp/ctdl-");
  t.after(() =>
    run("bash", [`${ciDir}containerd-stop.sh`, workdir, "--purge"]),
  );
  const archive = ociArchive({
    name: "example.test/loss:1",
    fileBytes: 32 * mib,
    seed: 21,
  }).bytes;

  // SIGKILL closes the socket, so the call fails at once.
  const first = await startDaemon(shared.prefix, workdir);
  const client = connect({ address: first.address });
  t.after(() => client.close());
  let killedAt = 0;
  const killed = importImage(
    client,
    slowly(archive, () => {
      if (killedAt === 0) {
        killedAt = Date.now();
        process.kill(first.pid, "SIGKILL");
      }
    }),
  );
  await assert.rejects(killed, (error: { kind?: string }) => {
    assert.equal(error.kind, "unavailable");
    return true;
  });
  assert.ok(killedAt > 0, "the daemon was never killed");
  assert.ok(Date.now() - killedAt < 5000, "the failure took over 5 s");

  await waitForExit(first.pid);

  // SIGSTOP keeps the socket open and silent: only the caller's signal
  // ends the call before the transport's keepalive notices.
  const second = await startDaemon(shared.prefix, workdir);
  const again = connect({ address: second.address });
  t.after(() => again.close());
  let stoppedAt = 0;
  t.after(() => {
    // A stopped daemon would keep containerd-stop.sh waiting for SIGTERM.
    try {
      process.kill(second.pid, "SIGCONT");
    } catch {
      // Already gone.
    }
  });
  const stopped = importImage(
    again,
    slowly(archive, () => {
      if (stoppedAt === 0) {
        stoppedAt = Date.now();
        process.kill(second.pid, "SIGSTOP");
      }
    }),
    { signal: AbortSignal.timeout(3000) },
  );
  await assert.rejects(stopped, (error: { kind?: string }) => {
    assert.match(error.kind ?? "", /^(deadline exceeded|canceled)$/);
    return true;
  });
  assert.ok(stoppedAt > 0, "the daemon was never stopped");
  process.kill(second.pid, "SIGCONT");

  // The same daemon, resumed, still imports.
  const result = await importImage(again, [archive]);
  assert.deepEqual(result.images, ["example.test/loss:1"]);
});
