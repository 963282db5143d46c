/**
 * The demo command and the tree summaries it verifies with: hard links
 * count once and must come back as hard links.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { link, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { promisify } from "node:util";
import { formatBytes } from "../../src/cli/format.js";
import { compareTrees, summarizeTree } from "../../src/cli/tree.js";
import { mainScript } from "./harness.js";

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "ct-demo-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

interface DemoResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the demo on `source`, calling `onStdout` with the process and its output so far. */
function runDemo(
  source: string,
  onStdout?: (child: ChildProcess, text: string) => void,
): Promise<DemoResult> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [mainScript, "demo", "--source", source],
      { timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : error.code;
        resolve({ code: typeof code === "number" ? code : -1, stdout, stderr });
      },
    );
    let seen = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      seen += chunk.toString();
      onStdout?.(child, seen);
    });
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

test("demo verifies a tree with a name that is not UTF-8", async (t) => {
  const source = await tempDir(t);
  await writeFile(join(source, "a"), "kept");
  // 0xfe never occurs in UTF-8; the copy skips the file with a warning.
  await writeFile(
    Buffer.concat([Buffer.from(`${source}/bad`), Buffer.from([0xfe])]),
    "skipped",
  );

  const { code, stdout } = await runDemo(source);

  assert.equal(code, 0, stdout);
  assert.match(stdout, /verified: all 2 entries match/);
});

test("interrupted demo exits 130 and cleans up", async (t) => {
  const source = await tempDir(t);
  // The tree is large enough that the demo is still running when the
  // signal arrives.
  for (let folder = 0; folder < 20; folder++) {
    await mkdir(join(source, `d${folder}`));
    for (let file = 0; file < 100; file++) {
      await writeFile(join(source, `d${folder}`, `f${file}`), "x".repeat(900));
    }
  }
  let work: string | undefined;

  const { code, stderr } = await runDemo(source, (child, text) => {
    const server = /server: ttrpc on (\S+)\/transfer\.sock/.exec(text);
    if (server !== null && work === undefined) {
      work = server[1];
      child.kill("SIGINT");
    }
  });

  assert.equal(code, 130, stderr);
  assert.ok(work !== undefined, "the demo printed no server line");
  assert.equal(existsSync(work), false, `${work} was left behind`);
});

test("demo without a source folder exits 2", async (t) => {
  const dir = await tempDir(t);

  const { code, stderr } = await runDemo(join(dir, "absent"));

  assert.equal(code, 2, stderr);
  assert.match(stderr, /invalid demo source ".*absent": no such directory/);
});

test("demo follows a symlinked source", async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, "real"));
  await writeFile(join(dir, "real", "a"), "one");
  await writeFile(join(dir, "real", "b"), "two");
  await symlink("real", join(dir, "link"));

  const { code, stdout } = await runDemo(join(dir, "link"));

  assert.equal(code, 0, stdout);
  assert.match(stdout, /: 2 files, 1 directories/);
  assert.match(stdout, /verified: all 3 entries match/);
});

test("demo leaves out what a copy skips", async (t) => {
  const source = await tempDir(t);
  await writeFile(join(source, "a"), "one");
  await promisify(execFile)("mkfifo", [join(source, "fifo")]);

  const { code, stdout } = await runDemo(source);

  assert.equal(code, 0, stdout);
  assert.match(stdout, /; 1 devices, FIFOs or sockets, which a copy skips/);
  assert.match(stdout, /warning: skipped FIFO ".*fifo"/);
  assert.match(stdout, /verified: all 2 entries match/);
});
