import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { connect, statContainerPath } from "../../src/client/index.js";
import { TransferError } from "../../src/errors/index.js";
import { connectHint } from "../../src/transport/socket-path.js";

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "ct-hint-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function systemError(code: string): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(`connect ${code}`);
  error.code = code;
  return error;
}

test("hint names a missing socket", () => {
  const hint = connectHint("/x.sock", systemError("ENOENT"));

  assert.match(hint, /^no socket exists at that path/);
});

test("hint found in a wrapped cause", () => {
  const wrapped = new Error("failed", { cause: systemError("EACCES") });

  assert.match(connectHint("/x.sock", wrapped), /^permission denied/);
});

test("refused connect to a file or a socket", async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, "file");
  await writeFile(file, "");
  // A socket file, such as one left by a daemon that was killed.
  const socket = join(dir, "stale.sock");
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.after(() => server.close());

  assert.match(
    connectHint(file, systemError("ECONNREFUSED")),
    /^it is not a socket/,
  );
  assert.match(
    connectHint(socket, systemError("ECONNREFUSED")),
    /^nothing accepts connections on it/,
  );
});

for (const protocol of ["ttrpc", "grpc"] as const) {
  test(`missing ${protocol} socket explained`, async (t) => {
    const dir = await tempDir(t);
    const address = join(dir, "absent.sock");
    const client = connect({ address, protocol });
    t.after(() => client.close());

    const failure = await statContainerPath(client, {
      containerId: "c1",
      path: "/",
    }).catch((error: unknown) => error);

    assert.ok(failure instanceof TransferError, String(failure));
    assert.equal(failure.kind, "unavailable");
    assert.match(failure.rawMessage, /no socket exists at that path/);
    assert.doesNotMatch(failure.rawMessage, /\[internal\]/);
  });
}
