/**
 * Shared set-up for the ttrpc tests: temporary unix sockets, our server
 * and client on them, and a raw peer that reads and writes frames byte for
 * byte, so tests can check what goes over the wire.
 */
import { mkdtemp, rm } from "node:fs/promises";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { create } from "@bufbuild/protobuf";
import { type Any, AnySchema } from "@bufbuild/protobuf/wkt";
import type { ClientTransport } from "../../src/transport/index.js";
import {
  createTtrpcServer,
  createTtrpcTransport,
  FrameDecoder,
  type FrameHeader,
  messageHeaderLength,
  messageLengthMax,
  type TtrpcServer,
  type TtrpcServerOptions,
  type TtrpcTransportOptions,
} from "../../src/ttrpc/index.js";

export interface Pair {
  path: string;
  server: TtrpcServer;
  transport: ClientTransport;
}

/** Returns a socket path in a fresh temporary folder. */
export async function tempSocket(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "ttrpc-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return join(dir, "s.sock");
}

/** Starts our server with the given services and connects our client. */
export async function startPair(
  t: TestContext,
  serverOptions: TtrpcServerOptions,
  clientOptions: Partial<TtrpcTransportOptions> = {},
): Promise<Pair> {
  const path = await tempSocket(t);
  const server = createTtrpcServer(serverOptions);
  await server.listen(path);
  const transport = createTtrpcTransport({ path, ...clientOptions });
  t.after(async () => {
    await transport.close();
    await server.close();
  });
  return { path, server, transport };
}

/** A frame as a raw peer sees it. */
export interface Frame {
  header: FrameHeader;
  data: Buffer;
}

/**
 * One end of a connection that speaks frames directly: it records every
 * byte and frame it receives and writes frames as given.
 */
export class RawPeer {
  readonly socket: net.Socket;
  /** Every byte received, in order. */
  received = Buffer.alloc(0);
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  #waiters: (() => void)[] = [];

  constructor(socket: net.Socket) {
    this.socket = socket;
    const decoder = new FrameDecoder(messageLengthMax, {
      onFrame: (header, data) => {
        this.frames.push({ header, data: Buffer.from(data) });
        this.#wake();
      },
      onOversized: () => {},
    });
    socket.on("data", (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      decoder.push(chunk);
    });
    socket.on("error", () => {});
    this.closed = new Promise((resolve) => {
      socket.once("close", () => {
        this.#wake();
        resolve();
      });
    });
  }

  /** Connects to a server at `path`; destroyed when the test ends. */
  static async connect(t: TestContext, path: string): Promise<RawPeer> {
    const socket = net.connect({ path });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const peer = new RawPeer(socket);
    t.after(() => socket.destroy());
    return peer;
  }

  /** Writes one frame. */
  send(streamId: number, type: number, flags: number, data?: Uint8Array): void {
    this.socket.write(rawFrame(streamId, type, flags, data));
  }

  /** Resolves with the `index`th frame received, counting from 0. */
  async frame(index: number, limitMs = 2000): Promise<Frame> {
    const deadline = Date.now() + limitMs;
    while (this.frames.length <= index) {
      if (this.socket.destroyed) {
        throw new Error(`connection closed after ${this.frames.length} frames`);
      }
      if (Date.now() > deadline) {
        throw new Error(
          `only ${this.frames.length} frames within ${limitMs} ms, ` +
            `expected frame ${index}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.frames[index]!;
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) {
      waiter();
    }
  }
}

/**
 * Listens on `path` with a plain socket server; each accepted connection
 * becomes a RawPeer passed to `onPeer`. Closed when the test ends.
 */
export async function rawServer(
  t: TestContext,
  path: string,
  onPeer: (peer: RawPeer) => void,
): Promise<void> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    onPeer(new RawPeer(socket));
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.after(async () => {
    for (const socket of sockets) {
      socket.destroy();
    }
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
}

/** Returns the bytes of one frame: header, then data. */
export function rawFrame(
  streamId: number,
  type: number,
  flags: number,
  data: Uint8Array = new Uint8Array(0),
): Buffer {
  const frame = Buffer.alloc(messageHeaderLength + data.length);
  frame.writeUInt32BE(data.length, 0);
  frame.writeUInt32BE(streamId, 4);
  frame[8] = type;
  frame[9] = flags;
  frame.set(data, messageHeaderLength);
  return frame;
}

/** Parses hex text such as "00 0a ff" into bytes. */
export function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ""), "hex");
}

/** An Any with a text payload, for echo tests. */
export function textAny(text: string): Any {
  return create(AnySchema, {
    typeUrl: "test.Text",
    value: new TextEncoder().encode(text),
  });
}

/** The text payload of an Any made by {@link textAny}. */
export function anyText(any: Any): string {
  return new TextDecoder().decode(any.value);
}

/** Yields one Any per text. */
export async function* texts(...values: string[]): AsyncIterable<Any> {
  for (const value of values) {
    yield textAny(value);
  }
}

/** Reads a stream of text Anys to the end. */
export async function collect(messages: AsyncIterable<Any>): Promise<string[]> {
  const received: string[] = [];
  for await (const message of messages) {
    received.push(anyText(message));
  }
  return received;
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
  limitMs = 2000,
): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"pending">((resolve) => {
    timer = setTimeout(() => resolve("pending"), limitMs);
  });
  try {
    const outcome = await Promise.race([
      promise.then(() => "resolved" as const),
      timeout,
    ]);
    throw new Error(
      outcome === "pending"
        ? `still pending after ${limitMs} ms, expected a rejection`
        : "expected a rejection, but the promise resolved",
    );
  } catch (error) {
    if (
      error instanceof Error &&
      /^(still pending|expected a rejection)/.test(error.message)
    ) {
      throw error;
    }
    return error;
  } finally {
    clearTimeout(timer);
  }
}
