/**
 * Writes ttrpc frames to a socket. Frames written in the same tick are
 * corked and leave in one `writev` call. The data of a large frame is
 * written as it is, after a separate header, so it is never copied.
 */
import type { Socket } from "node:net";
import {
  type MessageType,
  messageHeaderLength,
  writeFrameHeader,
} from "./frame.js";

// Frames with at most this many data bytes are copied behind their header
// into one buffer, which costs less than one more writev entry.
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
    if (this.#closed) {
      return;
    }
    if (!this.#corked) {
      this.#corked = true;
      this.#socket.cork();
      process.nextTick(this.#uncork);
    }

    const header = { length: data.length, streamId, type, flags };
    if (data.length <= copyDataMaxBytes) {
      const frame = Buffer.allocUnsafe(messageHeaderLength + data.length);
      writeFrameHeader(frame, 0, header);
      frame.set(data, messageHeaderLength);
      this.#socket.write(frame);
      return;
    }
    const headerBytes = Buffer.allocUnsafe(messageHeaderLength);
    writeFrameHeader(headerBytes, 0, header);
    this.#socket.write(headerBytes);
    this.#socket.write(data);
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
