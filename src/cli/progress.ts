/**
 * Progress on standard error: a bar on a terminal, a line every few seconds
 * otherwise, nothing with --quiet.
 */
import cliProgress from "cli-progress";
import { formatBytes, formatRate } from "./format.js";

export interface ProgressReporter {
  /** Reports the bytes moved so far. */
  update(bytes: number): void;
  /** Sets the expected total once it is known. */
  setTotal(bytes: number): void;
  /** Removes the bar. */
  stop(): void;
}

const quiet: ProgressReporter = {
  update() {},
  setTotal() {},
  stop() {},
};

export function createProgress(
  label: string,
  options: { quiet?: boolean; total?: number },
): ProgressReporter {
  if (options.quiet) {
    return quiet;
  }
  if (process.stderr.isTTY) {
    return barProgress(label, options.total);
  }
  return lineProgress(label);
}

function barProgress(label: string, total?: number): ProgressReporter {
  const started = Date.now();
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
      format: (_options, params, payload) => {
        const moved = formatBytes(params.value);
        const rate = formatRate(params.value, Date.now() - started);
        if (params.total > 0) {
          const percent = Math.floor(params.progress * 100);
          return `${label} [${"#".repeat(percent / 4).padEnd(25)}] ${percent}% ${moved} of ${formatBytes(params.total)} ${rate} ${payload.eta ?? ""}`;
        }
        return `${label} ${moved} ${rate}`;
      },
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total ?? 0, 0, { eta: "" });
  let lastTotal = total ?? 0;
  return {
    update(bytes) {
      const elapsed = (Date.now() - started) / 1000;
      const rate = bytes / Math.max(elapsed, 0.001);
      const eta =
        lastTotal > 0 && rate > 0
          ? `${Math.ceil((lastTotal - bytes) / rate)}s left`
          : "";
      bar.update(bytes, { eta });
    },
    setTotal(bytes) {
      lastTotal = bytes;
      bar.setTotal(bytes);
    },
    stop() {
      bar.stop();
    },
  };
}

function lineProgress(label: string): ProgressReporter {
  const started = Date.now();
  let last = started;
  return {
    update(bytes) {
      const now = Date.now();
      if (now - last >= 5000) {
        last = now;
        process.stderr.write(
          `${label}: ${formatBytes(bytes)} (${formatRate(bytes, now - started)})\n`,
        );
      }
    },
    setTotal() {},
    stop() {},
  };
}
