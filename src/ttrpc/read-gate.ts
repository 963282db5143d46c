/**
 * Feeds a socket's bytes to a frame decoder and stops reading while a
 * stream's receive queue is full. Holding the socket passes the slow
 * consumer's pace back to the sender through the kernel's socket buffer.
 * Every other stream of the connection waits meanwhile, so a hold that
 * lasts `timeoutMs` ends with the stream failed and reading resumed.
 */
import type { Socket } from "node:net";
import type { FrameDecoder } from "./frame-decoder.js";

export class ReadGate {
  readonly #socket: Socket;
  readonly #decoder: FrameDecoder;
  #holder: object | undefined;
  #timer: NodeJS.Timeout | undefined;
  #resumeScheduled = false;
  // Whether reading waits for the socket to write what it buffers.
  #waitingForWrites = false;

  constructor(socket: Socket, decoder: FrameDecoder) {
    this.#socket = socket;
    this.#decoder = decoder;
    socket.on("data", (chunk: Buffer) => decoder.push(chunk));
  }

  /** Whether reading is stopped for a full queue. */
  get held(): boolean {
    return this.#holder !== undefined;
  }

  /**
   * Stops reading frames, after the one being delivered, until `written`
   * settles. The connection calls this while its socket buffers 1 MiB or
   * more, so a client that never reads cannot make the server buffer a
   * response to each of its requests.
   */
  waitForWrites(written: Promise<void>): void {
    if (this.#waitingForWrites) {
      return;
    }
    this.#waitingForWrites = true;
    this.#decoder.pause();
    this.#socket.pause();
    void written.then(() => {
      this.#waitingForWrites = false;
      this.#scheduleResume();
    });
  }

  /**
   * Stops reading frames, after the one being delivered, until `holder`
   * calls {@link release}. If that takes longer than `timeoutMs`, calls
   * `onTimeout` and reads on.
   */
  hold(holder: object, timeoutMs: number, onTimeout: () => void): void {
    if (this.#holder !== undefined) {
      return;
    }
    this.#holder = holder;
    this.#decoder.pause();
    this.#socket.pause();
    this.#timer = setTimeout(() => {
      onTimeout();
      this.release(holder);
    }, timeoutMs);
  }

  /**
   * Reads on if `holder` has the gate. Frames resume on the next tick, so
   * a consumer that releases from inside a read is not re-entered.
   */
  release(holder: object): void {
    if (this.#holder !== holder) {
      return;
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#holder = undefined;
    this.#scheduleResume();
  }

  #scheduleResume(): void {
    if (this.#resumeScheduled) {
      return;
    }
    this.#resumeScheduled = true;
    process.nextTick(() => {
      this.#resumeScheduled = false;
      if (this.#holder !== undefined || this.#waitingForWrites) {
        return;
      }
      this.#decoder.resume();
      // The frames kept by the decoder may have filled a queue again.
      if (!this.#decoder.paused) {
        this.#socket.resume();
      }
    });
  }

  /** Stops the hold timer; for a connection that is closing. */
  dispose(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#holder = undefined;
  }
}
