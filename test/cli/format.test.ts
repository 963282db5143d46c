import assert from "node:assert/strict";
import { test } from "node:test";
import { printable } from "../../src/cli/format.js";
import { formatImageTable } from "../../src/cli/image.js";
import { formatStat } from "../../src/cli/stat.js";

test("printable escapes control characters", () => {
  assert.equal(printable("a\u001b]0;X\u0007b"), "a\\x1b]0;X\\x07b");
  assert.equal(printable("line\nnext\u007f\u0085"), "line\\x0anext\\x7f\\x85");
  assert.equal(printable("plain é ✓"), "plain é ✓");
});

test("stat text escapes names", () => {
  const text = formatStat("c1:/lnk", {
    name: "lnk\u001b[2J",
    type: "symlink",
    size: 0,
    mode: 0o777,
    mtime: new Date(0),
    linkTarget: "/x\u001b[2J",
    uid: 0,
    gid: 0,
  });

  assert.match(text, /^name: lnk\\x1b\[2J$/m);
  assert.match(text, /^link target: \/x\\x1b\[2J$/m);
  assert.ok(!text.includes("\u001b"), text);
});

test("image table escapes names", () => {
  const table = formatImageTable([
    {
      name: "example.test/x:1\u001b]0;T\u0007",
      labels: {},
      target: {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: `sha256:${"a".repeat(64)}`,
        sizeBytes: 1,
        annotations: {},
      },
      createdAt: undefined,
      updatedAt: undefined,
    },
  ]);

  assert.ok(!table.includes("\u001b"), "raw escape in the table");
  assert.match(table, /^example\.test\/x:1\\x1b\]0;T\\x07 {2}oci-manifest/m);
});
