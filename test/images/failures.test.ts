/**
 * Image operations that must fail, and how: unknown names, malformed
 * archives, and archives whose names the options drop.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  exportImage,
  getImage,
  importImage,
  tagImage,
} from "../../src/client/index.js";
import { ociArchive, patternBytes, tar } from "./archives.js";
import { memorySink, openDaemon } from "./daemon.js";

/** Returns a check for assert.rejects on an error's kind and message. */
function failure(kind: string, message: RegExp) {
  return (error: { kind?: string; message?: string }) => {
    assert.equal(error.kind, kind, error.message);
    assert.match(error.message ?? "", message);
    return true;
  };
}

test("unknown image is not found", async (t) => {
  const daemon = openDaemon(t);
  if (!daemon) {
    return;
  }
  const unknown = daemon.name("unknown:1");
  const { sink } = memorySink();

  await assert.rejects(
    exportImage(daemon.client, [unknown], sink),
    failure("not found", new RegExp(`image "${unknown}": not found`)),
  );
  await assert.rejects(
    tagImage(daemon.client, unknown, daemon.name("never:1")),
    failure("not found", /not found/),
  );
  await assert.rejects(
    getImage(daemon.client, unknown),
    failure("not found", /not found/),
  );
});

const layout = Buffer.from('{"imageLayoutVersion":"1.0.0"}');
const missingDigest = `sha256:${"a".repeat(64)}`;
const malformed: [string, () => Buffer, string, RegExp][] = [
  [
    "shorter than a header",
    () => Buffer.from("garbage\n"),
    "invalid argument",
    /only 8 bytes/,
  ],
  [
    "not a tar",
    () => patternBytes(4096, 3),
    "invalid argument",
    /neither a tar header nor the start of gzip or zstd data/,
  ],
  [
    "cut inside a blob",
    () =>
      ociArchive({
        name: "x.test/cut:1",
        fileBytes: 300_000,
        seed: 4,
      }).bytes.subarray(0, 200_000),
    "data loss",
    /truncated: it ended after 200000 bytes/,
  ],
  [
    "without image files",
    () => tar([["hello.txt", Buffer.from("hello\n")]]),
    "unknown",
    /unrecognized image format/,
  ],
  [
    "with invalid index.json",
    () =>
      tar([
        ["oci-layout", layout],
        ["index.json", Buffer.from("{not json")],
      ]),
    "unknown",
    /invalid character/,
  ],
  [
    "with a missing blob",
    () =>
      tar([
        ["oci-layout", layout],
        [
          "index.json",
          Buffer.from(
            JSON.stringify({
              schemaVersion: 2,
              manifests: [
                {
                  mediaType: "application/vnd.oci.image.manifest.v1+json",
                  digest: missingDigest,
                  size: 10,
                  annotations: { "io.containerd.image.name": "x.test/m:1" },
                },
              ],
            }),
          ),
        ],
      ]),
    "not found",
    new RegExp(`content digest ${missingDigest}: not found`),
  ],
];

for (const [label, build, kind, message] of malformed) {
  test(`archive ${label} fails`, async (t) => {
    const daemon = openDaemon(t);
    if (!daemon) {
      return;
    }

    await assert.rejects(
      importImage(daemon.client, [build()]),
      failure(
        kind,
        new RegExp(`^\\[\\w+\\] image import failed: .*${message.source}`),
      ),
    );
  });
}

test("archive with dropped names fails", async (t) => {
  const daemon = openDaemon(t);
  if (!daemon) {
    return;
  }
  const archive = ociArchive({
    name: daemon.name("dropped:1"),
    fileBytes: 10_000,
    seed: 5,
  });
  daemon.cleanUp(archive.name);

  await assert.rejects(
    importImage(daemon.client, [archive.bytes], {
      baseName: "other.test/elsewhere",
    }),
    failure("not found", /names no image to store/),
  );
  await assert.rejects(
    getImage(daemon.client, archive.name),
    failure("not found", /not found/),
  );
});

test("archive without wanted platform fails", async (t) => {
  const daemon = openDaemon(t);
  if (!daemon) {
    return;
  }
  const archive = ociArchive({
    name: daemon.name("platform:1"),
    fileBytes: 10_000,
    seed: 6,
  });
  daemon.cleanUp(archive.name);

  await assert.rejects(
    importImage(daemon.client, [archive.bytes], {
      platforms: ["windows/amd64"],
    }),
    failure("unknown", /image might be filtered out/),
  );
});
