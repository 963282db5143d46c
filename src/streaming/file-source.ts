/**
 * A byte source that reads a file into a few buffers that the sender
 * gives back (see `reuseAfterSend`), instead of a new buffer per read as
 * `fs.createReadStream` allocates.
 */
import { open } from "node:fs/promises";
import { reuseAfterSend } from "./io.js";

/** Bytes read at a time. */
const readBytes = 256 * 1024;

/** Buffers kept for reuse: 2 MiB of 256 KiB buffers. */
const maxFreeBuffers = 8;

/**
 * Yields the bytes of the file at `path`, from its start to its end at
 * the time of each read. Rejects with the error of `open` or `read`.
 */
export async function* readFileChunks(
  path: string,
): AsyncGenerator<Uint8Array> {
  const file = await open(path, "r");
  const free: Buffer[] = [];
  try {
    for (;;) {
      const buffer = free.pop() ?? Buffer.allocUnsafe(readBytes);
      const { bytesRead } = await file.read(buffer, 0, readBytes, null);
      if (bytesRead === 0) {
        return;
      }
      const chunk = buffer.subarray(0, bytesRead);
      reuseAfterSend(chunk, () => {
        if (free.length < maxFreeBuffers) {
          free.push(buffer);
        }
      });
      yield chunk;
    }
  } finally {
    await file.close();
  }
}
