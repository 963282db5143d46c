/**
 * Helpers for copy tests: an in-process ttrpc server over a temporary
 * root with container `c1`, a local work folder beside it, and trees
 * written and read as flat `path → description` records.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import {
  access,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { type Client, connect } from "../../src/client/index.js";
import {
  TransferServer,
  type TransferServerOptions,
} from "../../src/server/index.js";
import type { Protocol } from "../../src/transport/index.js";

export const containerId = "c1";

/**
 * Protocol of the test server: ttrpc, or what COPY_TEST_PROTOCOL names
 * (`grpc`), to run the same tests over gRPC.
 */
export const protocol: Protocol =
  process.env.COPY_TEST_PROTOCOL === "grpc" ? "grpc" : "ttrpc";

export interface CopyEndpoint {
  client: Client;
  server: TransferServer;
  socket: string;
  /** Temporary folder holding everything below. */
  dir: string;
  /** Root folder of the containers. */
  root: string;
  /** Root filesystem of container `c1`. */
  rootfs: string;
  /** Empty local folder for the test's own files. */
  local: string;
}

/** Starts a server and a client; both are closed when the test ends. */
export async function startCopyEndpoint(
  t: TestContext,
  options: TransferServerOptions = {},
): Promise<CopyEndpoint> {
  const dir = await mkdtemp(join(tmpdir(), "ct-copy-"));
  const root = join(dir, "root");
  const rootfs = join(root, containerId, "rootfs");
  const local = join(dir, "local");
  await mkdir(rootfs, { recursive: true });
  await mkdir(local);

  const socket = join(dir, `${protocol}.sock`);
  const server = new TransferServer({ root, ...options });
  await server.listen({ [protocol]: socket });
  const client = connect({ address: socket, protocol });
  t.after(async () => {
    await client.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { client, server, socket, dir, root, rootfs, local };
}

/**
 * A tree as flat records: `"/"` is a directory, `"->TARGET"` a symlink,
 * anything else the content of a regular file.
 */
export type Tree = Record<string, string>;

/** Writes `tree` under `base`, parents first. */
export async function writeTree(base: string, tree: Tree): Promise<void> {
  for (const path of Object.keys(tree).sort()) {
    const value = tree[path]!;
    const full = join(base, path);
    if (value === "/") {
      await mkdir(full, { recursive: true });
    } else if (value.startsWith("->")) {
      await symlink(value.slice(2), full);
    } else {
      await writeFile(full, value);
    }
  }
}

/**
 * Reads everything under `base` as a {@link Tree}. Other file types are
 * recorded as `"?"`.
 */
export async function readTree(base: string): Promise<Tree> {
  const tree: Tree = {};
  const walk = async (relative: string) => {
    const entries = await readdir(join(base, relative), {
      withFileTypes: true,
    });
    for (const entry of entries) {
      const path = relative === "" ? entry.name : `${relative}/${entry.name}`;
      const full = join(base, path);
      if (entry.isDirectory()) {
        tree[path] = "/";
        await walk(path);
      } else if (entry.isSymbolicLink()) {
        tree[path] = `->${await readlink(full)}`;
      } else if (entry.isFile()) {
        tree[path] = await readFile(full, "utf8");
      } else {
        tree[path] = "?";
      }
    }
  };
  await walk("");
  return sortTree(tree);
}

export function sortTree(tree: Tree): Tree {
  const byPath = ([a]: [string, string], [b]: [string, string]) => {
    if (a === b) {
      return 0;
    }
    return a < b ? -1 : 1;
  };
  return Object.fromEntries(Object.entries(tree).sort(byPath));
}

/** Returns the inode number of a path, for hard link checks. */
export async function inodeOf(path: string): Promise<number> {
  return (await lstat(path)).ino;
}

/** The bundled command, as installed. */
export const mainScript = fileURLToPath(
  new URL("../../cli.js", import.meta.url),
);

/** A user and group to run a child process as. */
export interface User {
  uid: number;
  gid: number;
}

export interface CliResult {
  /** Exit code; null when a signal ended the process. */
  status: number | null;
  stderr: string;
}

/**
 * Runs the CLI against `socket` with `args` after the global options, as
 * `user` when given. Resolves when the process exits.
 */
export function runCli(
  socket: string,
  args: string[],
  options: { user?: User; timeoutMs?: number } = {},
): Promise<CliResult> {
  const globals = ["--address", socket, "--protocol", protocol];
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [mainScript, ...globals, ...args],
      { ...options.user, timeout: options.timeoutMs ?? 60_000 },
      (error, _stdout, stderr) => {
        const code = error === null ? 0 : error.code;
        resolve({ status: typeof code === "number" ? code : null, stderr });
      },
    );
  });
}

/**
 * Starts `serve --root ROOT` in a child process, as `user` when given,
 * on a new socket in `dir`, and stops it when the test ends. Resolves
 * with the socket once it exists.
 */
export async function startServeProcess(
  t: TestContext,
  dir: string,
  root: string,
  user?: User,
): Promise<string> {
  const socket = join(dir, `serve-${protocol}.sock`);
  const child: ChildProcess = spawn(
    process.execPath,
    [mainScript, "serve", "--root", root, `--${protocol}`, socket],
    { ...user, stdio: "ignore" },
  );
  t.after(() => {
    child.kill();
  });
  for (let attempt = 0; attempt < 100; attempt++) {
    if (
      await access(socket).then(
        () => true,
        () => false,
      )
    ) {
      return socket;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`serve did not create ${socket} within 5 s`);
}
