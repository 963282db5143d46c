/**
 * The main job on the embedded default: an in-process ttrpc transfer server
 * over a temporary root with one container, a real tree copied into it and
 * back out, and every file compared.
 */
import { existsSync, realpathSync, statSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { performance } from "node:perf_hooks";
import {
  connect,
  copyFromContainer,
  copyIntoContainer,
} from "../client/index.js";
import { throwIfAborted } from "../errors/index.js";
import { TransferServer } from "../server/index.js";
import { formatBytes, formatRate } from "./format.js";
import { packageRoot } from "./package-info.js";
import { compareTrees, summarizeTree, type TreeEntry } from "./tree.js";
import { usageError } from "./usage.js";

export interface DemoOptions {
  /** Tree to copy. Default: this package's node_modules. */
  source?: string;
  /** Keep the temporary folder for inspection. */
  keep?: boolean;
  /** Signal that stops the demo: the copies fail with Canceled and the folder is removed. */
  signal?: AbortSignal;
}

/** Runs the demo and returns the process exit code. */
export async function runDemo(options: DemoOptions = {}): Promise<number> {
  const source = checkedSource(options.source ?? defaultSource());
  const work = await mkdtemp(join(tmpdir(), "containerd-transfer-demo-"));
  const socket = join(work, "transfer.sock");
  const rootfs = join(work, "containers", "demo", "rootfs");
  const output = join(work, "out");
  // An existing /data receives the tree under its own name, as docker cp
  // copies into an existing directory.
  await mkdir(join(rootfs, "data"), { recursive: true });
  await mkdir(output);

  const server = new TransferServer({ root: join(work, "containers") });
  await server.listen({ ttrpc: socket });
  const client = connect({ address: socket, protocol: "ttrpc" });
  const name = basename(source);
  const warnings: string[] = [];
  const onWarning = (_code: string, message: string) => warnings.push(message);
  try {
    const listed = await summarizeTree(source, options.signal);
    const expected = new Map(
      [...listed].filter(([, entry]) => entry.type !== "other"),
    );
    const stats = countTree(expected);
    const skipped = listed.size - expected.size;
    print(
      `source ${source}: ${stats.files} files, ${stats.directories} ` +
        `directories, ${stats.symlinks} symlinks, ${formatBytes(stats.bytes)}` +
        (skipped > 0
          ? `; ${skipped} devices, FIFOs or sockets, which a copy skips`
          : ""),
    );
    print(`server: ttrpc on ${socket}, container "demo" at ${rootfs}`);

    let started = performance.now();
    const copiedIn = await copyIntoContainer(
      client,
      source,
      { containerId: "demo", path: "/data" },
      { signal: options.signal, onWarning },
    );
    const inMs = performance.now() - started;
    print(
      `copy in  ${source} -> demo:/data: ${formatBytes(copiedIn.bytes)} of ` +
        `tar in ${(inMs / 1000).toFixed(2)} s (${formatRate(copiedIn.bytes, inMs)})`,
    );

    started = performance.now();
    const copiedOut = await copyFromContainer(
      client,
      { containerId: "demo", path: `/data/${name}` },
      output,
      { signal: options.signal, onWarning },
    );
    const outMs = performance.now() - started;
    print(
      `copy out demo:/data/${name} -> ${output}: ` +
        `${formatBytes(copiedOut.bytes)} of tar in ` +
        `${(outMs / 1000).toFixed(2)} s (${formatRate(copiedOut.bytes, outMs)})`,
    );

    throwIfAborted(options.signal);
    for (const warning of warnings.slice(0, 20)) {
      print(`warning: ${warning}`);
    }
    const problems = [
      ...compareTrees(
        expected,
        await summarizeTree(join(rootfs, "data", name), options.signal),
      ),
      ...compareTrees(
        expected,
        await summarizeTree(join(output, name), options.signal),
      ),
    ];
    if (problems.length > 0) {
      print(`FAILED: ${problems.length} differences, first ones:`);
      for (const problem of problems.slice(0, 20)) {
        print(`  ${problem}`);
      }
      return 1;
    }
    print(
      `verified: all ${expected.size} entries match in content, mode and ` +
        "size, inside the container and after the copy out",
    );
    return 0;
  } finally {
    await client.close();
    await server.close();
    if (options.keep) {
      print(`kept ${work}`);
    } else {
      await rm(work, { recursive: true, force: true });
    }
  }
}

/**
 * Returns the real path of the demo's source folder, so that a symlinked
 * folder such as a shared node_modules is walked. Throws a usage error
 * naming what is wrong with it.
 */
function checkedSource(source: string): string {
  const info = statSync(source, { throwIfNoEntry: false });
  if (info === undefined) {
    throw usageError(
      `invalid demo source "${source}": no such directory; give --source DIR`,
    );
  }
  if (!info.isDirectory()) {
    throw usageError(
      `invalid demo source "${source}": not a directory; give --source DIR`,
    );
  }
  return realpathSync(source);
}

/**
 * Returns the package's node_modules, or its compiled code where an
 * installed package has no node_modules of its own.
 */
function defaultSource(): string {
  const root = packageRoot() ?? process.cwd();
  const candidates = ["node_modules", "dist", "src"].map((name) =>
    join(root, name),
  );
  return candidates.find((path) => existsSync(path)) ?? candidates[0]!;
}

function countTree(entries: Map<string, TreeEntry>) {
  const stats = { files: 0, directories: 0, symlinks: 0, bytes: 0 };
  for (const entry of entries.values()) {
    if (entry.type === "file") {
      stats.files++;
      // A hard link's bytes are stored and copied once.
      if (entry.linkOf === undefined) {
        stats.bytes += entry.size;
      }
    } else if (entry.type === "directory") {
      stats.directories++;
    } else if (entry.type === "symlink") {
      stats.symlinks++;
    }
  }
  return stats;
}

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}
