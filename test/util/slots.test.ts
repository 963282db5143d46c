import assert from "node:assert/strict";
import { test } from "node:test";
import { Slots } from "../../src/util/slots.js";

test("slots wait in arrival order", async () => {
  const slots = new Slots(1);
  const order: string[] = [];
  const release = await slots.take(new AbortController().signal);

  const second = slots.take(new AbortController().signal).then((giveBack) => {
    order.push("second");
    return giveBack;
  });
  const third = slots.take(new AbortController().signal).then((giveBack) => {
    order.push("third");
    giveBack();
  });
  release();
  // A second call gives nothing back twice.
  release();
  (await second)();
  await third;

  assert.deepEqual(order, ["second", "third"]);
});

test("aborted wait takes no slot", async () => {
  const slots = new Slots(1);
  const release = await slots.take(new AbortController().signal);
  const controller = new AbortController();

  const waiting = slots.take(controller.signal);
  controller.abort(new Error("gave up"));
  await assert.rejects(waiting, /gave up/);
  release();

  // The one slot is free again: a take resolves at once.
  const again = await slots.take(AbortSignal.timeout(1000));
  again();
});

test("larger requests wait for enough units", async () => {
  const slots = new Slots(4);
  const triple = await slots.take(new AbortController().signal, 3);
  const order: string[] = [];

  const pair = slots.take(new AbortController().signal, 2).then((giveBack) => {
    order.push("pair");
    return giveBack;
  });
  // Arrival order holds: the single unit waits behind the pair.
  const single = slots
    .take(new AbortController().signal, 1)
    .then((giveBack) => {
      order.push("single");
      return giveBack;
    });
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(order, []);

  triple();
  (await pair)();
  (await single)();
  assert.deepEqual(order, ["pair", "single"]);
});
