/**
 * FIFOs that the image commands read or write. A blocking open(2) of a
 * FIFO waits for the other end, and Node.js runs it in a thread of its
 * pool, which the process joins on exit. So only SIGKILL would end a
 * process whose open waits for a reader or writer that never comes.
 * Here a FIFO is opened with O_NONBLOCK, and its bytes pass through a
 * net.Socket, whose reads and writes wait in the event loop.
 */
import { close, constants, open } from "node:fs";
import { Socket } from "node:net";
import { promisify } from "node:util";
import { abortReason, throwIfAborted } from "../errors/index.js";

const openFile = promisify(open);
const closeFile = promisify(close);

/** How long to wait between attempts to open a FIFO that has no reader. */
export const readerPollMs = 100;

/**
 * Opens the FIFO at `path` for writing once a process opens it for
 * reading, and returns a socket that writes into it. While no reader
 * exists, open(2) with O_NONBLOCK fails with ENXIO, so it is tried every
 * {@link readerPollMs} until `signal` aborts, which rejects with
 * {@link abortReason}.
 */
export async function openFifoWriter(
  path: string,
  signal: AbortSignal,
): Promise<Socket> {
  for (;;) {
    throwIfAborted(signal);
    try {
      const fd = await openFile(
        path,
        constants.O_WRONLY | constants.O_NONBLOCK,
      );
      return adopt(fd, () => new Socket({ fd, readable: false }));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENXIO") {
        throw error;
      }
    }
    await delay(readerPollMs, signal);
  }
}

/**
 * Opens the FIFO at `path` for reading and returns a socket that reads
 * it. open(2) with O_NONBLOCK returns at once; the socket then waits for
 * a writer, whose bytes it reads until the last writer closes the FIFO.
 * The socket is destroyed when `signal` aborts, so that a FIFO without a
 * writer does not keep the process alive.
 */
export async function openFifoReader(
  path: string,
  signal: AbortSignal,
): Promise<Socket> {
  throwIfAborted(signal);
  const fd = await openFile(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const socket = await adopt(fd, () => new Socket({ fd, writable: false }));
  const onAbort = () => socket.destroy();
  signal.addEventListener("abort", onAbort, { once: true });
  socket.once("close", () => signal.removeEventListener("abort", onAbort));
  return socket;
}

// Returns the socket that `create` makes of `fd`, closing `fd` if it throws.
async function adopt(fd: number, create: () => Socket): Promise<Socket> {
  try {
    return create();
  } catch (error) {
    await closeFile(fd);
    throw error;
  }
}

// Resolves after `ms`, or rejects with the abort reason of `signal`.
function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
