/**
 * Numeric options of the public API: a value that is not an integer in
 * the stated range fails at once with InvalidArgument naming the option,
 * the value and the range, instead of failing the transfer later.
 */
import assert from "node:assert/strict";
import { Readable, Writable } from "node:stream";
import { test } from "node:test";
import { Code, TransferError } from "../../src/errors/index.js";
import { TransferServer } from "../../src/server/index.js";
import {
  ContainerPath,
  ImageExportStream,
  ReadStream,
  WriteStream,
} from "../../src/transfer/index.js";
import { startEndpoint } from "../helpers/endpoint.js";

/** Asserts InvalidArgument naming `option`, the value and a range. */
function invalidOption(option: string, value: string, range: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof TransferError, String(error));
    assert.equal(error.code, Code.InvalidArgument, error.message);
    assert.ok(error.message.includes(`${option}: ${value}`), error.message);
    assert.match(error.message, range);
    return true;
  };
}

const source = () => Readable.from([Buffer.from("abc")]);
const sink = () => new Writable({ write: (_chunk, _encoding, done) => done() });

test("NaN maxChunkBytes is invalid", () => {
  assert.throws(
    () => new ReadStream(source(), undefined, { maxChunkBytes: Number.NaN }),
    invalidOption("maxChunkBytes", "NaN", /from 1 to 1048576$/),
  );
});

test("windowBytes range is integer", () => {
  assert.throws(
    () => new WriteStream(sink(), undefined, { windowBytes: 2 ** 30 }),
    invalidOption("windowBytes", "1073741824", /from 1 to 1073741823$/),
  );
});

test("server windowBytes checked without containers", () => {
  assert.throws(
    () => new TransferServer({ windowBytes: 0 }),
    invalidOption("windowBytes", "0", /from 1 to 1073741823$/),
  );
});

test("huge idleTimeoutMs is invalid", () => {
  assert.throws(
    () => new ImageExportStream(sink(), { idleTimeoutMs: 2 ** 40 }),
    invalidOption("idleTimeoutMs", "1099511627776", /to 2147483647$/),
  );
});

test("huge progressGraceMs is invalid", async (t) => {
  const endpoint = await startEndpoint(t, "ttrpc");
  await endpoint.addContainer("c1");
  const warnings: string[] = [];
  const onWarning = (warning: Error) => warnings.push(warning.name);
  process.on("warning", onWarning);
  t.after(() => process.off("warning", onWarning));

  await assert.rejects(
    endpoint.client.transfer(
      new ReadStream(source()),
      new ContainerPath({ containerId: "c1", path: "/" }),
      { progressGraceMs: 2 ** 40, onProgress: () => {} },
    ),
    invalidOption("progressGraceMs", "1099511627776", /from 0 to 2147483647$/),
  );
  assert.deepEqual(warnings, []);
});
