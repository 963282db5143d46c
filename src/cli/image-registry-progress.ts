/**
 * Progress of a pull or push on standard error: a bar per blob on a
 * terminal, one line per step and finished blob otherwise, nothing when
 * quiet. containerd 1.7 names blobs `<kind>-<digest>` (or
 * `<kind>-<ref>@<digest>`) and sends their byte counts every 300 ms.
 */
import cliProgress from "cli-progress";
import type { Progress } from "../transfer/index.js";
import { formatBytes, printable } from "./format.js";

export interface RegistryProgress {
  onProgress?: (event: Progress) => void;
  /**
   * Ends the display once the transfer settled. After a success, blobs
   * still shown as unfinished are marked done: containerd 1.7 often ends
   * its progress stream before it reports the pushed manifest.
   */
  stop(succeeded: boolean): void;
}

// Blob states after which containerd sends nothing more for the blob.
const finalStates = new Set(["complete", "already exists", "saved"]);

/** Returns the display for one pull or push. */
export function createRegistryProgress(quiet?: boolean): RegistryProgress {
  if (quiet) {
    return { stop() {} };
  }
  return process.stderr.isTTY ? barDisplay() : lineDisplay();
}

function barDisplay(): RegistryProgress {
  const bars = new cliProgress.MultiBar(
    {
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
      format: (_options, params, payload) => {
        const percent = params.total > 0 ? params.progress * 100 : 0;
        const filled = Math.round(percent / 4);
        return (
          `${payload.label.padEnd(20)} ${payload.state.padEnd(15)} ` +
          `[${"#".repeat(filled).padEnd(25)}] ` +
          `${formatBytes(params.value)} of ${formatBytes(params.total)}`
        );
      },
    },
    cliProgress.Presets.shades_classic,
  );
  const byName = new Map<string, cliProgress.SingleBar>();
  const unfinished = new Set<string>();
  const steps: string[] = [];

  return {
    onProgress(event) {
      const label = blobLabel(event.name);
      if (label === undefined && byName.size === 0) {
        process.stderr.write(`${printable(describeStep(event))}\n`);
        return;
      }
      if (label === undefined) {
        // Lines written under running bars are overdrawn: they follow the
        // bars once the transfer settled.
        steps.push(printable(describeStep(event)));
        return;
      }
      const total = Number(event.total);
      const done = finalStates.has(event.event);
      const value = done ? total : Number(event.progress);
      let bar = byName.get(event.name);
      if (bar === undefined) {
        bar = bars.create(total, value, { label, state: event.event });
        byName.set(event.name, bar);
      }
      if (total > 0) {
        bar.setTotal(total);
      }
      bar.update(value, { label, state: event.event });
      if (done) {
        unfinished.delete(event.name);
      } else {
        unfinished.add(event.name);
      }
    },
    stop(succeeded) {
      if (succeeded) {
        for (const name of unfinished) {
          const bar = byName.get(name);
          bar?.update(bar.getTotal(), { state: "done" });
        }
      }
      bars.stop();
      for (const step of steps) {
        process.stderr.write(`${step}\n`);
      }
    },
  };
}

function lineDisplay(): RegistryProgress {
  const reported = new Set<string>();
  const unfinished = new Map<string, Progress>();
  const report = (event: Progress, state: string) => {
    reported.add(event.name);
    unfinished.delete(event.name);
    const label = blobLabel(event.name);
    process.stderr.write(
      `${label}: ${state} (${formatBytes(Number(event.total))})\n`,
    );
  };
  return {
    onProgress(event) {
      if (blobLabel(event.name) === undefined) {
        process.stderr.write(`${printable(describeStep(event))}\n`);
      } else if (reported.has(event.name)) {
        return;
      } else if (finalStates.has(event.event)) {
        report(event, event.event);
      } else {
        unfinished.set(event.name, event);
      }
    },
    stop(succeeded) {
      if (succeeded) {
        for (const event of unfinished.values()) {
          report(event, "done");
        }
      }
    },
  };
}

// Returns `layer 0123456789ab` for a blob name such as `layer-sha256:…`
// or `manifest-1@sha256:…`, and undefined for a step of the transfer.
function blobLabel(name: string): string | undefined {
  const match = /^([a-z]+)-(?:[^@]*@)?[a-z0-9]+:([0-9a-f]{12})[0-9a-f]*$/.exec(
    name,
  );
  if (match) {
    return `${match[1]} ${match[2]}`;
  }
  const named = /@[a-z0-9]+:([0-9a-f]{12})[0-9a-f]*$/.exec(name);
  return named ? `blob ${named[1]}` : undefined;
}

function describeStep(event: Progress): string {
  return event.name && !event.event.includes(event.name)
    ? `${event.event}: ${event.name}`
    : event.event;
}
