/**
 * Writes ttrpc frames to a socket. Frames written in the same tick are
 * corked and leave in one `writev` call. The large parts of a frame's data
 * are written as they are, after a separate header, so they are never
 * copied.
 */
import type { Socket } from "node:net";
import {
  type MessageType,
  messageHeaderLength,
  writeFrameHeader,
} from "./frame.js";

// Parts of frame data with at most this many bytes are copied behind their
// header into one buffer, which costs less than one more writev entry.
const copyDataMaxBytes = 2048;

const noData = new Uint8Array(0);

// Bytes the socket may buffer before a sender waits for 'drain'. A frame
// of stream data is often larger than the socket's 16 KiB high-water
// mark, so waiting at that mark would leave the kernel buffer empty while
// the sender encodes the next frame.
const bufferedMaxBytes = 1024 * 1024;

export class FrameWriter {
  readonly #socket: Socket;
  #corked = false;
  #drained: Promise<void> | undefined;
  readonly #uncork = () => {
    this.#corked = false;
    this.#socket.uncork();
  };

  constructor(socket: Socket) {
    this.#socket = socket;
  }

  /**
   * Whether the socket buffers less than 1 MiB, so a sender may write more
   * now. A closed socket counts as writable: writes to it
   * are dropped, and the calls on it fail through the connection.
   */
  get writable(): boolean {
    return this.#socket.writableLength < bufferedMaxBytes || this.#closed;
  }

  /**
   * Writes one frame. The caller checks the data length against the
   * connection's limit first. Does nothing once the socket is closed.
   */
  write(
    streamId: number,
    type: MessageType,
    flags: number,
    data: Uint8Array = noData,
  ): void {
    this.writeParts(streamId, type, flags, [data]);
  }

  /**
   * Writes one frame whose data is `parts` in order. The header and the
   * small parts before the first large one are copied into one buffer.
   * The other parts are written as they are, so the caller must not
   * change them afterwards. The caller checks the total data length
   * against the connection's limit first. Does nothing once the socket is
   * closed. `onWritten` runs once the socket no longer references the parts:
   * after the write completed or failed, or at once when nothing is
   * written.
   */
  writeParts(
    streamId: number,
    type: MessageType,
    flags: number,
    parts: readonly Uint8Array[],
    onWritten?: () => void,
  ): void {
    if (this.#closed) {
      onWritten?.();
      return;
    }
    if (!this.#corked) {
      this.#corked = true;
      this.#socket.cork();
      process.nextTick(this.#uncork);
    }

    let length = 0;
    let headParts = 0;
    let headDataLength = 0;
    let leading = true;
    for (const part of parts) {
      length += part.length;
      if (leading && part.length <= copyDataMaxBytes) {
        headParts++;
        headDataLength += part.length;
      } else {
        leading = false;
      }
    }
    const head = Buffer.allocUnsafe(messageHeaderLength + headDataLength);
    writeFrameHeader(head, 0, { length, streamId, type, flags });
    let offset = messageHeaderLength;
    for (let index = 0; index < headParts; index++) {
      const part = parts[index]!;
      head.set(part, offset);
      offset += part.length;
    }
    // Node.js calls each write's callback in order, so the last one marks
    // every part as written.
    if (headParts === parts.length) {
      this.#socket.write(head);
      onWritten?.();
      return;
    }
    this.#socket.write(head);
    for (let index = headParts; index < parts.length - 1; index++) {
      const part = parts[index]!;
      if (part.length > 0) {
        this.#socket.write(part);
      }
    }
    this.#socket.write(parts[parts.length - 1]!, onWritten);
  }

  /**
   * Resolves when the socket has written its buffer (its 'drain' event)
   * or is closed. Every waiter of one drain shares one listener.
   */
  whenWritable(): Promise<void> {
    if (this.writable) {
      return Promise.resolve();
    }
    this.#drained ??= new Promise<void>((resolve) => {
      const done = () => {
        this.#socket.off("drain", done);
        this.#socket.off("close", done);
        this.#drained = undefined;
        resolve();
      };
      this.#socket.on("drain", done);
      this.#socket.on("close", done);
    });
    return this.#drained;
  }

  get #closed(): boolean {
    return this.#socket.destroyed || this.#socket.writableEnded;
  }
}
