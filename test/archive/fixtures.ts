/**
 * Test helpers for the archive layer: temporary layouts, tar entries
 * built by hand (with names node-tar's packer refuses to write), and
 * snapshots of directory trees.
 */
import { createHash } from "node:crypto";
import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { TestContext } from "node:test";
import { Header, Pax } from "tar";
import { forcePathMode } from "../../src/archive/directory-handle.js";

/** A temporary layout: `root` is the container root, `outside` its sibling. */
export interface Layout {
  base: string;
  root: string;
  outside: string;
}

/**
 * Creates `<tmp>/archive-test-*` with `root/` and `outside/secret`, removed
 * after the test.
 */
export async function makeLayout(t: TestContext): Promise<Layout> {
  const base = await mkdtemp(join(tmpdir(), "archive-test-"));
  t.after(() => rm(base, { recursive: true, force: true }));
  const root = join(base, "root");
  const outside = join(base, "outside");
  await mkdir(root);
  await mkdir(outside);
  await writeFile(join(outside, "secret"), "secret\n", { mode: 0o600 });
  return { base, root, outside };
}

/** Both ways the archive layer reaches directories. */
export const modes = ["pinned", "path"] as const;

/** Selects descriptor-pinned or path-based resolution for later calls. */
export function useMode(mode: (typeof modes)[number]): void {
  forcePathMode(mode === "path");
}

/** One entry of a hand-built archive. */
export interface RawEntry {
  path: string;
  type?:
    | "File"
    | "Directory"
    | "SymbolicLink"
    | "Link"
    | "CharacterDevice"
    | "BlockDevice"
    | "FIFO"
    | "NextFileHasLongPath";
  body?: string | Buffer;
  mode?: number;
  linkpath?: string;
  uid?: number;
  gid?: number;
  mtime?: Date;
  /** Puts `path` (and `linkpath`) in a PAX header instead of USTAR. */
  pax?: boolean;
  devmaj?: number;
  devmin?: number;
}

/** Encodes one entry: optional PAX header, USTAR header, padded body. */
export function rawEntry(entry: RawEntry): Buffer {
  const body =
    typeof entry.body === "string" ? Buffer.from(entry.body) : entry.body;
  const size = body?.length ?? 0;
  const blocks: Buffer[] = [];
  if (entry.pax) {
    blocks.push(
      new Pax({ path: entry.path, linkpath: entry.linkpath }).encode(),
    );
  }
  const header = new Header({
    path: entry.pax ? "placeholder" : entry.path,
    type: entry.type ?? "File",
    mode: entry.mode ?? 0o644,
    uid: entry.uid ?? 0,
    gid: entry.gid ?? 0,
    size,
    mtime: entry.mtime ?? new Date("2020-01-02T03:04:05Z"),
    linkpath:
      entry.pax && entry.linkpath !== undefined
        ? "placeholder"
        : entry.linkpath,
    devmaj: entry.devmaj,
    devmin: entry.devmin,
  });
  header.encode();
  blocks.push(header.block!);
  if (body !== undefined) {
    blocks.push(body, Buffer.alloc((512 - (size % 512)) % 512));
  }
  return Buffer.concat(blocks);
}

/** The end-of-archive marker. */
export const trailer = Buffer.alloc(1024);

/** Encodes entries followed by the end-of-archive marker. */
export function rawArchive(entries: RawEntry[]): Buffer {
  return Buffer.concat([...entries.map(rawEntry), trailer]);
}

/** Returns a source that yields `bytes` in chunks of `chunkBytes`. */
export function chunked(bytes: Buffer, chunkBytes = 700): Readable {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += chunkBytes) {
    chunks.push(bytes.subarray(offset, offset + chunkBytes));
  }
  return Readable.from(chunks, { objectMode: false });
}

/** Collects a stream into one buffer. */
export async function collect(
  stream: AsyncIterable<Uint8Array>,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

/**
 * Describes every entry under `dir` (type, permission bits, link count,
 * size, mtime, content hash or symlink target), keyed by relative path.
 * Paths under `exclude` (relative) are left out.
 */
export async function snapshot(
  dir: string,
  exclude: string[] = [],
): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  const visit = async (relative: string) => {
    const names = await readdir(join(dir, relative));
    for (const name of names.sort()) {
      const path = relative === "" ? name : `${relative}/${name}`;
      if (exclude.includes(path)) {
        continue;
      }
      const stats = await lstat(join(dir, path));
      const common = `${(stats.mode & 0o7777).toString(8)} n${stats.nlink}`;
      if (stats.isDirectory()) {
        result.set(path, `dir ${common}`);
        await visit(path);
      } else if (stats.isSymbolicLink()) {
        result.set(path, `link ${await readlink(join(dir, path))}`);
      } else if (stats.isFile()) {
        const hash = createHash("sha256")
          .update(await readFile(join(dir, path)))
          .digest("hex");
        result.set(path, `file ${common} ${stats.size} ${hash}`);
      } else {
        result.set(path, `other ${common}`);
      }
    }
  };
  await visit("");
  return result;
}

/** Snapshot of everything in the layout except the container root. */
export function outsideSnapshot(layout: Layout): Promise<Map<string, string>> {
  return snapshot(layout.base, ["root"]);
}

/** Whether this process can chown and create device nodes. */
export const isRoot = process.getuid?.() === 0;
