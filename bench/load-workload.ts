/**
 * A load workload shared by `npm run load` and test/load: many concurrent
 * transfers over one or several connections, in three directions, each
 * checked by SHA-256.
 *
 * - copy in: a one-file tar archive from a ReadStream is extracted under
 *   a container path, and the file on disk is hashed.
 * - copy out: a file in a container is sent as a tar archive to a
 *   WriteStream, and the file's body is hashed as it is parsed.
 * - echo: bytes of another media type go from a ReadStream back to a
 *   WriteStream through the server's echo transferrer.
 *
 * The caller's process must see the server's root folder, because copy
 * in is checked and copy out is prepared there.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Header, Parser, type ReadEntry } from "tar";
import { type Client, connect } from "../src/client/index.js";
import {
  ContainerPath,
  ReadStream,
  WriteStream,
} from "../src/transfer/index.js";
import type { Protocol } from "../src/transport/index.js";

export const directions = ["copy-in", "copy-out", "echo"] as const;
export type Direction = (typeof directions)[number];

export interface LoadPhase {
  name: string;
  connections: number;
  /** Concurrent transfers on each connection. */
  transfersPerConnection: number;
}

export interface LoadOptions {
  address: string;
  protocol: Protocol;
  /** The server's `--root` folder: containers are `<root>/<id>/rootfs`. */
  root: string;
  /** Payload sizes in bytes, used in turn by the transfers of a phase. */
  sizes: number[];
  /**
   * Time limit of each transfer in ms, default 120 000. A transfer still
   * running then is aborted and fails.
   */
  transferTimeoutMs?: number;
}

export interface TransferOutcome {
  id: string;
  direction: Direction;
  bytes: number;
  /** Undefined when the transfer succeeded and its checksum matched. */
  failure?: string;
}

export interface PhaseResult {
  phase: LoadPhase;
  outcomes: TransferOutcome[];
  /** Payload bytes of the transfers that succeeded. */
  bytes: number;
  ms: number;
}

const chunkBytes = 64 * 1024;
const fileName = "payload.bin";
const echoMediaType = "application/octet-stream";

/**
 * Runs every transfer of `phase` at once and resolves when all of them
 * settled. A failed transfer is reported in its outcome. Only a failure to
 * prepare the containers rejects.
 */
export async function runPhase(
  phase: LoadPhase,
  options: LoadOptions,
): Promise<PhaseResult> {
  const clients: Client[] = [];
  for (let i = 0; i < phase.connections; i++) {
    clients.push(
      connect({ address: options.address, protocol: options.protocol }),
    );
  }

  const jobs: Job[] = [];
  for (let c = 0; c < phase.connections; c++) {
    for (let t = 0; t < phase.transfersPerConnection; t++) {
      const index = jobs.length;
      jobs.push({
        id: `${phase.name}-${c}-${t}`,
        client: clients[c]!,
        direction: directions[index % directions.length]!,
        bytes: options.sizes[index % options.sizes.length]!,
      });
    }
  }
  // Copy out reads files that must exist before the clock starts.
  const prepared = await Promise.all(
    jobs.map((job) => prepare(job, options.root)),
  );

  const started = performance.now();
  try {
    const outcomes = await Promise.all(
      jobs.map((job, i) => runJob(job, prepared[i], options)),
    );
    const ms = performance.now() - started;
    const bytes = outcomes
      .filter((outcome) => outcome.failure === undefined)
      .reduce((sum, outcome) => sum + outcome.bytes, 0);
    return { phase, outcomes, bytes, ms };
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
}

interface Job {
  id: string;
  client: Client;
  direction: Direction;
  bytes: number;
}

/**
 * Creates the job's container and, for copy out, its file. Returns the
 * file's SHA-256, or undefined for the other directions.
 */
async function prepare(job: Job, root: string): Promise<string | undefined> {
  const rootfs = join(root, job.id, "rootfs");
  await mkdir(rootfs, { recursive: true });
  if (job.direction !== "copy-out") {
    return undefined;
  }
  const payload = randomPayload(job.bytes);
  await pipeline(
    Readable.from(payload.chunks()),
    createWriteStream(join(rootfs, fileName)),
  );
  return payload.hash();
}

async function runJob(
  job: Job,
  copyOutHash: string | undefined,
  options: LoadOptions,
): Promise<TransferOutcome> {
  const outcome: TransferOutcome = {
    id: job.id,
    direction: job.direction,
    bytes: job.bytes,
  };
  const signal = AbortSignal.timeout(options.transferTimeoutMs ?? 120_000);
  try {
    switch (job.direction) {
      case "copy-in":
        await copyIn(job, options.root, signal);
        break;
      case "copy-out":
        await copyOut(job, copyOutHash!, signal);
        break;
      case "echo":
        await echo(job, signal);
        break;
    }
  } catch (error) {
    outcome.failure = error instanceof Error ? error.message : String(error);
  }
  return outcome;
}

async function copyIn(job: Job, root: string, signal: AbortSignal) {
  const payload = randomPayload(job.bytes);
  await job.client.transfer(
    new ReadStream(Readable.from(tarOfOneFile(payload.chunks(), job.bytes))),
    new ContainerPath({ containerId: job.id, path: "/" }),
    { signal },
  );
  const written = await hashFile(join(root, job.id, "rootfs", fileName));
  if (written !== payload.hash()) {
    throw new Error(`copy in of ${job.bytes} bytes wrote a different file`);
  }
}

async function copyOut(job: Job, expectedHash: string, signal: AbortSignal) {
  const archive = tarBodyHasher(fileName);
  await job.client.transfer(
    new ContainerPath({ containerId: job.id, path: `/${fileName}` }),
    new WriteStream(archive.sink),
    { signal },
  );
  const received = await archive.bodyHash;
  if (received !== expectedHash) {
    throw new Error(`copy out of ${job.bytes} bytes returned a different body`);
  }
}

async function echo(job: Job, signal: AbortSignal) {
  const payload = randomPayload(job.bytes);
  const digest = createHash("sha256");
  let received = 0;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      digest.update(chunk);
      received += chunk.length;
      callback();
    },
  });
  await job.client.transfer(
    new ReadStream(Readable.from(payload.chunks()), echoMediaType),
    new WriteStream(sink, echoMediaType),
    { signal },
  );
  if (received !== job.bytes || digest.digest("hex") !== payload.hash()) {
    throw new Error(
      `echo of ${job.bytes} bytes returned ${received} bytes that differ`,
    );
  }
}

/**
 * Returns random bytes that are generated chunk by chunk as they are read
 * and hashed on the way, so that a large payload is never held in memory.
 */
function randomPayload(bytes: number): {
  chunks(): Generator<Buffer>;
  hash(): string;
} {
  const digest = createHash("sha256");
  let hash: string | undefined;
  return {
    *chunks() {
      for (let sent = 0; sent < bytes; sent += chunkBytes) {
        const chunk = randomBytes(Math.min(chunkBytes, bytes - sent));
        digest.update(chunk);
        yield chunk;
      }
      hash = digest.digest("hex");
    },
    hash() {
      hash ??= digest.digest("hex");
      return hash;
    },
  };
}

/** Wraps a body of `bytes` bytes in a USTAR archive with one file. */
function* tarOfOneFile(
  body: Iterable<Buffer>,
  bytes: number,
): Generator<Buffer> {
  const header = new Header({
    path: fileName,
    type: "File",
    mode: 0o644,
    size: bytes,
    mtime: new Date("2024-01-01T00:00:00Z"),
  });
  header.encode();
  yield header.block!;
  yield* body;
  const padding = (512 - (bytes % 512)) % 512;
  // The body padding and the two zero blocks of the end-of-archive marker.
  yield Buffer.alloc(padding + 1024);
}

/**
 * Returns a sink that parses a tar archive and hashes the body of the
 * entry named `name`. `bodyHash` rejects when the archive ends without it.
 */
function tarBodyHasher(name: string): {
  sink: Writable;
  bodyHash: Promise<string>;
} {
  const parser = new Parser();
  let resolveHash!: (hash: string) => void;
  let rejectHash!: (error: Error) => void;
  const bodyHash = new Promise<string>((resolve, reject) => {
    resolveHash = resolve;
    rejectHash = reject;
  });
  bodyHash.catch(() => {});

  parser.on("entry", (entry: ReadEntry) => {
    if (entry.path !== name) {
      entry.resume();
      return;
    }
    const digest = createHash("sha256");
    entry.on("data", (chunk: Buffer) => digest.update(chunk));
    entry.on("end", () => resolveHash(digest.digest("hex")));
  });
  parser.on("error", (error: Error) => rejectHash(error));
  parser.on("close", () =>
    rejectHash(new Error(`archive ended without ${name}`)),
  );

  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (parser.write(chunk)) {
        callback();
      } else {
        parser.once("drain", () => callback());
      }
    },
    final(callback) {
      parser.end();
      callback();
    },
  });
  return { sink, bodyHash };
}

function hashFile(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const digest = createHash("sha256");
    createReadStream(path)
      .on("data", (chunk) => digest.update(chunk))
      .on("end", () => resolve(digest.digest("hex")))
      .on("error", reject);
  });
}

/**
 * Returns the payload sizes a phase cycles through: empty, tiny, around
 * one 64 KiB window and one tar block, and larger up to `maxBytes`.
 */
export function payloadSizes(maxBytes: number): number[] {
  const sizes = [
    0,
    1,
    511,
    513,
    32 * 1024,
    64 * 1024 - 1,
    64 * 1024 + 1,
    300 * 1024,
    1024 * 1024,
    maxBytes / 2,
    maxBytes,
  ];
  return sizes.filter((size) => size <= maxBytes).map(Math.floor);
}
