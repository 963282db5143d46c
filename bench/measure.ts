/**
 * Process helpers for benchmarks: run a child to completion while sampling
 * its peak resident memory (VmHWM in /proc, Linux only), and start a
 * long-running child.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

export interface RunResult {
  ms: number;
  /** Peak resident memory in bytes, as last sampled. */
  peakRssBytes: number;
  stdout: string;
}

/** Reads VmHWM (peak resident set) of a process, in bytes. */
export function peakRss(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = /VmHWM:\s+(\d+) kB/.exec(status);
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Samples a running process's peak memory every 20 ms until stopped. */
export function samplePeak(child: ChildProcess): () => number {
  let peak = 0;
  const timer = setInterval(() => {
    peak = Math.max(peak, peakRss(child.pid!));
  }, 20);
  return () => {
    clearInterval(timer);
    peak = Math.max(peak, peakRss(child.pid!));
    return peak;
  };
}

/** Runs a command to its end; a non-zero exit is an error with stderr. */
export function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<RunResult> {
  const started = performance.now();
  const child = spawn(command, args, {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const stopSampling = samplePeak(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr!.on("data", (chunk) => {
    stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    // Sample once more when the output closes, just before the process is
    // reaped and its /proc entry disappears.
    let peakRssBytes = 0;
    child.stdout!.on("end", () => {
      peakRssBytes = Math.max(peakRssBytes, peakRss(child.pid!));
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      peakRssBytes = Math.max(peakRssBytes, stopSampling());
      const ms = performance.now() - started;
      if (code !== 0) {
        reject(
          new Error(`${command} ${args.join(" ")} exited ${code}: ${stderr}`),
        );
        return;
      }
      resolve({ ms, peakRssBytes, stdout });
    });
  });
}
