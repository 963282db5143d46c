import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  decodeFrameHeader,
  encodeFrameHeader,
  FrameDecoder,
  type FrameHeader,
  MessageType,
} from "../../src/ttrpc/index.js";
import {
  holdReceivedMemory,
  releaseReceivedMemory,
} from "../../src/util/received-memory.js";
import { hex, rawFrame } from "./harness.js";

interface Decoded {
  frames: { streamId: number; type: number; flags: number; data: string }[];
  oversized: { streamId: number; length: number }[];
}

const limit = 64;

/** Decodes `bytes` pushed in chunks of the given sizes, cycling them. */
function decodeChunked(bytes: Buffer, chunkSizes: number[]): Decoded {
  const decoded: Decoded = { frames: [], oversized: [] };
  const decoder = new FrameDecoder(limit, {
    onFrame: (header, data) =>
      decoded.frames.push({
        streamId: header.streamId,
        type: header.type,
        flags: header.flags,
        data: data.toString("hex"),
      }),
    onOversized: (header) =>
      decoded.oversized.push({
        streamId: header.streamId,
        length: header.length,
      }),
  });
  let offset = 0;
  for (let i = 0; offset < bytes.length; i++) {
    const size = chunkSizes[i % chunkSizes.length]!;
    decoder.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  assert.equal(decoder.midFrame, false, "input ended inside a frame");
  return decoded;
}

// Frames of every kind, an empty one, one exactly at the limit and two over
// it, in between normal frames.
const sample = Buffer.concat([
  rawFrame(1, MessageType.Request, 0x02, hex("0a 01 61")),
  rawFrame(1, MessageType.Data, 0x00, Buffer.alloc(limit, 7)),
  rawFrame(1, MessageType.Data, 0x05),
  rawFrame(3, MessageType.Request, 0x00, Buffer.alloc(limit + 1, 1)),
  rawFrame(5, MessageType.Response, 0x00, hex("12 02 ff 00")),
  rawFrame(7, MessageType.Data, 0x00, Buffer.alloc(1000, 2)),
  rawFrame(9, MessageType.Data, 0x04),
]);

const expected: Decoded = {
  frames: [
    { streamId: 1, type: 1, flags: 2, data: "0a0161" },
    { streamId: 1, type: 3, flags: 0, data: "07".repeat(limit) },
    { streamId: 1, type: 3, flags: 5, data: "" },
    { streamId: 5, type: 2, flags: 0, data: "1202ff00" },
    { streamId: 9, type: 3, flags: 4, data: "" },
  ],
  oversized: [
    { streamId: 3, length: limit + 1 },
    { streamId: 7, length: 1000 },
  ],
};

test("frame header encodes big-endian", () => {
  const header: FrameHeader = {
    length: 0x34,
    streamId: 0x01020304,
    type: MessageType.Data,
    flags: 0x05,
  };

  const bytes = encodeFrameHeader(header);

  assert.deepEqual(bytes, hex("00 00 00 34 01 02 03 04 03 05"));
  assert.deepEqual(decodeFrameHeader(bytes), header);
});

test("decoder takes all frames at once", () => {
  assert.deepEqual(decodeChunked(sample, [sample.length]), expected);
});

test("decoder takes one byte at a time", () => {
  assert.deepEqual(decodeChunked(sample, [1]), expected);
});

test("decoder takes random chunkings", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 200 }), {
        minLength: 1,
        maxLength: 30,
      }),
      (sizes) => {
        assert.deepEqual(decodeChunked(sample, sizes), expected);
      },
    ),
    { seed: 20_240_613, numRuns: 500 },
  );
});

test("decoder never buffers oversized data", () => {
  const claimedBytes = 64 * 1024 * 1024;
  const delivered: number[] = [];
  const decoder = new FrameDecoder(limit, {
    onFrame: (header) => delivered.push(header.streamId),
    onOversized: (header) => delivered.push(-header.streamId),
  });
  // One chunk buffer, pushed again and again, so that the test itself
  // allocates nothing while the frame's data goes by.
  const chunk = Buffer.alloc(64 * 1024, 9);
  const before = process.memoryUsage().arrayBuffers;

  decoder.push(rawFrame(3, MessageType.Data, 0).subarray(0, 10));
  decoder.push(
    encodeFrameHeader({ length: claimedBytes, streamId: 5, type: 3, flags: 0 }),
  );
  for (let sent = 0; sent < claimedBytes; sent += chunk.length) {
    decoder.push(chunk);
  }
  decoder.push(rawFrame(7, MessageType.Data, 0));

  assert.deepEqual(delivered, [3, -5, 7]);
  assert.equal(decoder.midFrame, false);
  const grownBytes = process.memoryUsage().arrayBuffers - before;
  assert.ok(grownBytes < 4 * 1024 * 1024, `memory grew ${grownBytes} bytes`);
});

test("decoder passes whole frames uncopied", () => {
  const chunk = rawFrame(1, MessageType.Data, 0, Buffer.from("abc"));
  let data: Buffer | undefined;
  const decoder = new FrameDecoder(limit, {
    onFrame: (_, frameData) => {
      data = frameData;
    },
    onOversized: () => {},
  });

  decoder.push(chunk);

  assert.equal(data?.toString(), "abc");
  assert.equal(data?.buffer, chunk.buffer);
});

test("decoder pause keeps later frames", () => {
  const streamIds: number[] = [];
  const decoder = new FrameDecoder(limit, {
    onFrame: (header) => {
      streamIds.push(header.streamId);
      if (header.streamId === 3) {
        decoder.pause();
      }
    },
    onOversized: () => {},
  });
  const bytes = Buffer.concat([
    rawFrame(1, MessageType.Data, 0),
    rawFrame(3, MessageType.Data, 0),
    rawFrame(5, MessageType.Data, 0),
    rawFrame(7, MessageType.Data, 0),
  ]);

  decoder.push(bytes.subarray(0, 25));
  assert.deepEqual(streamIds, [1, 3]);
  decoder.push(bytes.subarray(25));
  assert.deepEqual(streamIds, [1, 3]);
  decoder.resume();

  assert.deepEqual(streamIds, [1, 3, 5, 7]);
  assert.equal(decoder.midFrame, false);
});

test("decoder copies out of reused chunks", () => {
  // Frames are kept and only read at the end, and every chunk is pushed
  // from one buffer that is overwritten after each push, as a socket's
  // onread buffer is. A frame passed on as a view would end up as 0xee.
  const frames: { streamId: number; data: Buffer }[] = [];
  let pauseOnce = true;
  const decoder = new FrameDecoder(
    limit,
    {
      onFrame: (header, data) => {
        frames.push({ streamId: header.streamId, data });
        if (pauseOnce) {
          pauseOnce = false;
          decoder.pause();
        }
      },
      onOversized: () => {},
    },
    true,
  );
  const reused = Buffer.alloc(37);
  for (let offset = 0; offset < sample.length; offset += reused.length) {
    const length = Math.min(reused.length, sample.length - offset);
    sample.copy(reused, 0, offset, offset + length);
    decoder.push(reused.subarray(0, length));
    reused.fill(0xee);
    if (decoder.paused) {
      decoder.resume();
    }
  }

  assert.deepEqual(
    frames.map(({ streamId, data }) => ({
      streamId,
      data: data.toString("hex"),
    })),
    expected.frames.map(({ streamId, data }) => ({ streamId, data })),
  );
});

/** Decodes one Data frame of `length` bytes pushed in 16 KiB chunks. */
function decodeLargeFrame(decoder: FrameDecoder, length: number): void {
  const frame = rawFrame(1, MessageType.Data, 0, Buffer.alloc(length, 9));
  for (let offset = 0; offset < frame.length; offset += 16 * 1024) {
    decoder.push(Buffer.from(frame.subarray(offset, offset + 16 * 1024)));
  }
}

test("released frame buffer reused", () => {
  const frames: Buffer[] = [];
  const decoder = new FrameDecoder(1 << 20, {
    onFrame: (_header, data) => frames.push(data),
    onOversized: () => assert.fail("no frame is over the limit"),
  });

  decodeLargeFrame(decoder, 100 * 1024);
  releaseReceivedMemory(frames[0]!);
  decodeLargeFrame(decoder, 90 * 1024);

  assert.equal(frames[1]!.buffer, frames[0]!.buffer);
  assert.equal(frames[1]!.length, 90 * 1024);
  assert.ok(frames[1]!.every((byte) => byte === 9));
});

test("held frame buffer not reused", () => {
  const frames: Buffer[] = [];
  const decoder = new FrameDecoder(1 << 20, {
    onFrame: (_header, data) => frames.push(data),
    onOversized: () => assert.fail("no frame is over the limit"),
  });

  decodeLargeFrame(decoder, 100 * 1024);
  holdReceivedMemory(frames[0]!);
  releaseReceivedMemory(frames[0]!);
  decodeLargeFrame(decoder, 100 * 1024);

  assert.notEqual(frames[1]!.buffer, frames[0]!.buffer);
  assert.ok(frames[0]!.every((byte) => byte === 9));
});

test("reused chunk frames copied to lent buffers", () => {
  const frames: Buffer[] = [];
  const decoder = new FrameDecoder(
    1 << 20,
    {
      onFrame: (_header, data) => frames.push(data),
      onOversized: () => assert.fail("no frame is over the limit"),
    },
    true,
  );
  const whole = rawFrame(1, MessageType.Data, 0, Buffer.alloc(80 * 1024, 4));
  const small = rawFrame(1, MessageType.Data, 0, Buffer.alloc(100, 5));

  decoder.push(Buffer.from(whole));
  releaseReceivedMemory(frames[0]!);
  decoder.push(Buffer.from(whole));
  decoder.push(Buffer.from(small));

  assert.equal(frames[1]!.buffer, frames[0]!.buffer);
  assert.ok(frames[1]!.every((byte) => byte === 4));
  // A small frame is copied to memory of its own, never lent.
  releaseReceivedMemory(frames[2]!);
  assert.notEqual(frames[2]!.buffer, frames[1]!.buffer);
});
