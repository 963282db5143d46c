/**
 * The byte-stream protocol alone: bytes from memory go through
 * `sendBytes` in this process and `receiveBytes` in a child process into a
 * sink that discards them, over ttrpc or gRPC on a unix socket. The
 * reference moves the same bytes through a plain unix socket between two
 * Node.js processes.
 */
import { type ChildProcess, fork } from "node:child_process";
import { rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { performance } from "node:perf_hooks";
import { Writable } from "node:stream";
import { createServiceImplSpec } from "@connectrpc/connect";
import { Streaming } from "../src/gen/containerd/services/streaming/v1/streaming_pb.js";
import { createGrpcServer, createGrpcTransport } from "../src/grpc/index.js";
import {
  newStreamId,
  openStream,
  receiveBytes,
  StreamRegistry,
  sendBytes,
} from "../src/streaming/index.js";
import type { ClientTransport } from "../src/transport/index.js";
import { createTtrpcServer, createTtrpcTransport } from "../src/ttrpc/index.js";

export type BenchProtocol = "pipe" | "ttrpc" | "grpc";

export interface ProtocolRun {
  protocol: BenchProtocol;
  /** Bytes per transfer. */
  bytes: number;
  /** Transfers that run at the same time, each on its own stream. */
  concurrency: number;
  /** Window the receiver grants; unset means the receiver's default. */
  windowBytes?: number;
}

const namespace = "bench";
const headers = {
  "containerd-namespace": namespace,
  "containerd-namespace-ttrpc": namespace,
};
const block = Buffer.alloc(1024 * 1024, 0x5a);

/** Runs the transfers of `run` and returns the ms from first byte to last. */
export async function measureProtocol(
  run: ProtocolRun,
  socket: string,
): Promise<number> {
  rmSync(socket, { force: true });
  const child = fork(new URL(import.meta.url).pathname, [
    "--receiver",
    run.protocol,
    socket,
    String(run.windowBytes ?? 0),
  ]);
  try {
    await nextMessage(child);
    if (run.protocol === "pipe") {
      return await sendPipe(run, socket, child);
    }
    return await sendStreams(run, socket, child);
  } finally {
    child.kill();
    rmSync(socket, { force: true });
  }
}

async function sendPipe(
  run: ProtocolRun,
  socket: string,
  child: ChildProcess,
): Promise<number> {
  const started = performance.now();
  const received = collect(child, run.concurrency);
  await Promise.all(
    Array.from({ length: run.concurrency }, async () => {
      const connection = connect(socket);
      for (const chunk of blocks(run.bytes)) {
        if (!connection.write(chunk)) {
          await new Promise((resolve) => connection.once("drain", resolve));
        }
      }
      await new Promise<void>((resolve) => connection.end(resolve));
    }),
  );
  await checkReceived(await received, run.bytes);
  return performance.now() - started;
}

async function sendStreams(
  run: ProtocolRun,
  socket: string,
  child: ChildProcess,
): Promise<number> {
  const transport: ClientTransport =
    run.protocol === "ttrpc"
      ? createTtrpcTransport({ path: socket })
      : createGrpcTransport({ path: socket });
  try {
    const streams = await Promise.all(
      Array.from({ length: run.concurrency }, () =>
        openStream(transport, newStreamId("bench"), { headers }),
      ),
    );
    const started = performance.now();
    const received = collect(child, run.concurrency);
    child.send({ ids: streams.map((stream) => stream.id) });
    await Promise.all(
      streams.map((stream) => sendBytes(stream, blocks(run.bytes))),
    );
    await checkReceived(await received, run.bytes);
    const ms = performance.now() - started;
    for (const stream of streams) {
      stream.abort();
    }
    return ms;
  } finally {
    await transport.close();
  }
}

function* blocks(bytes: number): Generator<Uint8Array> {
  for (let sent = 0; sent < bytes; sent += block.length) {
    yield block.subarray(0, Math.min(block.length, bytes - sent));
  }
}

/**
 * Collects the byte counts the child reports, one per transfer. One
 * listener takes them all, because several can arrive in one tick.
 */
function collect(child: ChildProcess, count: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const totals: number[] = [];
    const onExit = (code: number | null) =>
      reject(new Error(`receiver exited ${code}`));
    const onMessage = (message: { received?: number }) => {
      if (typeof message.received !== "number") {
        reject(new Error(`unexpected message from the receiver: ${message}`));
        return;
      }
      totals.push(message.received);
      if (totals.length === count) {
        child.off("message", onMessage);
        child.off("exit", onExit);
        resolve(totals);
      }
    };
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

async function checkReceived(totals: number[], bytes: number): Promise<void> {
  for (const total of totals) {
    if (total !== bytes) {
      throw new Error(`receiver got ${total} bytes, expected ${bytes}`);
    }
  }
}

function nextMessage(child: ChildProcess): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) =>
      reject(new Error(`receiver exited ${code}`));
    child.once("exit", onExit);
    child.once("message", (message) => {
      child.off("exit", onExit);
      resolve(message);
    });
  });
}

function discard(): Writable {
  return new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
}

async function receiver(
  protocol: BenchProtocol,
  socket: string,
  windowBytes: number,
): Promise<void> {
  if (protocol === "pipe") {
    const server = createServer((connection) => {
      let received = 0;
      connection.on("data", (chunk: Buffer) => {
        received += chunk.length;
      });
      connection.on("end", () => process.send?.({ received }));
    });
    server.listen(socket, () => process.send?.("ready"));
    return;
  }
  const registry = new StreamRegistry();
  const services = [
    createServiceImplSpec<typeof Streaming>(Streaming, registry.service()),
  ];
  const server =
    protocol === "ttrpc"
      ? createTtrpcServer({ services })
      : createGrpcServer({ services });
  await server.listen(socket);
  process.on("message", (message: { ids: string[] }) => {
    for (const id of message.ids) {
      const stream = registry.claim(namespace, id);
      // The sink keeps no chunk, so received frames may be reused, as the
      // server's copy in reuses them.
      receiveBytes(stream, discard(), {
        windowBytes: windowBytes > 0 ? windowBytes : undefined,
        reuseChunks: true,
      }).then(
        (received) => process.send?.({ received }),
        (error) => {
          console.error(error);
          process.exit(1);
        },
      );
    }
  });
  process.send?.("ready");
}

if (process.argv[2] === "--receiver") {
  // Exiting on SIGTERM, rather than being killed by it, lets
  // `node --cpu-prof` write the receiver's profile.
  process.on("SIGTERM", () => process.exit(0));
  const [protocol, socket, windowBytes] = process.argv.slice(3) as [
    BenchProtocol,
    string,
    string,
  ];
  await receiver(protocol, socket, Number(windowBytes));
}
