/**
 * Fuzzes the ttrpc FrameDecoder: valid frame sequences split anywhere,
 * with the sink pausing at random, and arbitrary bytes checked against a
 * one-pass reference parser.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  encodeFrameHeader,
  FrameDecoder,
  type FrameHeader,
  messageHeaderLength,
} from "../../src/ttrpc/index.js";
import { fuzzParameters } from "./settings.js";

/** Maximum frame data length the decoders under test accept, in bytes. */
const limit = 256;

type Event =
  | { kind: "frame"; header: FrameHeader; data: string }
  | { kind: "oversized"; header: FrameHeader };

interface FrameSpec {
  streamId: number;
  type: number;
  flags: number;
  data: Uint8Array;
}

const frameSpec: fc.Arbitrary<FrameSpec> = fc.record({
  streamId: fc.integer({ min: 0, max: 0xffff_ffff }),
  type: fc.integer({ min: 0, max: 255 }),
  flags: fc.integer({ min: 0, max: 255 }),
  data: fc.uint8Array({ maxLength: limit }),
});

function encodeFrame(frame: FrameSpec): Buffer {
  return Buffer.concat([
    encodeFrameHeader({
      length: frame.data.length,
      streamId: frame.streamId,
      type: frame.type,
      flags: frame.flags,
    }),
    frame.data,
  ]);
}

/**
 * Parses `bytes` in one pass: the events a decoder must report, and
 * whether the bytes end inside a frame.
 */
function referenceParse(bytes: Buffer): { events: Event[]; midFrame: boolean } {
  const events: Event[] = [];
  let offset = 0;
  while (bytes.length - offset >= messageHeaderLength) {
    const header: FrameHeader = {
      length: bytes.readUInt32BE(offset),
      streamId: bytes.readUInt32BE(offset + 4),
      type: bytes[offset + 8]!,
      flags: bytes[offset + 9]!,
    };
    offset += messageHeaderLength;
    if (header.length > limit) {
      events.push({ kind: "oversized", header });
      offset += header.length;
      continue;
    }
    if (bytes.length - offset < header.length) {
      return { events, midFrame: true };
    }
    const data = bytes.subarray(offset, offset + header.length);
    events.push({ kind: "frame", header, data: data.toString("hex") });
    offset += header.length;
  }
  return { events, midFrame: offset !== bytes.length };
}

interface DecodeRun {
  events: Event[];
  midFrame: boolean;
  /** Largest Buffer.allocUnsafe request made while decoding, in bytes. */
  largestAllocation: number;
}

/**
 * Pushes `bytes` in chunks of the given sizes (cycling them). When
 * `pauses` is given, the sink pauses after the frames whose index it
 * marks, and the driver resumes before the next push and at the end.
 */
function decode(
  bytes: Buffer,
  chunkSizes: number[],
  pauses: boolean[] = [],
): DecodeRun {
  const events: Event[] = [];
  const decoder = new FrameDecoder(limit, {
    onFrame: (header, data) => {
      events.push({ kind: "frame", header, data: data.toString("hex") });
      if (pauses.length > 0 && pauses[events.length % pauses.length]) {
        decoder.pause();
      }
    },
    onOversized: (header) => events.push({ kind: "oversized", header }),
  });

  // The decoder allocates a frame's buffer with Buffer.allocUnsafe; the
  // spy records each request so that the test can bound them.
  const original = Buffer.allocUnsafe;
  let largestAllocation = 0;
  Buffer.allocUnsafe = (size: number) => {
    largestAllocation = Math.max(largestAllocation, size);
    return original(size);
  };
  try {
    let offset = 0;
    for (let i = 0; offset < bytes.length; i++) {
      const size = chunkSizes[i % chunkSizes.length]!;
      decoder.push(bytes.subarray(offset, offset + size));
      offset += size;
      while (decoder.paused) {
        decoder.resume();
      }
    }
  } finally {
    Buffer.allocUnsafe = original;
  }
  return { events, midFrame: decoder.midFrame, largestAllocation };
}

const chunkSizes = fc.array(fc.integer({ min: 1, max: 600 }), {
  minLength: 1,
  maxLength: 20,
});

test("valid frames decode whatever the split", () => {
  fc.assert(
    fc.property(
      fc.array(frameSpec, { maxLength: 12 }),
      chunkSizes,
      fc.array(fc.boolean(), { maxLength: 5 }),
      (frames, sizes, pauses) => {
        const bytes = Buffer.concat(frames.map(encodeFrame));
        const run = decode(bytes, sizes, pauses);

        assert.equal(run.midFrame, false);
        assert.deepEqual(
          run.events,
          frames.map((frame) => ({
            kind: "frame",
            header: {
              length: frame.data.length,
              streamId: frame.streamId,
              type: frame.type,
              flags: frame.flags,
            },
            data: Buffer.from(frame.data).toString("hex"),
          })),
        );
      },
    ),
    fuzzParameters(1000),
  );
});

// Garbage: random bytes mixed with headers whose lengths sit around the
// limit, so that the oversized path and split frames are both reached.
const garbagePiece = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc
    .record({
      length: fc.oneof(
        fc.integer({ min: 0, max: limit + 2 }),
        fc.integer({ min: limit - 2, max: 2 * limit }),
        fc.constant(0xffff_ffff),
      ),
      streamId: fc.integer({ min: 0, max: 0xffff_ffff }),
      type: fc.integer({ min: 0, max: 255 }),
      flags: fc.integer({ min: 0, max: 255 }),
    })
    .map((header) => new Uint8Array(encodeFrameHeader(header))),
  frameSpec.map((frame) => new Uint8Array(encodeFrame(frame))),
);

test("garbage matches the reference parser", () => {
  fc.assert(
    fc.property(
      fc.array(garbagePiece, { maxLength: 24 }),
      chunkSizes,
      (pieces, sizes) => {
        const bytes = Buffer.concat(pieces);
        const expected = referenceParse(bytes);

        const run = decode(bytes, sizes);

        assert.deepEqual(run.events, expected.events);
        assert.equal(run.midFrame, expected.midFrame);
        assert.ok(
          run.largestAllocation <= limit,
          `allocated ${run.largestAllocation} bytes, limit ${limit}`,
        );
      },
    ),
    fuzzParameters(1000),
  );
});

test("garbage with pauses keeps every frame", () => {
  fc.assert(
    fc.property(
      fc.array(garbagePiece, { maxLength: 24 }),
      chunkSizes,
      fc.array(fc.boolean(), { minLength: 1, maxLength: 5 }),
      (pieces, sizes, pauses) => {
        const bytes = Buffer.concat(pieces);
        const expected = referenceParse(bytes);

        const run = decode(bytes, sizes, pauses);

        assert.deepEqual(run.events, expected.events);
        assert.equal(run.midFrame, expected.midFrame);
      },
    ),
    fuzzParameters(500),
  );
});
