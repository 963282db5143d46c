/**
 * `npm run bench`: copies a large file into a container and back out
 * through the CLI and a ttrpc server in another process, and measures the
 * floor of the same job (file to socket to file, no protocol) in the same
 * run. Prints MiB/s for each direction, the ratio to the floor and the peak
 * resident memory of client and server.
 *
 * BENCH_BYTES sets the file size (default 1 GiB).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { measureFloor } from "./floor.js";
import { run, samplePeak } from "./measure.js";

const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const mib = 1024 * 1024;

async function main(): Promise<void> {
  const bytes = Number(process.env.BENCH_BYTES ?? 1024 * mib);
  const work = await mkdtemp(join(tmpdir(), "ctr-bench-"));
  try {
    const source = join(work, "big.bin");
    await writeFile(source, bytes);
    const rootfs = join(work, "root", "bench", "rootfs");
    await mkdir(rootfs, { recursive: true });

    const floorMs = await measureFloor(
      source,
      join(work, "floor.bin"),
      join(work, "floor.sock"),
    );
    await rm(join(work, "floor.bin"));

    const socket = join(work, "t.sock");
    const server = spawn(
      process.execPath,
      [cli, "serve", "--root", join(work, "root"), "--ttrpc", socket],
      {
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    const serverPeak = samplePeak(server);
    await waitForSocket(server, socket);
    const env = { ...process.env, CONTAINERD_ADDRESS: socket };
    const common = ["--protocol", "ttrpc", "cp", "-q"];

    const copyIn = await run(
      process.execPath,
      [cli, ...common, source, "bench:/"],
      env,
    );
    const out = join(work, "out");
    await mkdir(out);
    const copyOut = await run(
      process.execPath,
      [cli, ...common, "bench:/big.bin", out],
      env,
    );
    server.kill("SIGTERM");
    const serverBytes = serverPeak();

    await verifySame(source, join(out, "big.bin"));
    const rate = (ms: number) => bytes / mib / (ms / 1000);
    const floor = rate(floorMs);
    const rows = [
      ["job", "MiB/s", "floor MiB/s", "ratio", "client peak", "server peak"],
      row("copy in", rate(copyIn.ms), floor, copyIn.peakRssBytes, serverBytes),
      row(
        "copy out",
        rate(copyOut.ms),
        floor,
        copyOut.peakRssBytes,
        serverBytes,
      ),
    ];
    console.log(
      `file: ${(bytes / mib).toFixed(0)} MiB, floor: file -> unix socket -> second process -> file`,
    );
    for (const line of rows) {
      console.log(
        line
          .map((cell, i) => (i === 0 ? cell.padEnd(10) : cell.padStart(12)))
          .join(""),
      );
    }
    console.log("server peak is over the whole run (both directions)");
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function row(
  name: string,
  rate: number,
  floor: number,
  clientPeak: number,
  serverPeak: number,
): string[] {
  return [
    name,
    rate.toFixed(0),
    floor.toFixed(0),
    `${((rate / floor) * 100).toFixed(0)}%`,
    `${(clientPeak / mib).toFixed(0)} MB`,
    `${(serverPeak / mib).toFixed(0)} MB`,
  ];
}

async function writeFile(path: string, bytes: number): Promise<void> {
  const block = randomBytes(mib);
  const out = createWriteStream(path);
  for (let written = 0; written < bytes; written += mib) {
    const chunk = block.subarray(0, Math.min(mib, bytes - written));
    if (!out.write(chunk)) {
      await new Promise<void>((resolve) => out.once("drain", () => resolve()));
    }
  }
  await new Promise<void>((resolve, reject) =>
    out.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
}

async function waitForSocket(
  server: ChildProcess,
  socket: string,
): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await stat(socket).catch(() => undefined)) {
      return;
    }
    if (server.exitCode !== null) {
      throw new Error(`server exited ${server.exitCode}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`server did not create ${socket} within 5 s`);
}

async function verifySame(a: string, b: string): Promise<void> {
  const [hashA, hashB] = await Promise.all([hash(a), hash(b)]);
  if (hashA !== hashB) {
    throw new Error(`copy differs: ${a} and ${b}`);
  }
}

function hash(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const digest = createHash("sha256");
    createReadStream(path)
      .on("data", (chunk) => digest.update(chunk))
      .on("end", () => resolve(digest.digest("hex")))
      .on("error", reject);
  });
}

await main();
