/**
 * Fuzzes sendBytes against a scripted receiver on a fake Stream. The
 * receiver grants valid and invalid windows, sends garbage, fails or ends
 * early. Every run must settle within 5 s. A run that resolves must have
 * sent every source byte, in order, and never more than was granted.
 * Otherwise it rejects with a TransferError.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, fromBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { type Any, packAny } from "../../src/any/index.js";
import { Code, TransferError } from "../../src/errors/index.js";
import { WindowUpdateSchema } from "../../src/gen/containerd/types/transfer/streaming_pb.js";
import {
  maxCredit,
  type Stream,
  sendBytes,
  unpackData,
} from "../../src/streaming/index.js";
import { fuzzParameters, withinMs } from "./settings.js";

type Step =
  | { kind: "grant"; update: number }
  | { kind: "garbage"; message: Any }
  | { kind: "fail" }
  | { kind: "end" };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      kind: fc.constant("grant" as const),
      update: fc.oneof(
        { weight: 8, arbitrary: fc.integer({ min: 1, max: 5000 }) },
        {
          weight: 1,
          arbitrary: fc.constantFrom(0, -1, maxCredit, maxCredit - 1, 1),
        },
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({
        typeUrl: fc.constantFrom(
          "containerd.types.transfer.Data",
          "containerd.types.transfer.WindowUpdate",
          "",
          "x",
        ),
        value: fc.uint8Array({ maxLength: 12 }),
      })
      .map((init) => ({
        kind: "garbage" as const,
        message: create(AnySchema, init),
      })),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "fail" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "end" as const }) },
);

const scenario = fc.record({
  chunks: fc.array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 8 }),
  steps: fc.array(step, { maxLength: 20 }),
  maxChunkBytes: fc.constantFrom(1, 100, 32 * 1024),
  abortAfterSends: fc.option(fc.nat({ max: 30 }), { nil: undefined }),
});

interface ReceiverLog {
  received: Buffer[];
  /**
   * Sum of the grants in range delivered before the first invalid step:
   * the most the sender may send.
   */
  granted: number;
  /** Largest valid grant delivered, which selects the chunk limit. */
  largestGrant: number;
  overdrawn: boolean;
  closed: boolean;
}

function scriptedReceiver(
  steps: Step[],
  log: ReceiverLog,
  onSend: () => void,
): Stream {
  let next = 0;
  let valid = true;
  let aborted: unknown;
  let sent = 0;
  let onClose: (() => void) | undefined;

  return {
    id: "fuzz",
    async send(message) {
      if (aborted !== undefined) {
        throw aborted;
      }
      const payload = unpackData(message);
      sent += payload.length;
      if (sent > log.granted) {
        log.overdrawn = true;
      }
      log.received.push(Buffer.from(payload));
      onSend();
    },
    async receive() {
      await new Promise((resolve) => setImmediate(resolve));
      if (aborted !== undefined) {
        throw aborted;
      }
      const current = steps[next++];
      if (current === undefined) {
        // A receiver with nothing more to grant ends the stream once the
        // sender half-closed, or after 20 ms, so that no run waits forever.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 20);
          onClose = () => {
            clearTimeout(timer);
            resolve();
          };
          if (log.closed) {
            onClose();
          }
        });
        return undefined;
      }
      switch (current.kind) {
        case "grant": {
          const update = current.update;
          // Whether a grant overflows depends on the credit the sender has
          // not spent yet, which the receiver cannot see, so every grant in
          // range counts: `granted` is an upper bound.
          const isValid =
            Number.isInteger(update) && update > 0 && update <= maxCredit;
          if (valid && isValid) {
            log.granted += update;
            log.largestGrant = Math.max(log.largestGrant, update);
          } else {
            valid = false;
          }
          return packAny(WindowUpdateSchema, { update });
        }
        case "garbage": {
          // Random bytes can still be a valid WindowUpdate, which grants.
          const update = garbageGrant(current.message);
          if (valid && update !== undefined) {
            log.granted += update;
            log.largestGrant = Math.max(log.largestGrant, update);
          } else {
            valid = false;
          }
          return current.message;
        }
        case "fail":
          valid = false;
          throw new TransferError(
            "receiver connection reset",
            Code.Unavailable,
          );
        case "end":
          return undefined;
      }
    },
    async closeSend() {
      log.closed = true;
      onClose?.();
    },
    abort(reason) {
      aborted ??= reason ?? new TransferError("aborted", Code.Canceled);
    },
  };
}

/** Returns the grant that a garbage message happens to make, if any. */
function garbageGrant(message: Any): number | undefined {
  if (message.typeUrl !== "containerd.types.transfer.WindowUpdate") {
    return undefined;
  }
  try {
    const { update } = fromBinary(WindowUpdateSchema, message.value);
    return update > 0 && update <= maxCredit ? update : undefined;
  } catch {
    return undefined;
  }
}

test("sendBytes sends all or rejects", async () => {
  await fc.assert(
    fc.asyncProperty(scenario, async (scene) => {
      const log: ReceiverLog = {
        received: [],
        granted: 0,
        largestGrant: 0,
        overdrawn: false,
        closed: false,
      };
      const controller = new AbortController();
      let sends = 0;
      const stream = scriptedReceiver(scene.steps, log, () => {
        if (++sends === scene.abortAfterSends) {
          controller.abort();
        }
      });
      const source = scene.chunks.map((chunk) => Buffer.from(chunk));
      const expected = Buffer.concat(source);

      const outcome = await withinMs(
        sendBytes(stream, source, {
          maxChunkBytes: scene.maxChunkBytes,
          signal: controller.signal,
        }).then(
          (total) => ({ ok: true as const, total }),
          (error: unknown) => ({ ok: false as const, error }),
        ),
        5000,
        "sendBytes",
      );

      assert.equal(log.overdrawn, false, "sent more than was granted");
      // A grant over 64 KiB lets the sender use its large chunks, 256 KiB
      // by default.
      const chunkLimit =
        log.largestGrant > 64 * 1024
          ? Math.max(scene.maxChunkBytes, 256 * 1024)
          : scene.maxChunkBytes;
      for (const payload of log.received) {
        assert.ok(payload.length <= chunkLimit, `chunk of ${payload.length} B`);
      }
      if (outcome.ok) {
        assert.equal(outcome.total, expected.length);
        assert.deepEqual(Buffer.concat(log.received), expected);
        assert.equal(log.closed, true, "resolved without a half-close");
        return;
      }
      assert.ok(
        outcome.error instanceof TransferError,
        `rejected with a non-TransferError: ${String(outcome.error)}`,
      );
      assert.equal(log.closed, false, "half-closed and then rejected");
    }),
    fuzzParameters(400),
  );
});
