/**
 * Fuzzes archive extraction with mutated tar archives. Each starts as a
 * valid archive of hostile entries: names with `..`, absolute names, and
 * symlinks and hard links that point out of the container root. Then
 * bytes are flipped, inserted or cut, and header checksums are optionally
 * made valid again.
 * Every run must settle within a bound, succeed or fail with a
 * TransferError, and leave everything outside the container root as it
 * was. The archives go to extractArchive in both directory modes and to
 * a TransferServer over ttrpc.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { Readable } from "node:stream";
import { describe, test } from "node:test";
import fc from "fast-check";
import { extractArchive } from "../../src/archive/index.js";
import { TransferError } from "../../src/errors/index.js";
import { ContainerPath, ReadStream } from "../../src/transfer/index.js";
import {
  chunked,
  modes,
  type RawEntry,
  rawArchive,
  snapshot,
  useMode,
} from "../archive/fixtures.js";
import { startEndpoint } from "../helpers/endpoint.js";
import { fuzzParameters, withinMs } from "./settings.js";

/** Placeholder for the host path of the folder next to the root. */
const outsideToken = "{OUTSIDE}";

const entryNames = [
  "a",
  "a/b",
  "a/b/c",
  "dest",
  "../a",
  "../../../escaped",
  "/abs",
  "/abs/deeper",
  "./a/../..",
  "a//b/",
  ".",
  "..",
  "up/x",
  "host/x",
  "link",
  "link/x",
  "hard",
  `${"long/".repeat(30)}name`,
];

const linkTargets = [
  "..",
  "../outside",
  "../../outside/secret",
  outsideToken,
  `${outsideToken}/secret`,
  "/",
  "/etc/passwd",
  "a",
  "a/b",
  "up",
  "link",
  "missing",
];

const entryTypes = [
  "File",
  "Directory",
  "SymbolicLink",
  "Link",
  "FIFO",
  "CharacterDevice",
] as const;

interface EntrySpec {
  path: string;
  type: (typeof entryTypes)[number];
  linkpath: string;
  body: Uint8Array;
  mode: number;
  pax: boolean;
}

const entrySpec: fc.Arbitrary<EntrySpec> = fc.record({
  path: fc.constantFrom(...entryNames),
  type: fc.constantFrom(...entryTypes),
  linkpath: fc.constantFrom(...linkTargets),
  body: fc.uint8Array({ maxLength: 1500 }),
  mode: fc.constantFrom(0o644, 0o755, 0o4755, 0o000, 0o7777),
  pax: fc.boolean(),
});

/** One change to the encoded archive, at a fraction of its length. */
type Mutation =
  | { kind: "set"; at: number; byte: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "cut"; at: number; length: number }
  | { kind: "truncate"; at: number }
  | { kind: "field"; block: number; field: number; text: string };

// Offsets of the USTAR header fields worth breaking: name, mode, uid,
// size, mtime, checksum, typeflag, linkname, magic and prefix.
const headerFields = [0, 100, 108, 124, 136, 148, 156, 157, 257, 345];

// Unbiased, because fast-check's default bias towards 0 would cut most
// archives to nothing.
const fraction = fc
  .noBias(fc.integer({ min: 0, max: 1_000_000 }))
  .map((n) => n / 1_000_000);

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant("set" as const),
    at: fraction,
    byte: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fraction,
    bytes: fc.uint8Array({ minLength: 1, maxLength: 600 }),
  }),
  fc.record({
    kind: fc.constant("cut" as const),
    at: fraction,
    length: fc.integer({ min: 1, max: 1100 }),
  }),
  fc.record({
    kind: fc.constant("truncate" as const),
    at: fraction,
  }),
  fc.record({
    kind: fc.constant("field" as const),
    block: fc.nat({ max: 12 }),
    field: fc.constantFrom(...headerFields),
    text: fc.oneof(
      fc.constantFrom(
        "77777777777",
        "00000000000",
        "-1",
        "\u0080\u0000\u0000\u0000\u00ff\u00ff\u00ff\u00ff",
        "../../../../x",
        "/",
        "1",
        "2",
        "5",
        "L",
        "K",
        "x",
        "g",
        "ustar  \u0000",
      ),
      fc.string({ maxLength: 12 }),
    ),
  }),
);

interface Case {
  entries: EntrySpec[];
  mutations: Mutation[];
  fixChecksums: boolean;
  chunkBytes: number;
  destination: string;
}

const fuzzCase: fc.Arbitrary<Case> = fc.record({
  entries: fc.array(entrySpec, { minLength: 1, maxLength: 8 }),
  mutations: fc.array(mutation, { maxLength: 4 }),
  // Mostly true, so that mutated headers get past the checksum check and
  // reach the entry writer.
  fixChecksums: fc.oneof(
    { weight: 3, arbitrary: fc.constant(true) },
    { weight: 1, arbitrary: fc.constant(false) },
  ),
  chunkBytes: fc.constantFrom(1, 100, 512, 700, 4096, 65_536),
  destination: fc.constantFrom("/", "/dest", "/up", "/host", "/../x", "/a/b"),
});

function encodeArchive(entries: EntrySpec[], outside: string): Buffer {
  const raw = entries.map((entry): RawEntry => {
    const linkpath = entry.linkpath.replace(outsideToken, outside);
    const init: RawEntry = {
      path: entry.path,
      type: entry.type,
      mode: entry.mode,
      pax: entry.pax,
    };
    if (entry.type === "File") {
      init.body = Buffer.from(entry.body);
    }
    if (entry.type === "SymbolicLink" || entry.type === "Link") {
      init.linkpath = linkpath;
    }
    if (entry.type === "CharacterDevice") {
      init.devmaj = 1;
      init.devmin = 3;
    }
    return init;
  });
  return rawArchive(raw);
}

function mutate(archive: Buffer, mutations: Mutation[]): Buffer {
  let bytes = Buffer.from(archive);
  for (const change of mutations) {
    const position = (fraction: number) =>
      Math.min(bytes.length, Math.floor(fraction * bytes.length));
    switch (change.kind) {
      case "set":
        if (bytes.length > 0) {
          bytes[Math.min(bytes.length - 1, position(change.at))] = change.byte;
        }
        break;
      case "insert": {
        const split = position(change.at);
        bytes = Buffer.concat([
          bytes.subarray(0, split),
          change.bytes,
          bytes.subarray(split),
        ]);
        break;
      }
      case "cut": {
        const start = position(change.at);
        bytes = Buffer.concat([
          bytes.subarray(0, start),
          bytes.subarray(start + change.length),
        ]);
        break;
      }
      case "truncate":
        bytes = bytes.subarray(0, position(change.at));
        break;
      case "field": {
        const offset = change.block * 512 + change.field;
        if (offset < bytes.length) {
          bytes.write(change.text, offset, "latin1");
        }
        break;
      }
    }
  }
  return bytes;
}

/** Recomputes the checksum of every 512-byte block that has a tar magic. */
function fixChecksums(bytes: Buffer): void {
  for (let offset = 0; offset + 512 <= bytes.length; offset += 512) {
    const magic = bytes.toString("latin1", offset + 257, offset + 262);
    if (magic !== "ustar") {
      continue;
    }
    bytes.fill(0x20, offset + 148, offset + 156);
    let sum = 0;
    for (let i = offset; i < offset + 512; i++) {
      sum += bytes[i]!;
    }
    bytes.write(
      `${sum.toString(8).padStart(6, "0")}\u0000 `,
      offset + 148,
      "latin1",
    );
  }
}

function buildArchive(fuzz: Case, outside: string): Buffer {
  const bytes = mutate(encodeArchive(fuzz.entries, outside), fuzz.mutations);
  if (fuzz.fixChecksums) {
    fixChecksums(bytes);
  }
  return bytes;
}

/**
 * Creates `base/rootfs` (the container root, with symlinks that point out
 * of it) and `base/outside/secret`.
 */
async function makeContainer(base: string): Promise<{
  root: string;
  outside: string;
}> {
  const root = join(base, "rootfs");
  const outside = join(base, "outside");
  await mkdir(root, { recursive: true });
  await mkdir(outside);
  await writeFile(join(outside, "secret"), "secret\n", { mode: 0o600 });
  await symlink("../outside", join(root, "up"));
  await symlink(outside, join(root, "host"));
  await mkdir(join(root, "dest"));
  return { root, outside };
}

/**
 * Runs `extract` and checks that it settled with success or a
 * TransferError, and that nothing outside `base/rootfs` changed, in `base`
 * or next to it.
 */
async function checkContained(
  base: string,
  extract: () => Promise<unknown>,
): Promise<void> {
  const parent = dirname(base);
  const baseName = basename(base);
  const before = await snapshot(base, ["rootfs"]);
  const parentBefore = await snapshot(parent, [baseName]);

  try {
    await withinMs(extract(), 10_000, "extraction");
  } catch (error) {
    assert.ok(
      error instanceof TransferError,
      `failed with a non-TransferError: ${String(error)}`,
    );
  }

  assert.deepEqual(await snapshot(base, ["rootfs"]), before);
  assert.deepEqual(await snapshot(parent, [baseName]), parentBefore);
}

for (const mode of modes) {
  test(`extractArchive contains mutations, ${mode} mode`, async (t) => {
    // Each run removes its base before the next one starts, so the base is
    // alone in `parent` and the parent's snapshot shows anything written
    // next to it.
    const parent = await mkdtemp(join(tmpdir(), "archive-fuzz-"));
    t.after(() => rm(parent, { recursive: true, force: true }));
    useMode(mode);
    let runs = 0;
    try {
      await fc.assert(
        fc.asyncProperty(fuzzCase, async (fuzz) => {
          const base = join(parent, `run-${runs++}`);
          const { root, outside } = await makeContainer(base);
          const archive = buildArchive(fuzz, outside);
          try {
            await checkContained(base, () =>
              extractArchive(
                root,
                fuzz.destination,
                chunked(archive, fuzz.chunkBytes),
              ),
            );
          } finally {
            await rm(base, { recursive: true, force: true });
          }
        }),
        fuzzParameters(150),
      );
    } finally {
      useMode("pinned");
    }
  });
}

describe("server extraction", () => {
  test("server contains mutated archives", async (t) => {
    const endpoint = await startEndpoint(t, "ttrpc");
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(fuzzCase, async (fuzz) => {
        const id = `fuzz-${runs++}`;
        const base = join(endpoint.root, id);
        const { outside } = await makeContainer(base);
        const archive = buildArchive(fuzz, outside);
        try {
          await checkContained(base, () =>
            endpoint.client.transfer(
              new ReadStream(Readable.from([archive])),
              new ContainerPath({ containerId: id, path: fuzz.destination }),
            ),
          );
        } finally {
          await rm(base, { recursive: true, force: true });
        }
      }),
      fuzzParameters(60),
    );
    assert.equal(endpoint.server.registry.size, 0);
  });
});
