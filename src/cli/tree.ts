/**
 * Summaries of local trees, used by the demo to prove that a copy came back
 * byte for byte with the same modes.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, readdir, readlink } from "node:fs/promises";
import { join } from "node:path";
import { throwIfAborted } from "../errors/index.js";

export interface TreeEntry {
  type: "file" | "directory" | "symlink" | "other";
  /** Permission bits, with setuid, setgid and sticky. */
  mode: number;
  size: number;
  /** sha256 of a file's content, or a symlink's target. */
  content: string;
  /** For a hard link: the path first walked of the same file. */
  linkOf?: string;
}

/**
 * Walks a tree without following symlinks; keys are relative paths. Stops
 * with Canceled when `signal` aborts.
 */
export async function summarizeTree(
  root: string,
  signal?: AbortSignal,
): Promise<Map<string, TreeEntry>> {
  const entries = new Map<string, TreeEntry>();
  const firstNames = new Map<string, string>();
  const visit = async (relative: string) => {
    throwIfAborted(signal);
    const path = join(root, relative);
    const info = await lstat(path);
    const mode = info.mode & 0o7777;
    if (info.isDirectory()) {
      entries.set(relative, { type: "directory", mode, size: 0, content: "" });
      for (const name of await utf8Names(path)) {
        await visit(relative === "" ? name : `${relative}/${name}`);
      }
    } else if (info.isSymbolicLink()) {
      const target = await readlink(path);
      entries.set(relative, {
        type: "symlink",
        mode: 0,
        size: 0,
        content: target,
      });
    } else if (info.isFile()) {
      const inode = `${info.dev}:${info.ino}`;
      const linkOf = info.nlink > 1 ? firstNames.get(inode) : undefined;
      if (info.nlink > 1 && linkOf === undefined) {
        firstNames.set(inode, relative);
      }
      entries.set(relative, {
        type: "file",
        mode,
        size: info.size,
        content: await hashFile(path),
        linkOf,
      });
    } else {
      entries.set(relative, { type: "other", mode, size: 0, content: "" });
    }
  };
  await visit("");
  return entries;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Lists a directory's names in order, leaving out those that are not
 * valid UTF-8: a copy skips them with a warning, and Node.js could not
 * name them as strings anyway.
 */
async function utf8Names(path: string): Promise<string[]> {
  const names: string[] = [];
  for (const raw of await readdir(path, { encoding: "buffer" })) {
    try {
      names.push(strictUtf8.decode(raw));
    } catch {
      // Left out, as the copy leaves it out.
    }
  }
  return names.sort();
}

/** Lists the differences between two summaries, at most `limit`. */
export function compareTrees(
  expected: Map<string, TreeEntry>,
  actual: Map<string, TreeEntry>,
  limit = 20,
): string[] {
  const problems: string[] = [];
  for (const [path, want] of expected) {
    const got = actual.get(path);
    const name = path || ".";
    if (!got) {
      problems.push(`${name}: missing`);
    } else if (got.type !== want.type) {
      problems.push(`${name}: is a ${got.type}, expected a ${want.type}`);
    } else if (got.mode !== want.mode) {
      problems.push(
        `${name}: mode ${got.mode.toString(8)}, expected ${want.mode.toString(8)}`,
      );
    } else if (got.size !== want.size || got.content !== want.content) {
      problems.push(`${name}: content differs`);
    } else if (got.linkOf !== want.linkOf) {
      problems.push(
        want.linkOf === undefined
          ? `${name}: hard link to ${got.linkOf}, expected a file of its own`
          : `${name}: expected a hard link to ${want.linkOf}`,
      );
    }
    if (problems.length >= limit) {
      return problems;
    }
  }
  for (const path of actual.keys()) {
    if (!expected.has(path) && problems.length < limit) {
      problems.push(`${path}: unexpected extra entry`);
    }
  }
  return problems;
}

function hashFile(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(path)
      .on("data", (chunk) => hash.update(chunk))
      .on("end", () => resolve(hash.digest("hex")))
      .on("error", reject);
  });
}
