import assert from "node:assert/strict";
import { test } from "node:test";
import { parseCopyEnd } from "../../src/cli/copy-args.js";

test("missing container named per command", () => {
  assert.throws(
    () => parseCopyEnd(":/x"),
    /^TransferError: .*invalid copy argument ":\/x": the container name before ':' is missing/,
  );
  assert.throws(
    () => parseCopyEnd(":/x", "stat"),
    /invalid stat argument ":\/x"/,
  );
});

test("container, local and stdio ends parsed", () => {
  assert.deepEqual(parseCopyEnd("c1:/etc"), {
    kind: "container",
    containerId: "c1",
    path: "/etc",
  });
  assert.deepEqual(parseCopyEnd("c1:"), {
    kind: "container",
    containerId: "c1",
    path: "/",
  });
  assert.deepEqual(parseCopyEnd("./a:b"), { kind: "local", path: "./a:b" });
  assert.deepEqual(parseCopyEnd("-"), { kind: "stdio" });
});
