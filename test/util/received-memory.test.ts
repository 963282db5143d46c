import assert from "node:assert/strict";
import { test } from "node:test";
import {
  holdReceivedMemory,
  lendReceivedMemory,
  releaseReceivedMemory,
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
