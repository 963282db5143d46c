import assert from "node:assert/strict";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { cleanContainerPath, resolveInRoot } from "../../src/archive/index.js";
import { Code, TransferError } from "../../src/errors/index.js";
import { makeLayout, modes, useMode } from "./fixtures.js";

test("cleanContainerPath matches Go path.Clean", () => {
  const cases: [string, string][] = [
    ["", ""],
    ["/", ""],
    [".", ""],
    ["./", ""],
    ["..", ""],
    ["../foo", "foo"],
    ["/foo//bar/", "foo/bar"],
    ["/a/./b/../c", "a/c"],
    ["a/../../../b", "b"],
    ["/tmp/a.txt", "tmp/a.txt"],
    ["..foo/..bar", "..foo/..bar"],
  ];
  for (const [input, expected] of cases) {
    assert.equal(cleanContainerPath(input), expected, `input ${input}`);
  }
});

for (const mode of modes) {
  describe(`resolveInRoot in ${mode} mode`, () => {
    test("absolute intermediate symlink stays inside", async (t) => {
      useMode(mode);
      const { root } = await makeLayout(t);
      await mkdir(join(root, "run"));
      await writeFile(join(root, "run", "x"), "");
      await mkdir(join(root, "var"));
      await symlink("/run", join(root, "var", "run"));

      const resolved = await resolveInRoot(root, "/var/run/x");

      assert.equal(resolved, join(root, "run", "x"));
    });

    test("escaping relative symlink is clamped", async (t) => {
      useMode(mode);
      const { root } = await makeLayout(t);
      await mkdir(join(root, "a"));
      await symlink("../../../../outside", join(root, "a", "up"));

      const resolved = await resolveInRoot(root, "a/up/secret");

      assert.equal(resolved, join(root, "outside", "secret"));
    });

    test("final symlink followed only on request", async (t) => {
      useMode(mode);
      const { root } = await makeLayout(t);
      await symlink("/etc/target", join(root, "link"));

      const unfollowed = await resolveInRoot(root, "link");
      const followed = await resolveInRoot(root, "link", { followFinal: true });

      assert.equal(unfollowed, join(root, "link"));
      assert.equal(followed, join(root, "etc", "target"));
    });

    test("final symlink to dot-dot resolves inside", async (t) => {
      useMode(mode);
      const { root } = await makeLayout(t);
      await symlink("..", join(root, "parent"));

      const followed = await resolveInRoot(root, "parent", {
        followFinal: true,
      });

      assert.equal(followed, root);
    });

    test("missing components are appended", async (t) => {
      useMode(mode);
      const { root } = await makeLayout(t);
      await mkdir(join(root, "a"));
      await symlink("/a", join(root, "to-a"));

      const resolved = await resolveInRoot(root, "to-a/missing/../../../x");

      // Go's Clean removes the dot-dots before any lookup.
      assert.equal(resolved, join(root, "x"));
      const deeper = await resolveInRoot(root, "to-a/missing/file");
      assert.equal(deeper, join(root, "a", "missing", "file"));
    });

    test("symlink loop is rejected", async (t) => {
      useMode(mode);
      const { root } = await makeLayout(t);
      await symlink("b", join(root, "a"));
      await symlink("a", join(root, "b"));

      await assert.rejects(
        resolveInRoot(root, "a/x"),
        (error: unknown) =>
          error instanceof TransferError &&
          error.code === Code.InvalidArgument &&
          /more than 40 symlinks/.test(error.message),
      );
    });

    test("missing root is NotFound", async (t) => {
      useMode(mode);
      const { base } = await makeLayout(t);

      await assert.rejects(
        resolveInRoot(join(base, "no-such-root"), "x"),
        (error: unknown) =>
          error instanceof TransferError && error.code === Code.NotFound,
      );
    });
  });
}
