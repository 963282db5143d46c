/**
 * The demo command and the tree summaries it verifies with: hard links
 * count once and must come back as hard links.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { link, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { formatBytes } from "../../src/cli/format.js";
import { compareTrees, summarizeTree } from "../../src/cli/tree.js";
import { mainScript } from "./harness.js";

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "ct-demo-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function runDemo(source: string): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [mainScript, "demo", "--source", source],
      { timeout: 60_000 },
      (error, stdout) => {
        const code = error === null ? 0 : error.code;
        resolve({ code: typeof code === "number" ? code : -1, stdout });
      },
    );
  });
}

test("demo counts hard-linked bytes once", async (t) => {
  const source = await tempDir(t);
  await writeFile(join(source, "a"), Buffer.alloc(3000, 1));
  await link(join(source, "a"), join(source, "b"));
  await writeFile(join(source, "c"), Buffer.alloc(500, 2));

  const { code, stdout } = await runDemo(source);

  assert.equal(code, 0, stdout);
  assert.match(stdout, new RegExp(`: 3 files, .*, ${formatBytes(3500)}\\n`));
  assert.match(stdout, /verified: all 4 entries match/);
});

test("tree comparison needs hard links kept", async (t) => {
  const linked = await tempDir(t);
  await writeFile(join(linked, "a"), "same");
  await link(join(linked, "a"), join(linked, "b"));
  const copied = await tempDir(t);
  await writeFile(join(copied, "a"), "same");
  await writeFile(join(copied, "b"), "same");

  const expected = await summarizeTree(linked);
  const actual = await summarizeTree(copied);

  assert.deepEqual(compareTrees(expected, actual), [
    "b: expected a hard link to a",
  ]);
  assert.deepEqual(compareTrees(actual, expected), [
    "b: hard link to a, expected a file of its own",
  ]);
  assert.deepEqual(compareTrees(expected, expected), []);
});
