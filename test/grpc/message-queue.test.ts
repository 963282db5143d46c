import assert from "node:assert/strict";
import { test } from "node:test";
import { MessageQueue } from "../../src/grpc/message-queue.js";

const mib = 1024 * 1024;

/** Returns a stand-in for the HTTP/2 stream that records pause and resume. */
function pausable() {
  const stream = {
    paused: false,
    pause() {
      stream.paused = true;
    },
    resume() {
      stream.paused = false;
    },
    isPaused() {
      return stream.paused;
    },
  };
  return stream;
}

test("queue pauses at 4 MiB waiting", async () => {
  const stream = pausable();
  const queue = new MessageQueue<string>(stream);
  const messages = queue[Symbol.asyncIterator]();

  queue.push("first", 3 * mib);
  const pausedAfterFirst = stream.paused;
  queue.push("second", 3 * mib);
  const pausedAfterSecond = stream.paused;
  const read = await messages.next();

  assert.equal(pausedAfterFirst, false);
  assert.equal(pausedAfterSecond, true);
  assert.equal(read.value, "first");
  assert.equal(stream.paused, false, "3 MiB left waiting");
});

test("queue pauses at 16 messages waiting", async () => {
  const stream = pausable();
  const queue = new MessageQueue<number>(stream);
  const messages = queue[Symbol.asyncIterator]();

  for (let i = 0; i < 15; i++) {
    queue.push(i, 10);
  }
  const pausedAt15 = stream.paused;
  queue.push(15, 10);
  const pausedAt16 = stream.paused;
  await messages.next();

  assert.equal(pausedAt15, false);
  assert.equal(pausedAt16, true);
  assert.equal(stream.paused, false);
});
