/**
 * Shared set-up for the gRPC transport tests: a temporary unix socket, our
 * gRPC server on it and our gRPC client connected to it, all removed when
 * the test ends.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { TestContext } from "node:test";
import { create } from "@bufbuild/protobuf";
import { type Any, AnySchema } from "@bufbuild/protobuf/wkt";
import {
  createGrpcServer,
  createGrpcTransport,
  type GrpcServer,
  type GrpcServerOptions,
  type GrpcTransportOptions,
} from "../../src/grpc/index.js";
import type { ClientTransport } from "../../src/transport/index.js";

export interface Pair {
  path: string;
  server: GrpcServer;
  transport: ClientTransport;
}

/** Returns a socket path in a fresh temporary folder. */
export async function tempSocket(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "grpc-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return join(dir, "s.sock");
}

/** Starts a server with the given services and connects a client to it. */
export async function startPair(
  t: TestContext,
  serverOptions: GrpcServerOptions,
  clientOptions: Partial<GrpcTransportOptions> = {},
): Promise<Pair> {
  const path = await tempSocket(t);
  const server = createGrpcServer(serverOptions);
  await server.listen(path);
  const transport = createGrpcTransport({ path, ...clientOptions });
  t.after(async () => {
    await transport.close();
    await server.close();
  });
  return { path, server, transport };
}

/** Returns an Any with a text payload, for echo tests. */
export function textAny(text: string): Any {
  return create(AnySchema, {
    typeUrl: "test.Text",
    value: new TextEncoder().encode(text),
  });
}

/** Returns the text payload of an Any made by {@link textAny}. */
export function anyText(any: Any): string {
  return new TextDecoder().decode(any.value);
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A promise with its resolve function, for handlers that wait. */
export function deferred<T = void>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
} {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/**
 * Resolves with the error the promise rejects with, or fails when it
 * resolves or stays pending longer than `limitMs`.
 */
export async function rejection(
  promise: Promise<unknown>,
  limitMs: number,
): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`still pending after ${limitMs} ms`)),
      limitMs,
    );
  });
  try {
    await Promise.race([promise, timeout]);
  } catch (error) {
    if (error instanceof Error && error.message.startsWith("still pending")) {
      throw error;
    }
    return error;
  } finally {
    clearTimeout(timer);
  }
  throw new Error("expected a rejection, but the promise resolved");
}

/**
 * Starts the fixture `script` with the socket `path` in a child process
 * and waits until it prints "ready".
 */
export async function spawnFixtureServer(
  script: string,
  path: string,
): Promise<ChildProcess> {
  const child = spawn(process.execPath, [script, path], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout! });
  const [line] = (await Promise.race([
    once(lines, "line"),
    once(child, "exit").then(([code]) => {
      throw new Error(`${script} exited with ${code} before it listened`);
    }),
  ])) as [string];
  assert.equal(line, "ready");
  return child;
}
