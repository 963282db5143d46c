import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import type { Any } from "../../src/any/index.js";
import {
  packData,
  receiveBytes,
  type Stream,
  unpackWindowUpdate,
} from "../../src/streaming/index.js";

/**
 * Returns a stream that delivers `messages` and then its end, accepts the
 * first `acceptedSends` sends and rejects later ones, as a ttrpc client
 * stream does once the sender has ended the call.
 */
function endedCallStream(
  messages: Any[],
  acceptedSends: number,
  grants: number[],
): Stream {
  const queued = [...messages];
  return {
    id: "ended-call",
    send: async (message) => {
      if (grants.length >= acceptedSends) {
        throw new Error("push after end of queue");
      }
      grants.push(unpackWindowUpdate(message));
    },
    receive: async () => queued.shift(),
    closeSend: async () => {},
    abort: () => {},
  };
}

test("receive outlives a rejected grant", async () => {
  const window = 64 * 1024;
  const messages = [packData(Buffer.alloc(40_000, 1))];
  messages.push(packData(Buffer.alloc(20_000, 2)));
  const grants: number[] = [];
  const written: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      written.push(chunk);
      callback();
    },
  });

  const received = await receiveBytes(
    endedCallStream(messages, 1, grants),
    sink,
    { windowBytes: window },
  );

  assert.equal(received, 60_000);
  assert.deepEqual(grants, [window]);
  assert.equal(Buffer.concat(written).length, 60_000);
});

test("receive fails when the first grant fails", async () => {
  const grants: number[] = [];
  const sink = new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
  await assert.rejects(
    receiveBytes(endedCallStream([], 0, grants), sink),
    /push after end of queue/,
  );
});
