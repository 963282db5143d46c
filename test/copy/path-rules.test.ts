/**
 * The `docker cp` path rules, each row in both directions through the
 * `cp` command's code. Copy in takes the source from a local folder and
 * writes to the container, and copy out does the reverse with the same
 * trees.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type CopyFlags, runCopy } from "../../src/cli/cp.js";
import {
  type CopyEndpoint,
  containerId,
  readTree,
  sortTree,
  startCopyEndpoint,
  type Tree,
  writeTree,
} from "./harness.js";

type Direction = "in" | "out";

interface Row {
  name: string;
  /** Tree on the source side. */
  source: Tree;
  /** Tree on the destination side before the copy. */
  before: Tree;
  /** Source relative to its side's root, as written (`dir/.` kept). */
  from: string;
  /** Destination relative to its side's root, as written. */
  to: string;
  /** Destination side after the copy, or the expected error. */
  after: Tree | RegExp;
  flags?: CopyFlags;
  only?: Direction;
}

const file = { "f.txt": "new" };
const directory = {
  dir: "/",
  "dir/a": "1",
  "dir/empty": "/",
  "dir/sub": "/",
  "dir/sub/b": "2",
};

const rows: Row[] = [
  {
    name: "file onto existing file",
    source: file,
    before: { "out.txt": "old" },
    from: "f.txt",
    to: "out.txt",
    after: { "out.txt": "new" },
  },
  {
    name: "file into existing directory",
    source: file,
    before: { d: "/" },
    from: "f.txt",
    to: "d",
    after: { d: "/", "d/f.txt": "new" },
  },
  {
    name: "file into directory with slash",
    source: file,
    before: { d: "/" },
    from: "f.txt",
    to: "d/",
    after: { d: "/", "d/f.txt": "new" },
  },
  {
    name: "file to new name",
    source: file,
    before: {},
    from: "f.txt",
    to: "renamed.txt",
    after: { "renamed.txt": "new" },
  },
  {
    name: "file to missing directory slash",
    source: file,
    before: {},
    from: "f.txt",
    to: "missing/",
    after: /destination directory does not exist/,
  },
  {
    name: "file onto file with slash",
    source: file,
    before: { "out.txt": "old" },
    from: "f.txt",
    to: "out.txt/",
    after: /out\.txt\/": the destination is not a directory/,
  },
  {
    name: "file onto directory rejected",
    source: file,
    before: { d: "/", "d/f.txt": "/" },
    from: "f.txt",
    to: "d",
    after: /cannot overwrite directory ".*d\/f\.txt" with non-directory/,
  },
  {
    name: "directory to missing destination",
    source: directory,
    before: {},
    from: "dir",
    to: "copy",
    after: {
      copy: "/",
      "copy/a": "1",
      "copy/empty": "/",
      "copy/sub": "/",
      "copy/sub/b": "2",
    },
  },
  {
    name: "directory into existing directory",
    source: directory,
    before: { d: "/" },
    from: "dir",
    to: "d",
    after: {
      d: "/",
      "d/dir": "/",
      "d/dir/a": "1",
      "d/dir/empty": "/",
      "d/dir/sub": "/",
      "d/dir/sub/b": "2",
    },
  },
  {
    name: "directory merges into same name",
    source: directory,
    before: { d: "/", "d/dir": "/", "d/dir/old": "kept", "d/dir/a": "old" },
    from: "dir",
    to: "d",
    after: {
      d: "/",
      "d/dir": "/",
      "d/dir/a": "1",
      "d/dir/empty": "/",
      "d/dir/old": "kept",
      "d/dir/sub": "/",
      "d/dir/sub/b": "2",
    },
  },
  {
    name: "directory contents into directory",
    source: directory,
    before: { d: "/", "d/old": "kept" },
    from: "dir/.",
    to: "d",
    after: {
      d: "/",
      "d/a": "1",
      "d/empty": "/",
      "d/old": "kept",
      "d/sub": "/",
      "d/sub/b": "2",
    },
  },
  {
    name: "directory contents to missing",
    source: directory,
    before: {},
    from: "dir/.",
    to: "copy",
    after: {
      copy: "/",
      "copy/a": "1",
      "copy/empty": "/",
      "copy/sub": "/",
      "copy/sub/b": "2",
    },
  },
  {
    name: "directory onto file rejected",
    source: directory,
    before: { "out.txt": "old" },
    from: "dir",
    to: "out.txt",
    after: /cannot overwrite non-directory ".*out\.txt" with directory/,
  },
  {
    name: "merge conflict names the source entry",
    source: directory,
    before: { d: "/", "d/dir": "/", "d/dir/a": "/" },
    from: "dir",
    to: "d",
    after:
      /cannot overwrite directory ".*d\/dir\/a" with non-directory "c1:\/dir\/a"/,
    only: "out",
  },
  {
    name: "directory onto nested file rejected",
    source: directory,
    before: { d: "/", "d/dir": "a file" },
    from: "dir",
    to: "d",
    after: /cannot overwrite non-directory ".*d\/dir" with directory/,
  },
  {
    name: "missing destination parent rejected",
    source: file,
    before: {},
    from: "f.txt",
    to: "nope/new.txt",
    after: /destination parent directory ".*nope" does not exist/,
  },
  {
    name: "missing source rejected",
    source: {},
    before: {},
    from: "absent.txt",
    to: "out.txt",
    after: /absent\.txt.*no such file or directory/,
  },
  {
    name: "file source with slash rejected",
    source: file,
    before: {},
    from: "f.txt/",
    to: "out.txt",
    after: /f\.txt\/": not a directory/,
  },
  {
    name: "file into symlinked directory",
    source: file,
    before: { real: "/", link: "->real" },
    from: "f.txt",
    to: "link",
    after: { link: "->real", real: "/", "real/f.txt": "new" },
  },
  {
    name: "symlink copied as link",
    source: { "f.txt": "new", ln: "->f.txt" },
    before: {},
    from: "ln",
    to: "out",
    after: { out: "->f.txt" },
  },
  {
    name: "follow link copies target",
    source: { "f.txt": "new", ln: "->f.txt" },
    before: { d: "/" },
    from: "ln",
    to: "d",
    flags: { followLink: true },
    after: { d: "/", "d/ln": "new" },
  },
  {
    name: "follow link to directory",
    source: { ...directory, ln: "->dir" },
    before: {},
    from: "ln",
    to: "copy",
    flags: { followLink: true },
    after: {
      copy: "/",
      "copy/a": "1",
      "copy/empty": "/",
      "copy/sub": "/",
      "copy/sub/b": "2",
    },
  },
  {
    name: "container root as destination",
    source: file,
    before: {},
    from: "f.txt",
    to: "",
    after: { "f.txt": "new" },
    only: "in",
  },
  {
    name: "container root as source",
    source: { "f.txt": "new", d: "/", "d/x": "y" },
    before: {},
    from: "",
    to: "rootcopy",
    after: {
      rootcopy: "/",
      "rootcopy/d": "/",
      "rootcopy/d/x": "y",
      "rootcopy/f.txt": "new",
    },
    only: "out",
  },
];

/**
 * Prepares both sides and returns the `cp` arguments. An empty
 * container path is written `c1:`, which means the root.
 */
async function arrange(
  endpoint: CopyEndpoint,
  direction: Direction,
  row: Row,
): Promise<{ source: string; destination: string; side: string }> {
  const { local, rootfs } = endpoint;
  const container = (path: string) => `${containerId}:${path && `/${path}`}`;
  if (direction === "in") {
    await writeTree(local, row.source);
    await writeTree(rootfs, row.before);
    return {
      source: `${local}/${row.from}`,
      destination: container(row.to),
      side: rootfs,
    };
  }
  await writeTree(rootfs, row.source);
  await writeTree(local, row.before);
  return {
    source: container(row.from),
    destination: `${local}/${row.to}`,
    side: local,
  };
}

for (const direction of ["in", "out"] as const) {
  for (const row of rows) {
    if (row.only !== undefined && row.only !== direction) {
      continue;
    }
    test(`copy ${direction}: ${row.name}`, async (t) => {
      const endpoint = await startCopyEndpoint(t);
      const { source, destination, side } = await arrange(
        endpoint,
        direction,
        row,
      );
      const flags = { quiet: true, ...row.flags };
      const copying = runCopy(
        endpoint.client,
        source,
        destination,
        flags,
        new AbortController().signal,
      );

      if (row.after instanceof RegExp) {
        await assert.rejects(copying, row.after);
        assert.deepEqual(await readTree(side), sortTree(row.before));
        return;
      }
      await copying;
      assert.deepEqual(await readTree(side), row.after);
    });
  }
}
