/**
 * The ttrpc transport and server as a dependent project imports them:
 * through the package's `./ttrpc` export, by the package's name.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Tasks } from "../../src/gen/containerd/services/tasks/v1/tasks_pb.js";

test("a service served and called through containerd-transfer/ttrpc", async (t) => {
  // A specifier that only the package's exports map resolves.
  const ttrpc = await import("containerd-transfer/ttrpc");
  const dir = await mkdtemp(join(tmpdir(), "ct-ttrpc-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "s.sock");

  const server = ttrpc.createTtrpcServer({
    services: [
      ttrpc.createServiceSpec(Tasks, {
        get: (request) => ({
          process: { containerId: request.containerId, pid: 42 },
        }),
      }),
    ],
  });
  await server.listen(path);
  t.after(() => server.close());
  const transport = ttrpc.createTtrpcTransport({ path: `unix://${path}` });
  t.after(() => transport.close());

  const tasks = createClient(Tasks, transport);
  const response = await tasks.get({ containerId: "web" }, { timeoutMs: 5000 });

  assert.equal(response.process?.containerId, "web");
  assert.equal(response.process?.pid, 42);
});

test("a ttrpc transport without a socket path is refused", async () => {
  const ttrpc = await import("containerd-transfer/ttrpc");
  for (const path of ["", "unix://"]) {
    assert.throws(
      () => ttrpc.createTtrpcTransport({ path }),
      (error: unknown) =>
        error instanceof ConnectError &&
        error.code === Code.InvalidArgument &&
        error.rawMessage.includes(JSON.stringify(path)),
    );
  }
});
