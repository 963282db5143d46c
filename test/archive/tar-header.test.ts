/**
 * The in-place USTAR header writer against node-tar's Header: the same
 * bytes for every header it accepts, and a rejection for every header that
 * plain USTAR fields cannot contain.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Header } from "tar";
import {
  type EntryFields,
  encodeHeader,
  type PackedType,
  writeUstarHeader,
} from "../../src/archive/tar-header.js";
import { fuzzParameters } from "../fuzz/settings.js";

const types: PackedType[] = [
  "File",
  "Directory",
  "SymbolicLink",
  "Link",
  "CharacterDevice",
  "BlockDevice",
  "FIFO",
];

function fields(overrides: Partial<EntryFields> = {}): EntryFields {
  return {
    path: "dir/file.txt",
    type: "File",
    mode: 0o644,
    uid: 1000,
    gid: 1000,
    size: 1234,
    mtime: new Date("2024-05-06T07:08:09Z"),
    ...overrides,
  };
}

function isAsciiWithoutNul(text: string): boolean {
  return [...text].every((char) => char > "\0" && char <= "\x7f");
}

/** Writes the header into a block full of junk, as a reused batch is. */
function written(entry: EntryFields): Buffer | undefined {
  const block = Buffer.alloc(512, 0xa5);
  return writeUstarHeader(entry, block) ? block : undefined;
}

test("plain headers match node-tar byte for byte", () => {
  const cases: EntryFields[] = [
    fields(),
    fields({ type: "Directory", path: "dir/", size: 0, mode: 0o755 }),
    fields({ type: "SymbolicLink", size: 0, linkpath: "../target" }),
    fields({ type: "Link", size: 0, linkpath: "dir/first" }),
    fields({ type: "CharacterDevice", size: 0, devmaj: 1, devmin: 3 }),
    fields({ type: "BlockDevice", size: 0, devmaj: 259, devmin: 65_535 }),
    fields({ type: "FIFO", size: 0, mode: 0o4751 }),
    fields({ uid: 0, gid: 0, size: 0, mtime: new Date(0) }),
    fields({ uid: 0o7777777, gid: 0o7777777, mode: 0o7777 }),
    fields({ size: 0o77777777777, mtime: new Date(0o77777777777 * 1000) }),
    fields({ path: "p".repeat(99) }),
    fields({ mtime: new Date("2024-05-06T07:08:09.999Z") }),
  ];
  for (const entry of cases) {
    const block = written(entry);
    assert.ok(block, `rejected ${JSON.stringify(entry)}`);
    assert.deepEqual(block, encodeHeader(entry), JSON.stringify(entry));
    const parsed = new Header(block);
    assert.equal(parsed.cksumValid, true);
    assert.equal(parsed.path, entry.path);
    assert.equal(parsed.size, entry.size);
  }
});

test("headers beyond plain USTAR are rejected", () => {
  const cases: EntryFields[] = [
    fields({ path: "p".repeat(100) }),
    fields({ path: `${"d".repeat(80)}/${"f".repeat(40)}` }),
    fields({ path: "café" }),
    fields({ path: "nul\0inside" }),
    fields({ type: "SymbolicLink", size: 0, linkpath: "t".repeat(100) }),
    fields({ type: "SymbolicLink", size: 0, linkpath: "ünïcode" }),
    fields({ uid: 0o7777777 + 1 }),
    fields({ gid: 2 ** 32 - 2 }),
    fields({ size: 0o77777777777 + 1 }),
    fields({ mtime: new Date(-1000) }),
    fields({ mtime: new Date((0o77777777777 + 1) * 1000) }),
    fields({ type: "CharacterDevice", size: 0, devmaj: 2 ** 21, devmin: 0 }),
  ];
  for (const entry of cases) {
    assert.equal(written(entry), undefined, JSON.stringify(entry));
  }
});

test("random headers match or are rejected", () => {
  // Mostly printable ASCII, which the writer takes, and some of anything.
  const name = fc.oneof(
    { weight: 3, arbitrary: fc.string({ minLength: 1, maxLength: 110 }) },
    fc.string({ unit: "binary", minLength: 1, maxLength: 120 }),
  );
  const entry = fc.record({
    path: name,
    type: fc.constantFrom(...types),
    mode: fc.integer({ min: 0, max: 0o7777 }),
    uid: fc.oneof(fc.nat(70_000), fc.nat(2 ** 32 - 1)),
    gid: fc.oneof(fc.nat(70_000), fc.nat(2 ** 32 - 1)),
    size: fc.oneof(fc.nat(1 << 20), fc.nat(Number.MAX_SAFE_INTEGER)),
    seconds: fc.integer({ min: -10, max: 0o77777777777 + 10 }),
    linkpath: fc.option(name, { nil: undefined }),
  });
  let accepted = 0;
  fc.assert(
    fc.property(entry, ({ seconds, ...rest }) => {
      const candidate: EntryFields = {
        ...rest,
        mtime: new Date(seconds * 1000),
      };
      const block = written(candidate);
      if (block !== undefined) {
        assert.deepEqual(block, encodeHeader(candidate));
        accepted++;
        return;
      }
      // A rejected header is one that node-tar would not fit in USTAR
      // without a prefix split or a PAX header.
      const header = new Header({ ...candidate });
      const needsPax = header.encode();
      const split = header.block!.subarray(345, 500).some((byte) => byte);
      assert.ok(
        needsPax ||
          split ||
          seconds < 0 ||
          candidate.path.length >= 100 ||
          !isAsciiWithoutNul(candidate.path) ||
          (candidate.linkpath !== undefined &&
            (candidate.linkpath.length >= 100 ||
              !isAsciiWithoutNul(candidate.linkpath))),
        JSON.stringify(candidate),
      );
    }),
    fuzzParameters(300),
  );
  assert.ok(accepted > 30, `${accepted} headers written in place`);
});
