/**
 * `npm run bench:images`: imports and exports two images through this
 * package's CLI, run through its bin launcher as an installed command
 * runs, and through `ctr` on both of its paths (the Transfer
 * service with --local=false, and its default client-side path), against
 * the same containerd in the same run. Prints seconds, MiB/s of archive,
 * the time ratio to `ctr --local=false` and each client's peak memory.
 *
 * Images: one layer with one file of BENCH_IMAGE_MIB MiB (default 512),
 * and one layer with BENCH_SMALL_FILES files of 1 KiB (default 20 000).
 * The daemon comes from CONTAINERD_TEST_ENV (a peers.env written by
 * ci/containerd-start.sh), default /tmp/ctd-test/peers.env. BENCH_RUNS
 * repeats every job (default 1) and reports the run with the median time.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type ContainerdEnv,
  defaultTestEnvPath,
  loadContainerdEnv,
} from "../test/helpers/containerd.js";
import { goArch, tarHeader } from "../test/images/archives.js";
import { type RunResult, run } from "./measure.js";

const runs = Number(process.env.BENCH_RUNS ?? 1);

// The package's bin, as an installed command runs.
const launcher = fileURLToPath(
  new URL("../../bin/containerd-transfer", import.meta.url),
);
const mib = 1024 * 1024;

interface Archive {
  path: string;
  name: string;
  bytes: number;
  manifestDigest: string;
}

interface Row {
  job: string;
  client: string;
  result: RunResult;
  archiveBytes: number;
}

async function main(): Promise<void> {
  const envFile = process.env.CONTAINERD_TEST_ENV || defaultTestEnvPath;
  const env = loadContainerdEnv(envFile);
  if (typeof env === "string") {
    throw new Error(`${env}: start containerd with ci/containerd-start.sh`);
  }
  const imageMib = Number(process.env.BENCH_IMAGE_MIB ?? 512);
  const smallFiles = Number(process.env.BENCH_SMALL_FILES ?? 20_000);
  const work = await mkdtemp(join(tmpdir(), "ctd-bench-images-"));
  const rows: Row[] = [];
  try {
    const big = await buildArchive(work, "big", [
      { name: "data.bin", size: imageMib * mib },
    ]);
    const small = await buildArchive(
      work,
      "small",
      Array.from({ length: smallFiles }, (_, i) => ({
        name: `files/${String(i).padStart(6, "0")}.txt`,
        size: 1024,
      })),
    );
    for (const [label, archive] of [
      [`${imageMib} MiB, 1 file`, big],
      [`${smallFiles} files`, small],
    ] as const) {
      rows.push(...(await measureImport(env, label, archive)));
      rows.push(...(await measureExport(env, label, archive, work)));
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  printRows(env, rows);
}

/** Returns the command lines of the three clients for one job. */
function clients(env: ContainerdEnv, args: Record<string, string[]>) {
  const ctr = [env.ctr, "--address", env.address, "-n", env.namespace];
  return [
    {
      client: "containerd-transfer",
      command: [launcher, "--address", env.address, "-n"],
      args: [env.namespace, ...args.ours!],
    },
    {
      client: "ctr --local=false",
      command: ctr,
      args: args.transfer!,
    },
    { client: "ctr (local)", command: ctr, args: args.local! },
  ];
}

async function measureImport(
  env: ContainerdEnv,
  job: string,
  archive: Archive,
): Promise<Row[]> {
  const rows: Row[] = [];
  for (const { client, command, args } of clients(env, {
    ours: ["image", "import", "-q", archive.path],
    transfer: ["images", "import", "--local=false", archive.path],
    local: ["images", "import", "--no-unpack", archive.path],
  })) {
    const result = await median(async () => {
      // Without the image and its content the daemon writes every blob anew.
      await removeImage(env, archive.name);
      return run(command[0]!, [...command.slice(1), ...args]);
    });
    const listing = await run(env.ctr, [
      ...["--address", env.address, "-n", env.namespace, "images", "ls"],
    ]);
    if (!listing.stdout.includes(archive.manifestDigest)) {
      throw new Error(`${client} did not import ${archive.name}`);
    }
    rows.push({
      job: `import ${job}`,
      client,
      result,
      archiveBytes: archive.bytes,
    });
  }
  return rows;
}

async function measureExport(
  env: ContainerdEnv,
  job: string,
  archive: Archive,
  work: string,
): Promise<Row[]> {
  const rows: Row[] = [];
  const out = join(work, "export.tar");
  for (const { client, command, args } of clients(env, {
    ours: ["image", "export", "-q", out, archive.name],
    transfer: ["images", "export", "--local=false", out, archive.name],
    local: ["images", "export", out, archive.name],
  })) {
    let size = 0;
    const result = await median(async () => {
      const exported = await run(command[0]!, [...command.slice(1), ...args]);
      size = (await stat(out)).size;
      await rm(out);
      return exported;
    });
    rows.push({ job: `export ${job}`, client, result, archiveBytes: size });
  }
  await removeImage(env, archive.name);
  return rows;
}

/** Runs `job` BENCH_RUNS times and returns the run with the median time. */
async function median(job: () => Promise<RunResult>): Promise<RunResult> {
  const results: RunResult[] = [];
  for (let i = 0; i < runs; i++) {
    results.push(await job());
  }
  results.sort((a, b) => a.ms - b.ms);
  return results[Math.floor(results.length / 2)]!;
}

async function removeImage(env: ContainerdEnv, name: string): Promise<void> {
  const ctr = [env.ctr, "--address", env.address, "-n", env.namespace];
  await run(ctr[0]!, [...ctr.slice(1), "images", "rm", "--sync", name]).catch(
    () => {},
  );
}

function printRows(env: ContainerdEnv, rows: Row[]): void {
  console.log(
    `containerd ${env.version} at ${env.address}, median of ${runs} ` +
      "run(s); ratio = seconds / seconds of ctr --local=false for the " +
      "same job",
  );
  const table = [["job", "client", "seconds", "MiB/s", "ratio", "client peak"]];
  for (const row of rows) {
    const seconds = row.result.ms / 1000;
    const reference = rows.find(
      (other) => other.job === row.job && other.client === "ctr --local=false",
    )!;
    table.push([
      row.job,
      row.client,
      seconds.toFixed(2),
      (row.archiveBytes / mib / seconds).toFixed(0),
      (row.result.ms / reference.result.ms).toFixed(2),
      `${(row.result.peakRssBytes / mib).toFixed(0)} MiB`,
    ]);
  }
  const widths = table[0]!.map((_, i) =>
    Math.max(...table.map((line) => line[i]!.length)),
  );
  for (const line of table) {
    console.log(line.map((cell, i) => cell.padEnd(widths[i]!)).join("  "));
  }
}

interface FileSpec {
  name: string;
  size: number;
}

/**
 * Writes an OCI archive whose one layer contains `files` of random bytes,
 * streaming to disk so that large images need little memory.
 */
async function buildArchive(
  work: string,
  label: string,
  files: FileSpec[],
): Promise<Archive> {
  const name = `example.test/bench-${process.pid}/${label}:1`;
  const layerPath = join(work, `${label}-layer.tar`);
  const layer = await writeHashed(layerPath, async (push) => {
    const block = randomBytes(mib);
    for (const file of files) {
      await push(tarHeader(file.name, file.size));
      for (let done = 0; done < file.size; done += mib) {
        await push(block.subarray(0, Math.min(mib, file.size - done)));
      }
      await push(Buffer.alloc((512 - (file.size % 512)) % 512));
    }
    await push(Buffer.alloc(1024));
  });
  const config = json({
    architecture: goArch(),
    os: "linux",
    config: {},
    rootfs: { type: "layers", diff_ids: [layer.digest] },
  });
  const manifest = json({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: descriptor("application/vnd.oci.image.config.v1+json", config),
    layers: [
      {
        mediaType: "application/vnd.oci.image.layer.v1.tar",
        digest: layer.digest,
        size: layer.bytes,
      },
    ],
  });
  const index = json({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [
      {
        ...descriptor("application/vnd.oci.image.manifest.v1+json", manifest),
        annotations: { "io.containerd.image.name": name },
      },
    ],
  });

  const path = join(work, `${label}.tar`);
  const archive = await writeHashed(path, async (push) => {
    const small: [string, Buffer][] = [
      ["oci-layout", json({ imageLayoutVersion: "1.0.0" })],
      ["index.json", index],
      [blobPath(sha256(config)), config],
      [blobPath(sha256(manifest)), manifest],
    ];
    for (const [entry, body] of small) {
      await push(tarHeader(entry, body.length));
      await push(body);
      await push(Buffer.alloc((512 - (body.length % 512)) % 512));
    }
    await push(tarHeader(blobPath(layer.digest), layer.bytes));
    for await (const chunk of createReadStream(layerPath)) {
      await push(chunk as Buffer);
    }
    await push(Buffer.alloc(1024));
  });
  await rm(layerPath);
  return { path, name, bytes: archive.bytes, manifestDigest: sha256(manifest) };
}

/**
 * Writes a file through `fill`, returning its size and digest. Writes are
 * gathered into chunks of about 4 MiB.
 */
async function writeHashed(
  path: string,
  fill: (push: (chunk: Buffer) => Promise<void>) => Promise<void>,
): Promise<{ bytes: number; digest: string }> {
  const out = createWriteStream(path);
  const hash = createHash("sha256");
  let bytes = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = async () => {
    const chunk = Buffer.concat(pending);
    pending = [];
    pendingBytes = 0;
    await new Promise<void>((resolve, reject) =>
      out.write(chunk, (error) => (error ? reject(error) : resolve())),
    );
  };
  await fill(async (chunk) => {
    hash.update(chunk);
    bytes += chunk.length;
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes >= 4 * mib) {
      await flush();
    }
  });
  await flush();
  await new Promise<void>((resolve, reject) =>
    out.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
  return { bytes, digest: `sha256:${hash.digest("hex")}` };
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

function descriptor(mediaType: string, bytes: Buffer) {
  return { mediaType, digest: sha256(bytes), size: bytes.length };
}

function blobPath(digest: string): string {
  return `blobs/sha256/${digest.slice("sha256:".length)}`;
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

await main();
