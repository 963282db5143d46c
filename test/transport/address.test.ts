/**
 * Client addresses and the life of an idle client's connection.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";
import { Code, connect, TransferError } from "../../src/index.js";
import { protocols, startEndpoint } from "../helpers/endpoint.js";

test("an address that names no socket is refused", () => {
  for (const address of ["", "unix://"]) {
    for (const protocol of protocols) {
      assert.throws(
        () => connect({ address, protocol }),
        (error: unknown) =>
          error instanceof TransferError && error.code === Code.InvalidArgument,
        `${protocol} ${JSON.stringify(address)}`,
      );
    }
  }
});

for (const protocol of protocols) {
  test(`an idle client that was never closed lets the process exit over ${protocol}`, async (t) => {
    const endpoint = await startEndpoint(t, protocol);
    await endpoint.addContainer("c1");
    const index = new URL("../../src/index.js", import.meta.url).href;
    const program =
      `const { connect, statContainerPath } = await import(${JSON.stringify(index)});\n` +
      `const client = connect(${JSON.stringify({ address: endpoint.socket, protocol })});\n` +
      'const stat = await statContainerPath(client, { containerId: "c1", path: "/" });\n' +
      "console.log(stat.type);\n";

    // The child hangs, and the timeout kills it, if the connection keeps
    // the event loop open.
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--input-type=module", "-e", program],
      { timeout: 20_000, killSignal: "SIGKILL" },
    );

    assert.equal(stdout.trim(), "directory");
  });
}
