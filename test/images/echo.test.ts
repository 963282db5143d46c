/**
 * containerd 1.7's echo transferrer (ImageImportStream to
 * ImageExportStream) copies bytes back unchanged and then ends the export
 * stream. Raw payloads check the byte streams at the Go chunk (32 KiB) and
 * window (64 KiB) sizes. Tar payloads check that the export end of
 * exportImage ends at the end-of-archive marker.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type Any, packAny } from "../../src/any/index.js";
import { ImageExportSink } from "../../src/client/image-ends.js";
import { ImageExportStreamSchema } from "../../src/gen/containerd/types/transfer/importexport_pb.js";
import {
  type ByteSink,
  receiveBytes,
  type Stream,
} from "../../src/streaming/index.js";
import { ImageImportStream } from "../../src/transfer/index.js";
import { StreamEnd } from "../../src/transfer/stream-end.js";
import { patternBytes, tar } from "./archives.js";
import { memorySink, openDaemon } from "./daemon.js";

const kib = 1024;
const rawSizes = [
  0,
  1,
  32 * kib - 1,
  32 * kib,
  32 * kib + 1,
  64 * kib - 1,
  64 * kib,
  64 * kib + 1,
  5 * 1024 * kib + 3,
];

/**
 * The export end of the echo, read until containerd ends the stream
 * rather than until a tar trailer, so any payload can come back.
 */
class RawExportStream extends StreamEnd {
  protected readonly purpose = "export";
  readonly #sink: ByteSink;

  constructor(sink: ByteSink) {
    super();
    this.#sink = sink;
  }

  protected describe(streamId: string): Any {
    return packAny(ImageExportStreamSchema, { stream: streamId });
  }

  protected async pump(stream: Stream, signal: AbortSignal): Promise<void> {
    await receiveBytes(stream, this.#sink, { signal });
  }
}

for (const size of rawSizes) {
  test(`echo returns ${size} raw bytes`, async (t) => {
    const daemon = openDaemon(t);
    if (!daemon) {
      return;
    }
    const payload = patternBytes(size, size + 1);
    const { sink, bytes } = memorySink();

    await daemon.client.transfer(
      new ImageImportStream([payload]),
      new RawExportStream(sink),
    );

    assert.equal(bytes().length, size);
    assert.ok(bytes().equals(payload), "the echoed bytes differ");
  });
}

// Whole archives of exactly 32 KiB and 64 KiB (header, body, padding and
// the two-block trailer), bodies at the chunk edges, and a large one.
const tarBodySizes = [
  0,
  1,
  32 * kib - 1536,
  64 * kib - 1536,
  32 * kib + 1,
  64 * kib + 1,
  4 * 1024 * kib + 100,
];

for (const bodySize of tarBodySizes) {
  test(`echo returns tar of ${bodySize} bytes`, async (t) => {
    const daemon = openDaemon(t);
    if (!daemon) {
      return;
    }
    const archive = tar([["payload.bin", patternBytes(bodySize, bodySize)]]);
    const { sink, bytes } = memorySink();

    await daemon.client.transfer(
      new ImageImportStream([archive]),
      new ImageExportSink(sink),
    );

    assert.equal(bytes().length, archive.length);
    assert.ok(bytes().equals(archive), "the echoed archive differs");
  });
}

test("echo of cut tar is data loss", async (t) => {
  const daemon = openDaemon(t);
  if (!daemon) {
    return;
  }
  const archive = tar([["payload.bin", patternBytes(100 * kib, 7)]]);
  const cut = archive.subarray(0, archive.length - 1024);
  const { sink } = memorySink();

  await assert.rejects(
    daemon.client.transfer(
      new ImageImportStream([cut]),
      new ImageExportSink(sink),
    ),
    (error: { kind?: string; message?: string }) => {
      assert.equal(error.kind, "data loss");
      assert.match(error.message ?? "", /end-of-archive marker/);
      return true;
    },
  );
});
