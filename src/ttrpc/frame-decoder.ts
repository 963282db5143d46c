/**
 * A push decoder that splits a byte stream into ttrpc frames, whatever the
 * chunking. It buffers at most one frame: a frame that arrives whole inside
 * a chunk is passed on as a view of that chunk without copying, and only a
 * frame split across chunks is copied, once, into a buffer of its length.
 * A frame longer than the limit is never buffered: its bytes are skipped as
 * they arrive.
 *
 * The buffer of a copied frame of 8 KiB or more is lent for reuse (see
 * received-memory.ts): once its consumers release it, the decoder copies
 * a later frame into it instead of allocating.
 */
import { takeReceivedBuffer } from "../util/received-memory.js";
import {
  decodeFrameHeader,
  type FrameHeader,
  messageHeaderLength,
} from "./frame.js";

/** Receives what a {@link FrameDecoder} decodes. */
export interface FrameSink {
  /**
   * Called once per frame. `data` may be a view of the pushed chunk, so a
   * sink that keeps it also keeps that chunk in memory.
   */
  onFrame(header: FrameHeader, data: Buffer): void;
  /**
   * Called when a frame header announces more than the limit. The frame's
   * data is then discarded without being buffered.
   */
  onOversized(header: FrameHeader): void;
}

const emptyData = Buffer.alloc(0);

export class FrameDecoder {
  readonly #maxDataBytes: number;
  readonly #sink: FrameSink;
  readonly #headerBytes = Buffer.alloc(messageHeaderLength);
  #headerFilled = 0;
  // The frame whose data is being read, or undefined between frames.
  #current: FrameHeader | undefined;
  #body: Buffer | undefined;
  #bodyFilled = 0;
  #discardLeft = 0;
  #paused = false;
  // The unread rest of a chunk, kept while paused.
  #pending: Buffer | undefined;
  readonly #chunksReused: boolean;

  /**
   * `maxDataBytes` is the longest frame data accepted, in bytes. With
   * `chunksReused`, the memory of a pushed chunk is reused once `push`
   * returns, as with a socket's `onread` buffer, so the decoder copies
   * whatever it passes on or keeps.
   */
  constructor(maxDataBytes: number, sink: FrameSink, chunksReused = false) {
    this.#maxDataBytes = maxDataBytes;
    this.#sink = sink;
    this.#chunksReused = chunksReused;
  }

  /** Whether {@link pause} stopped the decoder. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Whether the bytes pushed so far end inside a frame. */
  get midFrame(): boolean {
    return (
      this.#headerFilled > 0 ||
      this.#current !== undefined ||
      this.#discardLeft > 0 ||
      this.#pending !== undefined
    );
  }

  /**
   * Decodes a chunk, calling the sink for every complete frame. While the
   * decoder is paused the chunk is kept, unread, until {@link resume}; the
   * caller should stop reading its source then.
   */
  push(chunk: Buffer): void {
    if (this.#pending) {
      this.#pending = Buffer.concat([this.#pending, chunk]);
    } else {
      this.#pending = chunk;
    }
    if (!this.#paused) {
      this.#drain();
    }
    if (this.#chunksReused && this.#pending === chunk) {
      this.#pending = Buffer.from(chunk);
    }
  }

  /**
   * Stops after the frame being delivered. A sink may call this from
   * `onFrame` to stop the frames that follow in the same chunk.
   */
  pause(): void {
    this.#paused = true;
  }

  /** Continues with the bytes kept while paused. */
  resume(): void {
    if (!this.#paused) {
      return;
    }
    this.#paused = false;
    this.#drain();
  }

  #drain(): void {
    const chunk = this.#pending;
    if (!chunk) {
      return;
    }
    this.#pending = undefined;

    let offset = 0;
    while (offset < chunk.length) {
      if (this.#paused) {
        const rest = chunk.subarray(offset);
        this.#pending = this.#chunksReused ? Buffer.from(rest) : rest;
        return;
      }
      offset = this.#step(chunk, offset);
    }
  }

  /** Consumes bytes of one step (header, data or skip); returns the offset. */
  #step(chunk: Buffer, offset: number): number {
    if (this.#discardLeft > 0) {
      const skipped = Math.min(this.#discardLeft, chunk.length - offset);
      this.#discardLeft -= skipped;
      return offset + skipped;
    }
    if (!this.#current) {
      return this.#readHeader(chunk, offset);
    }
    return this.#readBody(this.#current, chunk, offset);
  }

  #readHeader(chunk: Buffer, offset: number): number {
    let header: FrameHeader;
    let next: number;
    if (
      this.#headerFilled === 0 &&
      chunk.length - offset >= messageHeaderLength
    ) {
      header = decodeFrameHeader(chunk, offset);
      next = offset + messageHeaderLength;
    } else {
      const copied = chunk.copy(
        this.#headerBytes,
        this.#headerFilled,
        offset,
        offset + messageHeaderLength - this.#headerFilled,
      );
      this.#headerFilled += copied;
      next = offset + copied;
      if (this.#headerFilled < messageHeaderLength) {
        return next;
      }
      this.#headerFilled = 0;
      header = decodeFrameHeader(this.#headerBytes);
    }

    if (header.length > this.#maxDataBytes) {
      this.#discardLeft = header.length;
      this.#sink.onOversized(header);
    } else if (header.length === 0) {
      this.#sink.onFrame(header, emptyData);
    } else {
      this.#current = header;
    }
    return next;
  }

  #readBody(header: FrameHeader, chunk: Buffer, offset: number): number {
    const available = chunk.length - offset;
    if (!this.#body && available >= header.length) {
      const end = offset + header.length;
      this.#current = undefined;
      const data = chunk.subarray(offset, end);
      this.#sink.onFrame(header, this.#chunksReused ? this.#copy(data) : data);
      return end;
    }

    this.#body ??= takeReceivedBuffer(header.length);
    const copied = chunk.copy(
      this.#body,
      this.#bodyFilled,
      offset,
      offset + header.length - this.#bodyFilled,
    );
    this.#bodyFilled += copied;
    if (this.#bodyFilled === header.length) {
      const body = this.#body;
      this.#current = undefined;
      this.#body = undefined;
      this.#bodyFilled = 0;
      this.#sink.onFrame(header, body);
    }
    return offset + copied;
  }

  #copy(data: Buffer): Buffer {
    const copy = takeReceivedBuffer(data.length);
    data.copy(copy);
    return copy;
  }
}
