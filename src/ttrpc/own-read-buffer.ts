/**
 * Reading a socket into one buffer of its own, for both ends of a ttrpc
 * connection.
 *
 * By default Node.js allocates a new buffer of up to 64 KiB for every
 * read of a socket, which the garbage collector must then free: for a
 * 1 GiB transfer, at least 16 384 of them. A socket created with `onread` reads
 * into one buffer instead, and its callback gets each read's bytes, which
 * the frame decoder copies before the next read. `net.connect` takes that
 * option, but Node.js 20's `net.Server` has none for the sockets it
 * accepts.
 */
import * as net from "node:net";

/** Size of the buffer that each connection reads its socket into. */
export const readBufferBytes = 256 * 1024;

/** Receives the bytes of one read; they are overwritten by the next. */
export type ReadCallback = (chunk: Buffer) => void;

/** Returns the `onread` option that passes each read to `onChunk`. */
export function ownReadBuffer(onChunk: ReadCallback): net.OnReadOpts {
  return {
    buffer: Buffer.allocUnsafe(readBufferBytes),
    callback: (bytes, buffer) => {
      onChunk(Buffer.from(buffer.buffer, buffer.byteOffset, bytes));
      return true;
    },
  };
}

/**
 * Moves the handle of `accepted`, a socket that a server accepted with
 * `pauseOnConnect`, to a new socket that reads with {@link ownReadBuffer}.
 * `accepted` is destroyed without closing the handle, which lets the
 * server count the connection as gone. Returns undefined, and leaves
 * `accepted` as it is, when the socket keeps no `_handle`, the field that
 * Node.js 20 uses internally for it.
 *
 * NOTE: the `_handle` field and the socket constructor's `handle` option
 * are not documented Node.js API. The tests cover them on Node.js 20, and
 * a Node.js without the field gets the default reads.
 */
export function adoptWithOwnReadBuffer(
  accepted: net.Socket,
  onChunk: ReadCallback,
): net.Socket | undefined {
  const internal = accepted as unknown as { _handle: unknown };
  const handle = internal._handle;
  if (handle === null || typeof handle !== "object") {
    return undefined;
  }
  internal._handle = null;
  accepted.destroy();
  const options = { handle, onread: ownReadBuffer(onChunk) };
  return new net.Socket(options as net.SocketConstructorOpts);
}
