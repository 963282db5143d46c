/**
 * Archives built to escape the container root. Each test checks that
 * nothing outside the root changed, and that the extraction either failed
 * or put the entry inside the root.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import {
  lstat,
  mkdir,
  readFile,
  readlink,
  rename,
  rm,
  symlink,
  unlink,
} from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { Header } from "tar";
import { extractArchive } from "../../src/archive/index.js";
import { Code, TransferError } from "../../src/errors/index.js";
import {
  chunked,
  type Layout,
  makeLayout,
  modes,
  outsideSnapshot,
  type RawEntry,
  rawArchive,
  rawEntry,
  trailer,
  useMode,
} from "./fixtures.js";

type Outcome =
  | { ok: true; entries: number }
  | { ok: false; error: TransferError };

/** Extracts `archive` under `/dest` and returns the outcome. */
async function attempt(layout: Layout, archive: Buffer): Promise<Outcome> {
  try {
    const summary = await extractArchive(
      layout.root,
      "/dest",
      chunked(archive),
    );
    return { ok: true, entries: summary.entries };
  } catch (error) {
    assert.ok(error instanceof TransferError, String(error));
    return { ok: false, error };
  }
}

async function readInside(layout: Layout, path: string): Promise<string> {
  return await readFile(join(layout.root, path), "utf8");
}

function assertFailed(
  outcome: Outcome,
  code: Code,
  pattern: RegExp,
  label = "extraction",
): void {
  assert.equal(outcome.ok, false, `${label} should fail`);
  if (!outcome.ok) {
    assert.equal(outcome.error.code, code, outcome.error.message);
    assert.match(outcome.error.message, pattern);
  }
}

const pwned = (path: string, extra: Partial<RawEntry> = {}): RawEntry => ({
  path,
  body: "pwned",
  ...extra,
});

for (const mode of modes) {
  describe(`hostile archives in ${mode} mode`, () => {
    test("dot-dot names stay inside", async (t) => {
      useMode(mode);
      const layout = await makeLayout(t);
      const before = await outsideSnapshot(layout);

      const outcome = await attempt(
        layout,
        rawArchive([
          pwned("../../outside/pwned"),
          pwned("a/../../../../outside/secret"),
          pwned("./../..//../outside/x"),
        ]),
      );

      assert.deepEqual(await outsideSnapshot(layout), before);
      assert.deepEqual(outcome, { ok: true, entries: 3 });
      assert.equal(await readInside(layout, "dest/outside/pwned"), "pwned");
      assert.equal(await readInside(layout, "dest/outside/secret"), "pwned");
      assert.equal(await readInside(layout, "dest/outside/x"), "pwned");
    });

    test("absolute names stay inside", async (t) => {
      useMode(mode);
      const layout = await makeLayout(t);
      const before = await outsideSnapshot(layout);

      const outcome = await attempt(
        layout,
        rawArchive([pwned(join(layout.outside, "secret")), pwned("/pwned")]),
      );

      assert.deepEqual(await outsideSnapshot(layout), before);
      assert.deepEqual(outcome, { ok: true, entries: 2 });
      const inside = join("dest", layout.outside, "secret");
      assert.equal(await readInside(layout, inside), "pwned");
      assert.equal(await readInside(layout, "dest/pwned"), "pwned");
    });

    test("PAX and GNU names stay inside", async (t) => {
      useMode(mode);
      const layout = await makeLayout(t);
      const before = await outsideSnapshot(layout);
      const longName = Buffer.from("../../../outside/gnu\0");
      const gnu = new Header({
        path: "././@LongLink",
        type: "NextFileHasLongPath",
        size: longName.length,
        mode: 0o644,
      });
      gnu.encode();

      const outcome = await attempt(
        layout,
        Buffer.concat([
          rawEntry(pwned("../../../outside/pax", { pax: true })),
          rawEntry(pwned(join(layout.outside, "abs"), { pax: true })),
          gnu.block!,
          longName,
          Buffer.alloc(512 - longName.length),
          rawEntry(pwned("placeholder")),
          trailer,
        ]),
      );

      assert.deepEqual(await outsideSnapshot(layout), before);
      assert.deepEqual(outcome, { ok: true, entries: 3 });
      assert.equal(await readInside(layout, "dest/outside/pax"), "pwned");
      assert.equal(await readInside(layout, "dest/outside/gnu"), "pwned");
      const abs = join("dest", layout.outside, "abs");
      assert.equal(await readInside(layout, abs), "pwned");
    });

    test("archive symlink then entry through", async (t) => {
      useMode(mode);
      const layout = await makeLayout(t);
      const before = await outsideSnapshot(layout);

      const outcome = await attempt(
        layout,
        rawArchive([
          { path: "abs", type: "SymbolicLink", linkpath: layout.outside },
          pwned("abs/secret"),
          { path: "slash", type: "SymbolicLink", linkpath: "/" },
          pwned(`slash${layout.outside}/via-slash`),
          { path: "up", type: "SymbolicLink", linkpath: "../.." },
          pwned("up/outside/secret"),
        ]),
      );

      assert.deepEqual(await outsideSnapshot(layout), before);
      assert.deepEqual(outcome, { ok: true, entries: 6 });
      // An absolute target starts at the container root.
      const reRooted = join(layout.outside, "secret");
      assert.equal(await readInside(layout, reRooted), "pwned");
      const viaSlash = join(layout.outside, "via-slash");
      assert.equal(await readInside(layout, viaSlash), "pwned");
      // Dot-dot stops at the container root.
      assert.equal(await readInside(layout, "outside/secret"), "pwned");
      assert.equal(await readlink(join(layout.root, "dest/up")), "../..");
    });

    test("escape symlink across two extractions", async (t) => {
      useMode(mode);
      const layout = await makeLayout(t);
      const before = await outsideSnapshot(layout);

      const first = await attempt(
        layout,
        rawArchive([
          { path: "esc", type: "SymbolicLink", linkpath: "../../outside" },
          { path: "abs", type: "SymbolicLink", linkpath: layout.outside },
        ]),
      );
      const second = await attempt(
        layout,
        rawArchive([pwned("esc/secret"), pwned("abs/secret")]),
      );

      assert.deepEqual(await outsideSnapshot(layout), before);
      assert.deepEqual(first, { ok: true, entries: 2 });
      assert.deepEqual(second, { ok: true, entries: 2 });
      assert.equal(await readInside(layout, "outside/secret"), "pwned");
      const reRooted = join(layout.outside, "secret");
      assert.equal(await readInside(layout, reRooted), "pwned");
    });

    test("symlink chains resolve inside", async (t) => {
      useMode(mode);
      const layout = await makeLayout(t);
      const before = await outsideSnapshot(layout);

      const chain = await attempt(
        layout,
        rawArchive([
          { path: "l1", type: "SymbolicLink", linkpath: "l2" },
          { path: "l2", type: "SymbolicLink", linkpath: "sub/l3" },
          { path: "sub/l3", type: "SymbolicLink", linkpath: "../../.." },
          pwned("l1/outside/secret"),
        ]),
      );
      const loop = await attempt(
        layout,
        rawArchive([
          { path: "loop1", type: "SymbolicLink", linkpath: "loop2" },
          { path: "loop2", type: "SymbolicLink", linkpath: "loop1" },
          pwned("loop1/x"),
        ]),
      );

      assert.deepEqual(await outsideSnapshot(layout), before);
      assert.deepEqual(chain, { ok: true, entries: 4 });
      assert.equal(await readInside(layout, "outside/secret"), "pwned");
      assertFailed(loop, Code.InvalidArgument, /more than 40 symlinks/);
    });

    test("hard link outside is rejected", async (t) => {
      useMode(mode);
      const layout = await makeLayout(t);
      const before = await outsideSnapshot(layout);
      const secret = join(layout.outside, "secret");

      const absolute = await attempt(
        layout,
        rawArchive([{ path: "h", type: "Link", linkpath: secret }]),
      );
      const relative = await attempt(
        layout,
        rawArchive([
          { path: "h", type: "Link", linkpath: "../../outside/secret" },
        ]),
      );

      assert.deepEqual(await outsideSnapshot(layout), before);
      assertFailed(absolute, Code.NotFound, /does not exist/);
      assertFailed(relative, Code.NotFound, /"\/dest\/outside"/);
      assert.equal((await lstat(secret)).nlink, 1);
    });

    test("hard link to escaping symlink", async (t) => {
      useMode(mode);
      const layout = await makeLayout(t);
      const before = await outsideSnapshot(layout);
      const secret = join(layout.outside, "secret");

      const outcome = await attempt(
        layout,
        rawArchive([
          { path: "sl", type: "SymbolicLink", linkpath: secret },
          {
            path: "rel",
            type: "SymbolicLink",
            linkpath: "../../outside/secret",
          },
          { path: "hl", type: "Link", linkpath: "sl" },
          { path: "hr", type: "Link", linkpath: "rel" },
          pwned("hl"),
          pwned("rel"),
          { path: "via", type: "Link", linkpath: "sl/../secret" },
        ]),
      );

      assert.deepEqual(await outsideSnapshot(layout), before);
      assert.equal((await lstat(secret)).nlink, 1);
      // The link to `sl/../secret` resolves inside and finds nothing.
      assertFailed(outcome, Code.NotFound, /does not exist/);
      const hr = join(layout.root, "dest", "hr");
      assert.equal((await lstat(hr)).isSymbolicLink(), true);
      assert.equal(await readInside(layout, "dest/hl"), "pwned");
    });

    test("directory over container symlink fails", async (t) => {
      useMode(mode);
      const layout = await makeLayout(t);
      await mkdir(join(layout.root, "dest"));
      await symlink(layout.outside, join(layout.root, "dest", "d"));
      const before = await outsideSnapshot(layout);

      const outcome = await attempt(
        layout,
        rawArchive([
          { path: "d/", type: "Directory", mode: 0o777 },
          pwned("d/secret"),
        ]),
      );

      assert.deepEqual(await outsideSnapshot(layout), before);
      assertFailed(
        outcome,
        Code.FailedPrecondition,
        /non-directory "\/dest\/d"/,
      );
    });

    test("container symlinks are followed inside", async (t) => {
      useMode(mode);
      const layout = await makeLayout(t);
      const dest = join(layout.root, "dest");
      await mkdir(dest);
      await symlink("../../outside", join(dest, "rel"));
      await symlink(layout.outside, join(dest, "abs"));
      await symlink(join(layout.outside, "secret"), join(dest, "file"));
      const before = await outsideSnapshot(layout);

      const outcome = await attempt(
        layout,
        rawArchive([
          pwned("rel/secret"),
          pwned("abs/secret"),
          pwned("file"),
          { path: "h", type: "Link", linkpath: "abs/secret" },
        ]),
      );

      assert.deepEqual(await outsideSnapshot(layout), before);
      assert.deepEqual(outcome, { ok: true, entries: 4 });
      assert.equal(await readInside(layout, "outside/secret"), "pwned");
      const reRooted = join(layout.outside, "secret");
      assert.equal(await readInside(layout, reRooted), "pwned");
      // The file entry replaced the symlink instead of following it.
      assert.equal((await lstat(join(dest, "file"))).isFile(), true);
      assert.equal((await lstat(join(dest, "h"))).nlink, 2);
    });

    test("truncated archives are DataLoss", async (t) => {
      useMode(mode);
      const layout = await makeLayout(t);
      const before = await outsideSnapshot(layout);
      const first = rawEntry({ path: "a", body: "x".repeat(2000) });
      const second = rawEntry({ path: "b", body: "y" });
      const cases: [string, Buffer][] = [
        ["inside a body", first.subarray(0, 512 + 100)],
        ["inside a header", Buffer.concat([first, second.subarray(0, 300)])],
        ["at an entry boundary", Buffer.concat([first, second])],
        ["after one zero block", Buffer.concat([first, Buffer.alloc(512)])],
        ["inside the marker", Buffer.concat([first, Buffer.alloc(700)])],
      ];

      for (const [name, archive] of cases) {
        const outcome = await attempt(layout, archive);
        assertFailed(outcome, Code.DataLoss, /truncated/, name);
      }
      assert.deepEqual(await outsideSnapshot(layout), before);
    });

    test("entries after the marker ignored", async (t) => {
      useMode(mode);
      const layout = await makeLayout(t);
      const before = await outsideSnapshot(layout);

      const outcome = await attempt(
        layout,
        Buffer.concat([
          rawArchive([pwned("inside")]),
          rawArchive([pwned("smuggled"), pwned("../../outside/secret")]),
        ]),
      );

      assert.deepEqual(await outsideSnapshot(layout), before);
      assert.deepEqual(outcome, { ok: true, entries: 1 });
      const smuggled = join(layout.root, "dest", "smuggled");
      await assert.rejects(lstat(smuggled), { code: "ENOENT" });
    });

    test("special files are never created", async (t) => {
      useMode(mode);
      const layout = await makeLayout(t);
      const before = await outsideSnapshot(layout);

      const outcome = await attempt(
        layout,
        rawArchive([
          {
            path: "../../outside/null",
            type: "CharacterDevice",
            devmaj: 1,
            devmin: 3,
          },
          { path: "disk", type: "BlockDevice", devmaj: 8, devmin: 0 },
          { path: "fifo", type: "FIFO", body: "a FIFO with a body" },
        ]),
      );

      assert.deepEqual(await outsideSnapshot(layout), before);
      assert.deepEqual(outcome, { ok: true, entries: 0 });
      for (const path of ["dest/outside/null", "dest/disk", "dest/fifo"]) {
        await assert.rejects(lstat(join(layout.root, path)), {
          code: "ENOENT",
        });
      }
    });
  });
}

const pinnedMode = existsSync("/proc/self/fd");

test("swapped directory never escapes", {
  skip: !pinnedMode && "needs /proc/self/fd",
}, async (t) => {
  useMode("pinned");
  const layout = await makeLayout(t);
  const dest = join(layout.root, "dest");
  await mkdir(join(dest, "d"), { recursive: true });
  const before = await outsideSnapshot(layout);
  const entries = Array.from({ length: 400 }, (_, i) => pwned(`d/f${i}`));
  let done = false;

  // Keeps replacing `d` with a symlink to the outside directory while
  // the extraction writes into it.
  const swapping = (async () => {
    for (let i = 0; i < 100_000 && !done; i++) {
      await rename(join(dest, "d"), join(dest, "real")).catch(() => {});
      await symlink(layout.outside, join(dest, "d")).catch(() => {});
      await new Promise((resolve) => setImmediate(resolve));
      await unlink(join(dest, "d")).catch(() => {});
      await rename(join(dest, "real"), join(dest, "d")).catch(() => {});
    }
  })();
  const outcome = await attempt(layout, rawArchive(entries)).finally(() => {
    done = true;
  });
  await swapping;

  assert.deepEqual(await outsideSnapshot(layout), before);
  if (!outcome.ok) {
    // Losing a race may fail the extraction, but only inside the root.
    assert.notEqual(outcome.error.code, Code.Unknown, outcome.error.message);
  }
  await rm(join(dest, "d"), { recursive: true, force: true });
});
