import assert from "node:assert/strict";
import { test } from "node:test";
import {
  repeatedSignalMs,
  setLeftover,
  signalHandler,
} from "../../src/cli/signals.js";

/** A handler with a clock that the test moves and a record of exits. */
function setUp() {
  const interrupt = new AbortController();
  const exits: string[] = [];
  let clock = 5_000;
  const onSignal = signalHandler(
    interrupt,
    (message) => exits.push(message),
    () => clock,
  );
  return {
    interrupt,
    exits,
    onSignal,
    advance: (ms: number) => {
      clock += ms;
    },
  };
}

test("first signal aborts the command", () => {
  const { interrupt, exits, onSignal } = setUp();

  onSignal("interrupted");

  assert.equal(interrupt.signal.aborted, true);
  assert.equal((interrupt.signal.reason as Error).message, "interrupted");
  assert.deepEqual(exits, []);
});

test("repeated signal within the window ignored", () => {
  const { interrupt, exits, onSignal, advance } = setUp();

  onSignal("interrupted");
  advance(repeatedSignalMs - 1);
  onSignal("interrupted");

  assert.equal(interrupt.signal.aborted, true);
  assert.deepEqual(exits, []);
});

test("later signal exits at once", () => {
  const { exits, onSignal, advance } = setUp();

  onSignal("interrupted");
  advance(repeatedSignalMs);
  onSignal("terminated");

  assert.equal(exits.length, 1);
  assert.match(exits[0]!, /^terminated again: exiting without cleaning up/);
});

test("later signal names the leftover", () => {
  const { exits, onSignal, advance } = setUp();

  setLeftover("the export may leave its partial archive /x/.a.tar.1.part");
  onSignal("interrupted");
  advance(repeatedSignalMs);
  onSignal("interrupted");
  setLeftover(undefined);
  onSignal("interrupted");

  assert.deepEqual(exits, [
    "interrupted again: exiting without cleaning up; the export may " +
      "leave its partial archive /x/.a.tar.1.part",
    "interrupted again: exiting without cleaning up",
  ]);
});
