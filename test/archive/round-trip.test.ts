import assert from "node:assert/strict";
import {
  chmod,
  link,
  lstat,
  lutimes,
  mkdir,
  readlink,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { extractArchive, packPath } from "../../src/archive/index.js";
import {
  makeLayout,
  modes,
  outsideSnapshot,
  snapshot,
  useMode,
} from "./fixtures.js";

const fileTime = new Date("2001-02-03T04:05:06Z");
const dirTime = new Date("2002-03-04T05:06:07Z");
const linkTime = new Date("2003-04-05T06:07:08Z");

const longDir = "long-directory-".padEnd(120, "x");
const deepFile = `${"deep-file-".padEnd(150, "y")}.txt`;
// Names over 100 bytes travel in PAX records, where a newline is data.
const newlineFile = `line\nbreak-${"n".repeat(110)}`;
const newlineTarget = `target\nbreak-${"t".repeat(110)}`;

/** Builds a tree with every kind of entry the round trip must keep. */
async function buildTree(top: string): Promise<void> {
  await mkdir(join(top, "a", "b", "c"), { recursive: true });
  await mkdir(join(top, "empty"));
  await mkdir(join(top, longDir));
  await writeFile(join(top, longDir, deepFile), "deep");
  await writeFile(join(top, "a", "b", "c", "leaf.txt"), "leaf\n");
  await writeFile(join(top, "héllo wörld 日本.txt"), "unicode");
  await writeFile(join(top, "emoji-🎉"), "party");
  await writeFile(join(top, "private"), "0600", { mode: 0o600 });
  await writeFile(join(top, "script"), "0755", { mode: 0o755 });
  await writeFile(join(top, "plain"), "0644", { mode: 0o644 });
  await writeFile(join(top, "setuid"), "4755");
  await chmod(join(top, "setuid"), 0o4755);
  await chmod(join(top, "private"), 0o600);
  await writeFile(join(top, "big"), Buffer.alloc(300 * 1024, 7));
  await writeFile(join(top, "hard-1"), "linked");
  await link(join(top, "hard-1"), join(top, "hard-2"));
  await symlink("../a/b/c/leaf.txt", join(top, "a", "relative"));
  await symlink("/etc/hostname", join(top, "absolute"));
  await writeFile(join(top, newlineFile), "newline");
  await writeFile(join(top, `${newlineFile}\nother`), "another newline");
  await link(join(top, newlineFile), join(top, "newline-hard"));
  await symlink(newlineTarget, join(top, "newline-link"));

  for (const path of ["plain", "a/b/c/leaf.txt", "big", "setuid"]) {
    await utimes(join(top, path), fileTime, fileTime);
  }
  await lutimes(join(top, "absolute"), linkTime, linkTime);
  for (const path of ["a/b/c", "a/b", "a", "empty"]) {
    await utimes(join(top, path), dirTime, dirTime);
  }
}

for (const mode of modes) {
  describe(`round trip in ${mode} mode`, () => {
    test("tree survives pack and extract", async (t) => {
      useMode(mode);
      const source = await makeLayout(t);
      const target = await makeLayout(t);
      await buildTree(join(source.root, "src"));
      const before = await outsideSnapshot(target);

      const summary = await extractArchive(
        target.root,
        "/restored",
        packPath(source.root, "/src"),
      );

      const restored = join(target.root, "restored", "src");
      const expected = await snapshot(join(source.root, "src"));
      expected.set("setuid", expected.get("setuid")!.replace("4755", "755"));
      assert.deepEqual(await snapshot(restored), expected);
      assert.equal(summary.entries, expected.size + 1);
      assert.equal(summary.skipped, 0);
      assert.deepEqual(await outsideSnapshot(target), before);
    });

    test("times, links and modes restored", async (t) => {
      useMode(mode);
      const source = await makeLayout(t);
      const target = await makeLayout(t);
      await buildTree(join(source.root, "src"));

      await extractArchive(target.root, "/", packPath(source.root, "src"));

      const top = join(target.root, "src");
      const seconds = (date: Date) => Math.floor(date.getTime() / 1000);
      for (const path of ["plain", "a/b/c/leaf.txt", "big"]) {
        const stats = await lstat(join(top, path));
        assert.equal(seconds(stats.mtime), seconds(fileTime), path);
      }
      for (const path of ["a/b/c", "a/b", "a", "empty"]) {
        const stats = await lstat(join(top, path));
        assert.equal(seconds(stats.mtime), seconds(dirTime), path);
      }
      const absolute = await lstat(join(top, "absolute"));
      assert.equal(seconds(absolute.mtime), seconds(linkTime));
      assert.equal(await readlink(join(top, "absolute")), "/etc/hostname");
      assert.equal(
        await readlink(join(top, "a", "relative")),
        "../a/b/c/leaf.txt",
      );

      const first = await lstat(join(top, "hard-1"));
      const second = await lstat(join(top, "hard-2"));
      assert.equal(first.ino, second.ino);
      assert.equal(first.nlink, 2);

      const modesByPath: [string, number][] = [
        ["private", 0o600],
        ["script", 0o755],
        ["plain", 0o644],
        ["setuid", 0o755],
      ];
      for (const [path, expected] of modesByPath) {
        const stats = await lstat(join(top, path));
        assert.equal(stats.mode & 0o7777, expected, path);
      }
    });

    test("packed root extracts unprefixed", async (t) => {
      useMode(mode);
      const source = await makeLayout(t);
      const target = await makeLayout(t);
      await mkdir(join(source.root, "bin"));
      await writeFile(join(source.root, "bin", "sh"), "#!");

      const summary = await extractArchive(
        target.root,
        "/copy",
        packPath(source.root, "/"),
      );

      assert.deepEqual(
        [...(await snapshot(join(target.root, "copy"))).keys()],
        ["bin", "bin/sh"],
      );
      assert.equal(summary.skipped, 1);
    });
  });
}
