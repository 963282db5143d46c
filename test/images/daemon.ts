/**
 * Helpers of the image tests: a client for the test daemon, `ctr` runs
 * against it, and a reader for the archives the tests compare.
 */
import { execFile } from "node:child_process";
import { Writable } from "node:stream";
import type { TestContext } from "node:test";
import { promisify } from "node:util";
import { type Client, connect, deleteImage } from "../../src/client/index.js";
import {
  type ContainerdEnv,
  requireContainerd,
} from "../helpers/containerd.js";

const run = promisify(execFile);

export interface Daemon {
  env: ContainerdEnv;
  client: Client;
  /** Names unique to this process, so runs and files do not collide. */
  name(path: string): string;
  /** Deletes these image names when the test ends. */
  cleanUp(...names: string[]): void;
}

/** Connects to the test daemon, or skips the test when there is none. */
export function openDaemon(t: TestContext): Daemon | undefined {
  const env = requireContainerd(t);
  if (!env) {
    return undefined;
  }
  const client = connect({ address: env.address, namespace: env.namespace });
  const names = new Set<string>();
  t.after(async () => {
    for (const name of names) {
      await deleteImage(client, name).catch(() => {});
    }
    await client.close();
  });
  return {
    env,
    client,
    name: (path) => `example.test/images-${process.pid}/${path}`,
    cleanUp: (...more) => {
      for (const name of more) {
        names.add(name);
      }
    },
  };
}

/** Runs the daemon's `ctr` with the daemon's address and namespace. */
export async function ctr(env: ContainerdEnv, ...args: string[]) {
  const { stdout } = await run(
    env.ctr,
    ["--address", env.address, "--namespace", env.namespace, ...args],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  return stdout;
}

/** Returns the digest that `ctr images ls` shows for `name`, if listed. */
export async function ctrImageDigest(
  env: ContainerdEnv,
  name: string,
): Promise<string | undefined> {
  const listing = await ctr(env, "images", "ls");
  for (const line of listing.split("\n").slice(1)) {
    const [ref, , digest] = line.trim().split(/\s+/);
    if (ref === name) {
      return digest;
    }
  }
  return undefined;
}

/** Returns a sink that keeps every byte in memory, and its contents. */
export function memorySink(): { sink: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk);
      done();
    },
  });
  return { sink, bytes: () => Buffer.concat(chunks) };
}

/**
 * Returns the regular files of a tar archive by name. It reads ustar
 * headers only, which is what containerd's exporter and archives.ts write.
 */
export function tarFiles(archive: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (let offset = 0; offset + 512 <= archive.length; ) {
    const header = archive.subarray(offset, offset + 512);
    if (header.every((byte) => byte === 0)) {
      break;
    }
    const name = field(header, 0, 100);
    const prefix = field(header, 345, 155);
    const size = Number.parseInt(field(header, 124, 12).trim() || "0", 8);
    const type = String.fromCharCode(header[156] ?? 0);
    const body = archive.subarray(offset + 512, offset + 512 + size);
    if (type === "0" || type === "\0") {
      files.set(prefix ? `${prefix}/${name}` : name, body);
    }
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

function field(header: Buffer, start: number, length: number): string {
  const raw = header.subarray(start, start + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? length : end).toString("utf8");
}
