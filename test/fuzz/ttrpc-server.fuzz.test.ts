/**
 * Fuzzes a TransferServer's ttrpc socket with frame sequences from a raw
 * peer: Streaming and Transfer requests, Data frames with any flags and
 * payload, frames of unknown types and plain garbage, and then a close.
 * After each run the stream registry must drain, and the server must
 * still complete an ordinary transfer for a well-behaved client.
 */
import assert from "node:assert/strict";
import * as net from "node:net";
import { Readable, Writable } from "node:stream";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { packAny } from "../../src/any/index.js";
import { StreamInitSchema } from "../../src/gen/containerd/services/streaming/v1/streaming_pb.js";
import { TransferRequestSchema } from "../../src/gen/containerd/services/transfer/v1/transfer_pb.js";
import {
  ReadStreamSchema,
  WriteStreamSchema,
} from "../../src/gen/containerd/types/transfer/streaming_pb.js";
import { RequestSchema } from "../../src/gen/ttrpc/request_pb.js";
import { packData, packWindowUpdate } from "../../src/streaming/index.js";
import { ReadStream, WriteStream } from "../../src/transfer/index.js";
import { MessageType } from "../../src/ttrpc/index.js";
import { startEndpoint } from "../helpers/endpoint.js";
import { rawFrame } from "../ttrpc/harness.js";
import { fuzzParameters, withinMs } from "./settings.js";

const streamNames = ["s1", "s2", "s3", ""];

function request(
  service: string,
  method: string,
  payload: Uint8Array,
  timeoutNano = 0n,
): Uint8Array {
  return toBinary(
    RequestSchema,
    create(RequestSchema, { service, method, payload, timeoutNano }),
  );
}

const streamInit = (id: string) =>
  toBinary(AnySchema, packAny(StreamInitSchema, { id }));

/** Encoded Any messages a peer might put in a stream's Data frames. */
const streamMessage: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.constantFrom(...streamNames).map(streamInit),
  fc
    .uint8Array({ maxLength: 300 })
    .map((payload) => toBinary(AnySchema, packData(payload))),
  fc
    .integer({ min: 1, max: 2 ** 31 - 1 })
    .map((bytes) => toBinary(AnySchema, packWindowUpdate(bytes))),
  fc.uint8Array({ maxLength: 40 }),
);

const transferPayload: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc
    .record({
      source: fc.constantFrom(...streamNames),
      destination: fc.constantFrom(...streamNames),
      mediaType: fc.constantFrom("application/x-tar", "text/plain"),
    })
    .map(({ source, destination, mediaType }) =>
      toBinary(
        TransferRequestSchema,
        create(TransferRequestSchema, {
          source: packAny(ReadStreamSchema, { stream: source, mediaType }),
          destination: packAny(WriteStreamSchema, {
            stream: destination,
            mediaType,
          }),
        }),
      ),
    ),
  fc.uint8Array({ maxLength: 60 }),
);

/**
 * One step of the raw peer. Requests take the next odd stream id, as a
 * client must, unless `badId` is set, and Data frames go to an id that
 * was opened before, so that most steps reach a call.
 */
type Op =
  | {
      kind: "stream";
      flags: number;
      /** "init" is a valid StreamInit naming the next stream, s1, s2 and on. */
      inline: "init" | Uint8Array | undefined;
      badId: boolean;
    }
  | { kind: "missing"; flags: number }
  | { kind: "transfer"; flags: number; payload: Uint8Array; timeout: bigint }
  | { kind: "data"; target: number; flags: number; message: Uint8Array }
  | {
      kind: "frame";
      streamId: number;
      type: number;
      flags: number;
      data: Uint8Array;
    }
  | { kind: "garbage"; bytes: Uint8Array };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("stream" as const),
      flags: fc.constantFrom(2, 2, 2, 0, 1, 3, 6, 0xff),
      inline: fc.oneof(
        { weight: 4, arbitrary: fc.constant("init" as const) },
        { weight: 1, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: streamMessage },
      ),
      badId: fc.constantFrom(false, false, false, false, true),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("missing" as const),
      flags: fc.constantFrom(0, 2),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("transfer" as const),
      flags: fc.constantFrom(0, 0, 2, 3),
      payload: transferPayload,
      timeout: fc.constantFrom(0n, 0n, 1n, 5_000_000n, -5n),
    }),
  },
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant("data" as const),
      target: fc.nat({ max: 20 }),
      flags: fc.constantFrom(0, 0, 0, 1, 4, 5, 2, 0xff),
      message: streamMessage,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("frame" as const),
      streamId: fc.constantFrom(0, 1, 2, 7, 0xffff_ffff),
      type: fc.integer({ min: 0, max: 255 }),
      flags: fc.integer({ min: 0, max: 255 }),
      data: fc.uint8Array({ maxLength: 50 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("garbage" as const),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 30 }),
    }),
  },
);

/** Encodes the steps into frames, assigning stream ids in order. */
function encodeOps(ops: Op[]): Buffer[] {
  const opened: number[] = [];
  let nextId = 1;
  let streamCount = 0;
  const takeId = () => {
    const id = nextId;
    nextId += 2;
    opened.push(id);
    return id;
  };
  const encodeOp = (step: Op): Buffer => {
    switch (step.kind) {
      case "stream":
        return rawFrame(
          step.badId ? 2 : takeId(),
          MessageType.Request,
          step.flags,
          request(
            "containerd.services.streaming.v1.Streaming",
            "Stream",
            step.inline === "init"
              ? streamInit(`s${++streamCount}`)
              : (step.inline ?? new Uint8Array(0)),
          ),
        );
      case "missing":
        return rawFrame(
          takeId(),
          MessageType.Request,
          step.flags,
          request(
            "containerd.services.streaming.v1.Nothing",
            "Stream",
            new Uint8Array(0),
          ),
        );
      case "transfer":
        return rawFrame(
          takeId(),
          MessageType.Request,
          step.flags,
          request(
            "containerd.services.transfer.v1.Transfer",
            "Transfer",
            step.payload,
            step.timeout,
          ),
        );
      case "data":
        return rawFrame(
          opened.length > 0 ? opened[step.target % opened.length]! : 1,
          MessageType.Data,
          step.flags,
          step.message,
        );
      case "frame":
        return rawFrame(step.streamId, step.type, step.flags, step.data);
      case "garbage":
        return Buffer.from(step.bytes);
    }
  };
  return ops.map(encodeOp);
}

const session = fc.record({
  frames: fc.array(op, { maxLength: 16 }).map(encodeOps),
  /** Whether to pause 2 ms between frames, so that most arrive alone. */
  paced: fc.boolean(),
  close: fc.constantFrom("destroy", "end", "linger"),
});

async function playRaw(
  path: string,
  frames: Buffer[],
  paced: boolean,
  close: string,
): Promise<void> {
  const socket = net.connect({ path });
  socket.on("error", () => {});
  socket.on("data", () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  for (const bytes of frames) {
    socket.write(bytes);
    if (paced) {
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }
  if (close === "end") {
    socket.end();
  }
  await new Promise((resolve) =>
    setTimeout(resolve, close === "linger" ? 30 : 5),
  );
  socket.destroy();
}

/** Sends 10 KiB through the echo transferrer and checks they come back. */
async function echoCheck(
  client: Awaited<ReturnType<typeof startEndpoint>>["client"],
): Promise<void> {
  const payload = Buffer.alloc(10 * 1024, 0x5a);
  const received: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      received.push(chunk);
      callback();
    },
  });
  await client.transfer(
    new ReadStream(Readable.from([payload]), "text/plain"),
    new WriteStream(sink, "text/plain"),
  );
  assert.deepEqual(Buffer.concat(received), payload);
}

test("ttrpc server survives raw frames", async (t) => {
  const endpoint = await startEndpoint(t, "ttrpc");
  await fc.assert(
    fc.asyncProperty(session, async ({ frames, paced, close }) => {
      await withinMs(
        playRaw(endpoint.socket, frames, paced, close),
        5000,
        "raw peer",
      );
      const deadline = Date.now() + 3000;
      while (endpoint.server.registry.size > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.equal(endpoint.server.registry.size, 0, "registry not drained");
      await withinMs(echoCheck(endpoint.client), 5000, "echo transfer");
    }),
    fuzzParameters(100),
  );
});
