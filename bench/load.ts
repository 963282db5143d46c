/**
 * `npm run load`: starts `containerd-transfer serve` in a child process
 * and runs two phases of concurrent transfers against it. The first runs
 * 100 transfers on one connection, and the second 10 connections with 10
 * transfers each. Transfers mix copy in, copy out and echo with sizes
 * from 0 bytes to LOAD_MAX_BYTES, and each one is checked by SHA-256.
 * Prints the throughput of each phase and the server's peak resident
 * memory (VmHWM), and exits 1 when a transfer fails or the peak passes
 * LOAD_MAX_RSS_MIB.
 *
 * Environment: LOAD_PROTOCOL (ttrpc or grpc, default ttrpc),
 * LOAD_MAX_BYTES (largest payload, default 8 MiB), LOAD_MAX_RSS_MIB
 * (default 512).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type LoadPhase,
  type PhaseResult,
  payloadSizes,
  runPhase,
} from "./load-workload.js";
import { peakRss } from "./measure.js";

const cli = fileURLToPath(new URL("../cli.js", import.meta.url));
const mib = 1024 * 1024;

const phases: LoadPhase[] = [
  { name: "one-connection", connections: 1, transfersPerConnection: 100 },
  { name: "ten-connections", connections: 10, transfersPerConnection: 10 },
];

function readProtocol(): "ttrpc" | "grpc" {
  const protocol = process.env.LOAD_PROTOCOL ?? "ttrpc";
  if (protocol !== "ttrpc" && protocol !== "grpc") {
    throw new Error(`invalid LOAD_PROTOCOL=${protocol}: use ttrpc or grpc`);
  }
  return protocol;
}

function readNumber(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === "") {
    return fallback;
  }
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(`invalid ${name}=${text}: use a whole number`);
  }
  return value;
}

async function main(): Promise<number> {
  const protocol = readProtocol();
  const maxBytes = readNumber("LOAD_MAX_BYTES", 8 * mib);
  const maxRssBytes = readNumber("LOAD_MAX_RSS_MIB", 512) * mib;
  const work = await mkdtemp(join(tmpdir(), "ct-load-"));
  const root = join(work, "root");
  await mkdir(root);
  const socket = join(work, `${protocol}.sock`);
  const server = spawn(
    process.execPath,
    [cli, "serve", "--root", root, `--${protocol}`, socket],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  // The server logs one info line per transfer; only its other lines
  // (warnings and errors) are shown.
  const serverProblems: string[] = [];
  let partialLine = "";
  server.stderr!.setEncoding("utf8").on("data", (text: string) => {
    const lines = (partialLine + text).split("\n");
    partialLine = lines.pop()!;
    for (const line of lines) {
      if (line !== "" && !/ info /.test(line)) {
        serverProblems.push(line);
      }
    }
  });

  let failed = false;
  try {
    await waitForSocket(server, socket);
    const idleRss = currentRss(server.pid!);
    let peak = peakRss(server.pid!);
    const sampler = setInterval(() => {
      peak = Math.max(peak, peakRss(server.pid!));
    }, 20);

    console.log(
      `protocol ${protocol}, payloads 0 B to ${formatBytes(maxBytes)}, ` +
        `server idle RSS ${formatBytes(idleRss)}`,
    );
    console.log(
      "phase            transfers  failed     payload  seconds  MiB/s  server peak",
    );
    try {
      for (const phase of phases) {
        const result = await runPhase(phase, {
          address: socket,
          protocol,
          root,
          sizes: payloadSizes(maxBytes),
        });
        peak = Math.max(peak, peakRss(server.pid!));
        printRow(result, peak);
        const failures = result.outcomes.filter(
          (outcome) => outcome.failure !== undefined,
        );
        for (const outcome of failures.slice(0, 10)) {
          console.error(
            `  ${outcome.id} (${outcome.direction}, ${outcome.bytes} B): ${outcome.failure}`,
          );
        }
        failed ||= failures.length > 0;
        // Frees the disk space of this phase's containers.
        await rm(root, { recursive: true, force: true });
        await mkdir(root);
      }
    } finally {
      clearInterval(sampler);
    }

    if (peak > maxRssBytes) {
      console.error(
        `server peak RSS ${formatBytes(peak)} is over LOAD_MAX_RSS_MIB=` +
          `${maxRssBytes / mib}`,
      );
      failed = true;
    }
  } finally {
    server.kill("SIGTERM");
    await new Promise((resolve) => {
      if (server.exitCode !== null || server.signalCode !== null) {
        resolve(undefined);
      } else {
        server.once("exit", resolve);
      }
    });
    await rm(work, { recursive: true, force: true });
  }
  if (serverProblems.length > 0) {
    console.error(
      `server wrote ${serverProblems.length} warning or error lines:`,
    );
    for (const line of serverProblems.slice(0, 20)) {
      console.error(`  ${line}`);
    }
    failed = true;
  }
  return failed ? 1 : 0;
}

function printRow(result: PhaseResult, peak: number): void {
  const failures = result.outcomes.filter(
    (outcome) => outcome.failure !== undefined,
  ).length;
  const seconds = result.ms / 1000;
  const cells = [
    result.phase.name.padEnd(17),
    String(result.outcomes.length).padStart(9),
    String(failures).padStart(8),
    formatBytes(result.bytes).padStart(12),
    seconds.toFixed(2).padStart(9),
    (result.bytes / mib / seconds).toFixed(0).padStart(7),
    formatBytes(peak).padStart(13),
  ];
  console.log(cells.join(""));
}

/** Reads VmRSS (current resident set) of a process, in bytes. */
function currentRss(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(
    readFileSync(`/proc/${pid}/status`, "utf8"),
  );
  return match ? Number(match[1]) * 1024 : 0;
}

function formatBytes(bytes: number): string {
  if (bytes >= mib) {
    return `${(bytes / mib).toFixed(1)} MiB`;
  }
  if (bytes >= 1024) {
    return `${(bytes / 1024).toFixed(1)} KiB`;
  }
  return `${bytes} B`;
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
      throw new Error(`server exited ${server.exitCode} before listening`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`server did not create ${socket} within 5 s`);
}

process.exitCode = await main();
