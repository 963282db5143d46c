/**
 * Waiting on a child process's own state, so that a test signals it when
 * it is ready rather than after a delay that a busy machine can outlast.
 */
import { readFile } from "node:fs/promises";
import { constants } from "node:os";
import { setTimeout as delay } from "node:timers/promises";

/**
 * Resolves once process `pid` catches `signal` (Linux: the SigCgt mask of
 * /proc/PID/status). Rejects when the process is gone or after
 * `timeoutMs`.
 */
export async function waitForSignalHandler(
  pid: number,
  signal: NodeJS.Signals,
  timeoutMs = 20_000,
): Promise<void> {
  const bit = 1n << BigInt(constants.signals[signal] - 1);
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const caught = /^SigCgt:\s*([0-9a-f]+)$/m.exec(status)?.[1];
    if (caught !== undefined && (BigInt(`0x${caught}`) & bit) !== 0n) {
      return;
    }
    if (performance.now() > deadline) {
      throw new Error(
        `process ${pid} did not catch ${signal} within ${timeoutMs} ms`,
      );
    }
    await delay(20);
  }
}
