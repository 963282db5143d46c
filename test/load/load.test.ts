/**
 * A reduced run of `npm run load` against an in-process server: many
 * concurrent copy in, copy out and echo transfers on one and on several
 * connections. The test checks correctness only (checksums, every
 * transfer settled, the stream registry drained, no listener warnings),
 * never timing.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import { describe, type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  directions,
  type LoadPhase,
  payloadSizes,
  runPhase,
} from "../../bench/load-workload.js";
import {
  connect,
  copyArchiveFromContainer,
  copyArchiveIntoContainer,
} from "../../src/client/index.js";
import { ContainerPath, WriteStream } from "../../src/transfer/index.js";
import { protocols, startEndpoint } from "../helpers/endpoint.js";

const cliScript = fileURLToPath(new URL("../../cli.js", import.meta.url));

const phases: LoadPhase[] = [
  { name: "one-connection", connections: 1, transfersPerConnection: 30 },
  { name: "four-connections", connections: 4, transfersPerConnection: 6 },
];

/** Resolves once `check` returns true, or rejects after `ms`. */
async function waitUntil(check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error(`condition not met within ${ms} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

for (const protocol of protocols) {
  describe(`load over ${protocol}`, () => {
    for (const phase of phases) {
      test(`${phase.name} transfers verify`, async (t) => {
        const warnings: string[] = [];
        const onWarning = (warning: Error) => {
          warnings.push(`${warning.name}: ${warning.message}`);
        };
        process.on("warning", onWarning);
        t.after(() => process.off("warning", onWarning));
        const endpoint = await startEndpoint(t, protocol);

        const result = await runPhase(phase, {
          address: endpoint.socket,
          protocol,
          root: endpoint.root,
          sizes: payloadSizes(256 * 1024),
          transferTimeoutMs: 30_000,
        });

        const expectedCount = phase.connections * phase.transfersPerConnection;
        assert.equal(result.outcomes.length, expectedCount);
        for (const outcome of result.outcomes) {
          assert.equal(
            outcome.failure,
            undefined,
            `${outcome.id} (${outcome.direction}, ${outcome.bytes} B)`,
          );
        }
        for (const direction of directions) {
          assert.ok(
            result.outcomes.some((outcome) => outcome.direction === direction),
            `no ${direction} transfer ran`,
          );
        }
        await waitUntil(() => endpoint.server.registry.size === 0, 5000);
        assert.equal(endpoint.server.registry.size, 0);
        assert.deepEqual(
          warnings.filter((warning) => warning.includes("MaxListeners")),
          [],
        );
      });
    }
  });
}

/**
 * Starts `serve` over gRPC in its own process, as in use (in this
 * process its SETTINGS would reach the client before the first request),
 * with container c1 holding a 2 MiB file /f and an empty container c2.
 */
async function startServeProcess(t: TestContext) {
  const dir = await mkdtemp(join(tmpdir(), "ct-load-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const rootfs = join(dir, "root", "c1", "rootfs");
  await mkdir(rootfs, { recursive: true });
  await mkdir(join(dir, "root", "c2", "rootfs"), { recursive: true });
  await writeFile(join(rootfs, "f"), Buffer.alloc(2 * 1024 * 1024, 7));
  const socket = join(dir, "grpc.sock");
  const server = spawn(
    process.execPath,
    [cliScript, "serve", "--root", join(dir, "root"), "--grpc", socket],
    { stdio: "ignore" },
  );
  t.after(() => server.kill());
  await waitUntil(() => existsSync(socket), 10_000);
  const client = connect({ address: socket, protocol: "grpc" });
  t.after(() => client.close());
  return { client, dir };
}

test("600 transfers on one gRPC connection", async (t) => {
  const { client } = await startServeProcess(t);

  // Each transfer has its Transfer call, a data stream and a progress
  // stream open at once: 1 800 streams in all, beyond the server's 1024
  // per connection. Each archive is counted, not kept.
  const sizes: number[] = [];
  const transfers = Array.from({ length: 600 }, async (_, i) => {
    let bytes = 0;
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        bytes += chunk.length;
        callback();
      },
    });
    await client.transfer(
      new ContainerPath({ containerId: "c1", path: "/f" }),
      new WriteStream(sink),
      { onProgress: () => {} },
    );
    sizes[i] = bytes;
  });
  const results = await Promise.allSettled(transfers);

  const failures = results.flatMap((result) =>
    result.status === "rejected" ? [String(result.reason)] : [],
  );
  assert.deepEqual(failures.slice(0, 3), []);
  // A 512-byte header, the body and the two end blocks.
  assert.deepEqual(new Set(sizes), new Set([512 + 2 * 1024 * 1024 + 1024]));
});

test("piped copies share one gRPC connection", async (t) => {
  const { client } = await startServeProcess(t);

  // Every copy out starts first and waits for its copy in to read: a
  // limit that let the copies out take every place would stop all.
  // A stopped pair fails at the deadline instead of hanging the test.
  const signal = AbortSignal.timeout(60_000);
  const pipes = Array.from({ length: 200 }, () => new PassThrough());
  const outs = pipes.map((pipe) =>
    copyArchiveFromContainer(client, { containerId: "c1", path: "/f" }, pipe, {
      signal,
    }),
  );
  const ins = pipes.map((pipe) =>
    copyArchiveIntoContainer(
      client,
      pipe,
      { containerId: "c2", path: "/" },
      { signal },
    ),
  );
  const results = await Promise.allSettled([...outs, ...ins]);

  const failures = results.flatMap((result) =>
    result.status === "rejected" ? [String(result.reason)] : [],
  );
  assert.deepEqual(failures.slice(0, 3), []);
});
