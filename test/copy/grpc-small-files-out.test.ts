/**
 * Copy out over gRPC of a folder of many small files, through the CLI.
 * The server ends the call once the last byte is sent, while the client
 * may still send a window update for bytes it has just extracted.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import {
  access,
  mkdir,
  mkdtemp,
  readFile,
  rm,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { mainScript } from "./harness.js";

const sizes = [
  0, 1, 100, 511, 512, 513, 4096, 60_000, 65_535, 65_536, 65_537, 66_000,
  70_000,
];

/**
 * File sizes in a shuffled order, because whether the copy failed depended
 * on how the server gathered entries into messages: a repeating order of
 * the same sizes never failed. The order is fixed so that a run repeats.
 */
let state = 20_261_204;
function nextRandom(): number {
  state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
  return state;
}
const bodies = Array.from({ length: 1500 }, () => {
  const size = sizes[nextRandom() % sizes.length]!;
  return Buffer.alloc(size, nextRandom() & 0xff);
});

function runCli(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [mainScript, ...args],
      { timeout: 60_000 },
      (error, _stdout, stderr) => {
        const code = error === null ? 0 : Number(error.code ?? -1);
        resolve({ code, stderr });
      },
    );
  });
}

test("gRPC copy out of small files", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "grpc-small-out-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const rootfs = join(dir, "root", "c1", "rootfs");
  const source = join(rootfs, "small");
  await mkdir(source, { recursive: true });
  const count = 1500;
  for (let i = 0; i < count; i++) {
    await writeFile(join(source, `f${i}`), bodies[i]!);
  }
  const socket = join(dir, "grpc.sock");
  // The server runs in its own process, as `serve` does in production.
  const server = spawn(
    process.execPath,
    [mainScript, "serve", "--root", join(dir, "root"), "--grpc", socket],
    { stdio: "ignore" },
  );
  t.after(() => {
    server.kill();
  });
  for (let wait = 0; wait < 100; wait++) {
    if (
      await access(socket).then(
        () => true,
        () => false,
      )
    ) {
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  for (let run = 0; run < 6; run++) {
    const target = join(dir, `out${run}`);
    const result = await runCli([
      "--address",
      socket,
      "--protocol",
      "grpc",
      "cp",
      "c1:/small",
      target,
    ]);
    assert.equal(result.code, 0, `run ${run}: ${result.stderr}`);
    for (let i = 0; i < count; i++) {
      const copied = await readFile(join(target, `f${i}`));
      assert.ok(copied.equals(bodies[i]!), `run ${run}: f${i} differs`);
    }
  }
});
