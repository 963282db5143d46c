/**
 * An in-process transfer server on a temporary unix socket with a client
 * connected to it, torn down when the test ends.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { type Client, connect } from "../../src/client/index.js";
import {
  TransferServer,
  type TransferServerOptions,
} from "../../src/server/index.js";
import type { Protocol } from "../../src/transport/index.js";

export interface Endpoint {
  client: Client;
  server: TransferServer;
  socket: string;
  /** Temporary folder, with the containers under `root`. */
  dir: string;
  root: string;
  /** Creates container `id` and returns its rootfs path. */
  addContainer(id: string): Promise<string>;
}

export const protocols: Protocol[] = ["ttrpc", "grpc"];

export async function startEndpoint(
  t: TestContext,
  protocol: Protocol,
  options: TransferServerOptions = {},
): Promise<Endpoint> {
  const dir = await mkdtemp(join(tmpdir(), "ct-test-"));
  const root = join(dir, "root");
  await mkdir(root);
  const socket = join(dir, `${protocol}.sock`);
  const server = new TransferServer({ root, ...options });
  await server.listen({ [protocol]: socket });
  const client = connect({ address: socket, protocol });
  t.after(async () => {
    await client.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  return {
    client,
    server,
    socket,
    dir,
    root,
    async addContainer(id) {
      const rootfs = join(root, id, "rootfs");
      await mkdir(rootfs, { recursive: true });
      return rootfs;
    },
  };
}

/** A small seeded generator (mulberry32), so random cases repeat. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Deterministic bytes: a different pattern for every size. */
export function patternBytes(size: number, seed = size): Buffer {
  const random = seededRandom(seed);
  const bytes = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) {
    bytes[i] = Math.floor(random() * 256);
  }
  return bytes;
}
