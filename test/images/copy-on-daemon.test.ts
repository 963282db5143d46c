/**
 * containerd's own socket serves image transfers but no container-path
 * copies, so a copy aimed at it must fail with an error that names the
 * address.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  copyArchiveFromContainer,
  copyArchiveIntoContainer,
  statContainerPath,
} from "../../src/client/index.js";
import { tar } from "./archives.js";
import { memorySink, openDaemon } from "./daemon.js";

test("copy and stat on daemon unsupported", async (t) => {
  const daemon = openDaemon(t);
  if (!daemon) {
    return;
  }
  const location = { containerId: "c1", path: "/tmp" };
  const check = (error: { kind?: string; message?: string }) => {
    assert.equal(error.kind, "not implemented", error.message);
    assert.ok(
      error.message?.includes(`${daemon.env.address} does not implement`),
      error.message,
    );
    assert.match(error.message ?? "", /containerd-transfer serve/);
    return true;
  };

  await assert.rejects(
    copyArchiveIntoContainer(
      daemon.client,
      [tar([["a.txt", Buffer.from("a")]])],
      location,
    ),
    check,
  );
  await assert.rejects(
    copyArchiveFromContainer(daemon.client, location, memorySink().sink),
    check,
  );
  await assert.rejects(statContainerPath(daemon.client, location), check);
});
