/**
 * Fuzzes receiveBytes against a scripted peer on a fake Stream. The peer
 * sends Data (within or beyond its window), garbage Any messages, a clean
 * end or a failure. The sink may be slow or fail, and the caller may
 * abort. Every run must settle within 5 s. It either delivers exactly the
 * bytes the peer sent before its clean end, or rejects with a
 * TransferError.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { create, fromBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import type { Any } from "../../src/any/index.js";
import { Code, TransferError } from "../../src/errors/index.js";
import { DataSchema } from "../../src/gen/containerd/types/transfer/streaming_pb.js";
import {
  packData,
  receiveBytes,
  type Stream,
  unpackWindowUpdate,
} from "../../src/streaming/index.js";
import { fuzzParameters, withinMs } from "./settings.js";

/** One step of the scripted peer. */
type Step =
  | { kind: "data"; payload: Uint8Array; typeUrlPrefix: string }
  | { kind: "rawData"; value: Uint8Array }
  | { kind: "garbage"; message: Any }
  | { kind: "fail"; plainError: boolean }
  | { kind: "end" };

interface Scenario {
  windowBytes: number;
  steps: Step[];
  /** Index of the receiver's send that rejects, if any. */
  failingSend: number | undefined;
  /** Received byte count at which the sink fails a write, if any. */
  sinkFailsAt: number | undefined;
  sinkHighWaterMark: number;
  slowSink: boolean;
  /** Step index before which the caller aborts, if any. */
  abortAt: number | undefined;
  /** Whether receive() settles in a later macrotask. */
  delayedReceive: boolean;
}

const dataTypeName = DataSchema.typeName;

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant("data" as const),
      payload: fc.uint8Array({ maxLength: 2500 }),
      typeUrlPrefix: fc.constantFrom("", "type.googleapis.com/"),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("rawData" as const),
      value: fc.uint8Array({ maxLength: 40 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({
        typeUrl: fc.oneof(
          fc.constantFrom(
            "",
            "containerd.types.transfer.WindowUpdate",
            "google.protobuf.Empty",
            `${dataTypeName}.extra`,
            "/",
          ),
          fc.string({ maxLength: 30 }),
        ),
        value: fc.uint8Array({ maxLength: 40 }),
      })
      .map((init) => ({
        kind: "garbage" as const,
        message: create(AnySchema, init),
      })),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("fail" as const),
      plainError: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("end" as const) }) },
);

const scenario: fc.Arbitrary<Scenario> = fc.record({
  windowBytes: fc.constantFrom(1, 100, 1024, 4096, 64 * 1024),
  steps: fc.array(step, { maxLength: 16 }),
  failingSend: fc.option(fc.integer({ min: 0, max: 12 }), { nil: undefined }),
  sinkFailsAt: fc.option(fc.integer({ min: 0, max: 20_000 }), {
    nil: undefined,
  }),
  sinkHighWaterMark: fc.integer({ min: 1, max: 8192 }),
  slowSink: fc.boolean(),
  abortAt: fc.option(fc.integer({ min: 0, max: 16 }), { nil: undefined }),
  delayedReceive: fc.boolean(),
});

/** What the peer did, recorded while the receiver ran. */
interface PeerLog {
  /** Payloads of the valid Data messages delivered, in order. */
  delivered: Uint8Array[];
  granted: number;
  /** The first protocol break or failure the receiver was shown. */
  violation: string | undefined;
  /** Whether the clean end was delivered with nothing wrong before it. */
  endedCleanly: boolean;
  closeSendCalls: number;
  abortCalls: number;
}

function decodeData(value: Uint8Array): Uint8Array | undefined {
  try {
    return fromBinary(DataSchema, value).data;
  } catch {
    return undefined;
  }
}

/** Creates a Stream whose incoming side plays the scenario's steps. */
function scriptedStream(
  scene: Scenario,
  log: PeerLog,
  abort: (stepIndex: number) => void,
): Stream {
  let next = 0;
  let sends = 0;
  let deliveredBytes = 0;
  let aborted: unknown;

  const deliver = (): Any | undefined => {
    abort(next);
    const current = scene.steps[next++] ?? { kind: "end" };
    const record = (reason: string) => {
      log.violation ??= reason;
    };
    switch (current.kind) {
      case "data":
      case "rawData": {
        const payload =
          current.kind === "data" ? current.payload : decodeData(current.value);
        if (payload === undefined) {
          record("invalid Data value");
        } else if (deliveredBytes + payload.length > log.granted) {
          record("window exceeded");
        } else if (log.violation === undefined) {
          log.delivered.push(payload);
        }
        if (payload !== undefined) {
          deliveredBytes += payload.length;
        }
        if (current.kind === "rawData") {
          return create(AnySchema, {
            typeUrl: dataTypeName,
            value: current.value,
          });
        }
        const message = packData(current.payload);
        message.typeUrl = current.typeUrlPrefix + message.typeUrl;
        return message;
      }
      case "garbage": {
        const name = current.message.typeUrl.slice(
          current.message.typeUrl.lastIndexOf("/") + 1,
        );
        const payload =
          name === dataTypeName ? decodeData(current.message.value) : undefined;
        if (payload === undefined) {
          record("unexpected message");
        } else if (deliveredBytes + payload.length > log.granted) {
          record("window exceeded");
        } else if (log.violation === undefined) {
          log.delivered.push(payload);
        }
        if (payload !== undefined) {
          deliveredBytes += payload.length;
        }
        return current.message;
      }
      case "fail":
        record("receive failed");
        throw current.plainError
          ? new Error("peer connection reset")
          : new TransferError("peer connection reset", Code.Unavailable);
      case "end":
        if (log.violation === undefined) {
          log.endedCleanly = true;
        }
        return undefined;
    }
  };

  return {
    id: "fuzz",
    async send(message) {
      if (aborted !== undefined) {
        throw aborted;
      }
      if (sends++ === scene.failingSend) {
        // Only the first grant must arrive. After a later one fails, the
        // receiver stops granting and reads on to the end.
        if (sends === 1) {
          log.violation ??= "send failed";
        }
        throw new TransferError("peer stopped reading", Code.Unavailable);
      }
      log.granted += unpackWindowUpdate(message);
    },
    async receive() {
      if (aborted !== undefined) {
        throw aborted;
      }
      if (scene.delayedReceive) {
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      return deliver();
    },
    async closeSend() {
      log.closeSendCalls++;
    },
    abort(reason) {
      log.abortCalls++;
      aborted ??= reason ?? new TransferError("aborted", Code.Canceled);
    },
  };
}

interface RecordingSink {
  sink: Writable;
  chunks: Buffer[];
}

function recordingSink(scene: Scenario, log: PeerLog): RecordingSink {
  const chunks: Buffer[] = [];
  let written = 0;
  const sink = new Writable({
    highWaterMark: scene.sinkHighWaterMark,
    write(chunk: Buffer, _encoding, callback) {
      written += chunk.length;
      if (scene.sinkFailsAt !== undefined && written >= scene.sinkFailsAt) {
        log.violation ??= "sink failed";
        callback(new Error("disk full"));
        return;
      }
      chunks.push(Buffer.from(chunk));
      if (scene.slowSink) {
        setImmediate(callback);
      } else {
        callback();
      }
    },
  });
  return { sink, chunks };
}

type Outcome = { ok: true; received: number } | { ok: false; error: unknown };

async function play(scene: Scenario): Promise<void> {
  const log: PeerLog = {
    delivered: [],
    granted: 0,
    violation: undefined,
    endedCleanly: false,
    closeSendCalls: 0,
    abortCalls: 0,
  };
  const controller = new AbortController();
  const stream = scriptedStream(scene, log, (stepIndex) => {
    if (stepIndex === scene.abortAt && !controller.signal.aborted) {
      controller.abort();
    }
  });
  const { sink, chunks } = recordingSink(scene, log);

  const outcome: Outcome = await withinMs(
    receiveBytes(stream, sink, {
      windowBytes: scene.windowBytes,
      signal: controller.signal,
    }).then(
      (received) => ({ ok: true as const, received }),
      (error: unknown) => ({ ok: false as const, error }),
    ),
    5000,
    "receiveBytes",
  );

  const expected = Buffer.concat(log.delivered);
  if (outcome.ok) {
    assert.ok(log.endedCleanly, `resolved after ${log.violation ?? "no end"}`);
    assert.equal(outcome.received, expected.length);
    assert.deepEqual(Buffer.concat(chunks), expected);
    assert.equal(log.closeSendCalls, 1);
    assert.equal(sink.writableFinished, true);
    return;
  }

  assert.ok(
    outcome.error instanceof TransferError,
    `rejected with a non-TransferError: ${String(outcome.error)}`,
  );
  assert.ok(
    log.violation !== undefined || controller.signal.aborted,
    `rejected without cause: ${outcome.error.message}`,
  );
  if (log.violation === undefined) {
    assert.equal(outcome.error.code, Code.Canceled, outcome.error.message);
  }
  assert.ok(log.abortCalls > 0, "the stream was not aborted");
  assert.equal(sink.destroyed, true, "the sink was not destroyed");
}

test("receiveBytes delivers all or rejects", async () => {
  await fc.assert(fc.asyncProperty(scenario, play), fuzzParameters(400));
});

test("receiveBytes with an honest peer", async () => {
  // Payloads within the window and a clean end, with nothing else going
  // wrong, so every run must resolve with every byte.
  const honest = fc
    .record({
      windowBytes: fc.constantFrom(100, 1024, 4096),
      payloads: fc.array(fc.uint8Array({ maxLength: 100 }), { maxLength: 30 }),
      sinkHighWaterMark: fc.integer({ min: 1, max: 8192 }),
      slowSink: fc.boolean(),
      delayedReceive: fc.boolean(),
    })
    .map(
      (init): Scenario => ({
        windowBytes: init.windowBytes,
        steps: [
          ...init.payloads.map(
            (payload): Step => ({ kind: "data", payload, typeUrlPrefix: "" }),
          ),
          { kind: "end" },
        ],
        failingSend: undefined,
        sinkFailsAt: undefined,
        sinkHighWaterMark: init.sinkHighWaterMark,
        slowSink: init.slowSink,
        abortAt: undefined,
        delayedReceive: init.delayedReceive,
      }),
    );
  await fc.assert(fc.asyncProperty(honest, play), fuzzParameters(200));
});
