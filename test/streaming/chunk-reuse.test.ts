/**
 * Reuse of source chunks: the sender hands a chunk back only once every
 * piece of it was copied or written by the transport.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type Any, takeWrittenCallback } from "../../src/any/index.js";
import {
  packWindowUpdate,
  reuseAfterSend,
  type Stream,
  sendBytes,
  unpackData,
} from "../../src/streaming/index.js";

/** Returns a stream that grants `window` bytes once and records what is sent. */
function recordingStream(window: number, sent: Any[]): Stream {
  let granted = false;
  return {
    id: "recording",
    send: async (message) => {
      sent.push(message);
    },
    receive: async () => {
      if (!granted) {
        granted = true;
        return packWindowUpdate(window);
      }
      return new Promise<never>(() => {});
    },
    closeSend: async () => {},
    abort: () => {},
  };
}

test("chunk reused after every piece written", async () => {
  const sent: Any[] = [];
  const chunk = Buffer.alloc(300 * 1024, 7);
  let reused = 0;
  reuseAfterSend(chunk, () => reused++);

  await sendBytes(recordingStream(4 * 1024 * 1024, sent), [chunk], {
    largeChunkBytes: 128 * 1024,
  });

  // Pieces of 128, 128 and 44 KiB: the last is copied into its message.
  assert.deepEqual(
    sent.map((message) => unpackData(message).length),
    [128 * 1024, 128 * 1024, 44 * 1024],
  );
  assert.equal(reused, 0, "reused before the transport wrote anything");
  const first = takeWrittenCallback(sent[0]!);
  const second = takeWrittenCallback(sent[1]!);
  assert.ok(first, "first piece has no written callback");
  assert.ok(second, "second piece has no written callback");
  assert.equal(takeWrittenCallback(sent[2]!), undefined);

  first();
  assert.equal(reused, 0, "reused with one piece still unwritten");
  second();
  assert.equal(reused, 1);
});

test("chunk not reused when the send fails", async () => {
  const chunk = Buffer.alloc(200 * 1024, 1);
  let reused = 0;
  reuseAfterSend(chunk, () => reused++);
  const stream = recordingStream(4 * 1024 * 1024, []);
  stream.send = async () => {
    throw new Error("connection lost");
  };

  await assert.rejects(sendBytes(stream, [chunk]), /connection lost/);

  assert.equal(reused, 0);
});

test("chunk of Go-sized pieces reused at once", async () => {
  const sent: Any[] = [];
  const chunk = Buffer.alloc(100 * 1024, 3);
  let reused = 0;
  reuseAfterSend(chunk, () => reused++);

  // A 64 KiB window is what Go receivers grant: pieces of 32 KiB, copied.
  const stream = recordingStream(64 * 1024, sent);
  let grants = 0;
  stream.receive = async () => {
    grants++;
    return grants < 10 ? packWindowUpdate(64 * 1024) : new Promise(() => {});
  };
  await sendBytes(stream, [chunk]);

  assert.equal(sent.length, 4);
  assert.equal(reused, 1);
});
