/**
 * The floor of a file copy through a local socket, with no protocol: one
 * process reads the file and writes it to a unix socket, a second process
 * writes what it receives to a file.
 */
import { fork } from "node:child_process";
import { createReadStream, createWriteStream, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { performance } from "node:perf_hooks";
import { pipeline } from "node:stream/promises";

/** Copies `source` to `destination` through a second process; returns ms. */
export async function measureFloor(
  source: string,
  destination: string,
  socket: string,
): Promise<number> {
  rmSync(socket, { force: true });
  const child = fork(new URL(import.meta.url).pathname, [
    "--receiver",
    socket,
    destination,
  ]);
  await new Promise<void>((resolve, reject) => {
    child.once("message", () => resolve());
    child.once("error", reject);
  });
  const started = performance.now();
  const done = new Promise<void>((resolve, reject) => {
    child.once("message", () => resolve());
    child.once("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`receiver exited ${code}`)),
    );
  });
  await pipeline(
    createReadStream(source, { highWaterMark: 1 << 20 }),
    connect(socket),
  );
  await done;
  const ms = performance.now() - started;
  child.kill();
  return ms;
}

if (process.argv[2] === "--receiver") {
  const [socket, destination] = process.argv.slice(3) as [string, string];
  const server = createServer((connection) => {
    pipeline(connection, createWriteStream(destination)).then(() => {
      process.send?.("done");
      server.close();
      process.disconnect?.();
    });
  });
  server.listen(socket, () => process.send?.("ready"));
}
