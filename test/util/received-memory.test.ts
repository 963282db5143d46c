import assert from "node:assert/strict";
import { test } from "node:test";
import {
  holdReceivedMemory,
  lendReceivedMemory,
  releaseReceivedMemory,
  takeReceivedBuffer,
} from "../../src/util/received-memory.js";

test("lent memory reused after last release", () => {
  const memory = Buffer.allocUnsafeSlow(1024);
  let reused = 0;
  lendReceivedMemory(memory, () => reused++);
  const view = memory.subarray(10, 20);

  holdReceivedMemory(view);
  releaseReceivedMemory(memory);
  assert.equal(reused, 0, "reused while a holder remained");

  releaseReceivedMemory(view);
  assert.equal(reused, 1);
});

test("extra release after reuse ignored", () => {
  const memory = Buffer.allocUnsafeSlow(64);
  let reused = 0;
  lendReceivedMemory(memory, () => reused++);

  releaseReceivedMemory(memory);
  releaseReceivedMemory(memory);

  assert.equal(reused, 1);
});

test("hold after last release throws", () => {
  const memory = Buffer.allocUnsafeSlow(64);
  lendReceivedMemory(memory, () => {});
  releaseReceivedMemory(memory);

  assert.throws(() => holdReceivedMemory(memory), /after its last release/);
});

test("memory never lent is ignored", () => {
  const memory = Buffer.alloc(64);
  holdReceivedMemory(memory);
  releaseReceivedMemory(memory);
  releaseReceivedMemory(memory);

  // Those calls left no loan behind that a new one would count on.
  let reused = 0;
  lendReceivedMemory(memory, () => reused++);
  releaseReceivedMemory(memory);
  assert.equal(reused, 1);
});

test("lending again starts a new loan", () => {
  const memory = Buffer.allocUnsafeSlow(64);
  let reused = 0;
  lendReceivedMemory(memory, () => reused++);
  releaseReceivedMemory(memory);

  lendReceivedMemory(memory, () => reused++);
  holdReceivedMemory(memory);
  releaseReceivedMemory(memory);
  assert.equal(reused, 1, "reused while the second loan had a holder");

  releaseReceivedMemory(memory);
  assert.equal(reused, 2);
});

test("released buffer taken again", () => {
  const first = takeReceivedBuffer(100_000);
  const memory = first.buffer;
  releaseReceivedMemory(first);

  const second = takeReceivedBuffer(90_000);

  assert.equal(second.length, 90_000);
  assert.equal(second.buffer, memory);
  releaseReceivedMemory(second);
});

test("held buffer not taken again", () => {
  const first = takeReceivedBuffer(100_000);
  const view = first.subarray(5, 10);
  holdReceivedMemory(view);
  releaseReceivedMemory(first);

  const second = takeReceivedBuffer(100_000);

  assert.notEqual(second.buffer, first.buffer);
  releaseReceivedMemory(view);
  releaseReceivedMemory(second);
});

test("small buffer never lent", () => {
  const small = takeReceivedBuffer(1000);
  releaseReceivedMemory(small);

  const again = takeReceivedBuffer(1000);

  assert.equal(small.length, 1000);
  // Node may cut both from one shared slab, but never at one place.
  const samePlace =
    again.buffer === small.buffer && again.byteOffset === small.byteOffset;
  assert.equal(samePlace, false);
});

test("buffer reused within its size class only", () => {
  const first = takeReceivedBuffer(10_000);
  releaseReceivedMemory(first);

  const sameClass = takeReceivedBuffer(9_000);
  const largerClass = takeReceivedBuffer(20_000);

  assert.equal(sameClass.buffer, first.buffer);
  assert.notEqual(largerClass.buffer, first.buffer);
  assert.equal(largerClass.length, 20_000);
  releaseReceivedMemory(sameClass);
  releaseReceivedMemory(largerClass);
});

test("free buffers of another size make room", () => {
  // Fills the free buffers with 8 MiB of one size class.
  const small = Array.from({ length: 64 }, () => takeReceivedBuffer(100_000));
  for (const message of small) {
    releaseReceivedMemory(message);
  }
  const large = takeReceivedBuffer(1_100_000);
  releaseReceivedMemory(large);

  const again = takeReceivedBuffer(1_050_000);

  assert.equal(again.buffer, large.buffer);
  releaseReceivedMemory(again);
});
