/**
 * Memory of one packing run: the buffers files are read into, and the
 * batch that gathers headers and small files into chunks of at least
 * {@link gatherBytes}.
 *
 * Gathering makes each chunk of the archive, and each Data message made
 * from it, carry many entries. The packer writes a small file's header
 * and body in place, and hands the consumer one chunk per batch instead
 * of one per entry.
 */

/** Bytes read from a file at a time; also the stream's high-water mark. */
export const chunkBytes = 256 * 1024;

/** Size that a batch gathers small pieces up to, in bytes. */
export const gatherBytes = 64 * 1024;

/** Free buffers kept per archive: 8 MiB of 256 KiB buffers. */
const maxFreeBuffers = 32;

/**
 * Read buffers of one archive that its consumer gives back once it no
 * longer needs a chunk, so that a large file does not allocate a new
 * buffer per read. A buffer that is never given back is left to the
 * garbage collector.
 */
export class ReadBuffers {
  readonly #free: Buffer[] = [];
  readonly #reuseChunk: (chunk: Uint8Array, reuse: () => void) => void;

  /**
   * `reuseChunk` receives each chunk read into a buffer of this set, with
   * the function that gives the buffer back. It calls that function once
   * nothing reads the chunk any more.
   */
  constructor(reuseChunk: (chunk: Uint8Array, reuse: () => void) => void) {
    this.#reuseChunk = reuseChunk;
  }

  /** Returns a free buffer of {@link chunkBytes}, or a new one. */
  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafe(chunkBytes);
  }

  /** Hands `chunk`, read into `buffer`, to the consumer's reuse hook. */
  lend(chunk: Uint8Array, buffer: Buffer): void {
    this.#reuseChunk(chunk, () => this.give(buffer));
  }

  /** Takes back a buffer whose bytes nothing reads any more. */
  give(buffer: Buffer): void {
    if (this.#free.length < maxFreeBuffers) {
      this.#free.push(buffer);
    }
  }
}

/**
 * The chunks of an archive in the making, in order: small pieces are
 * copied into the current batch, which is closed once it contains
 * {@link gatherBytes}, and larger pieces are queued as they are.
 *
 * With read buffers, a batch is a read buffer lent to the consumer. Without
 * them, a closed batch is copied out to a chunk of its exact size, so one
 * buffer serves every batch.
 */
export class ArchiveBatch {
  readonly #buffers: ReadBuffers | undefined;
  readonly #ready: Buffer[] = [];
  #buffer: Buffer | undefined;
  #filled = 0;

  constructor(buffers: ReadBuffers | undefined) {
    this.#buffers = buffers;
  }

  /**
   * Adds `piece`: a copy of it when it is smaller than
   * {@link gatherBytes}, otherwise the piece itself, after the batch
   * gathered so far. The caller must not change a piece of that size
   * until the consumer is done with it.
   */
  add(piece: Buffer): void {
    if (piece.length >= gatherBytes) {
      this.#close();
      this.#ready.push(piece);
      return;
    }
    piece.copy(this.space(piece.length));
    this.commit(piece.length);
  }

  /**
   * Returns `bytes` of writable space at the end of the batch, which
   * {@link commit} then adds. `bytes` must be at most {@link chunkBytes}.
   * Nothing else may be added between the two calls.
   */
  space(bytes: number): Buffer {
    if (this.#buffer !== undefined && this.#filled + bytes > chunkBytes) {
      this.#close();
    }
    this.#buffer ??= this.#buffers?.take() ?? Buffer.allocUnsafe(chunkBytes);
    return this.#buffer.subarray(this.#filled, this.#filled + bytes);
  }

  /** Adds the first `bytes` of the space that {@link space} returned. */
  commit(bytes: number): void {
    this.#filled += bytes;
    if (this.#filled >= gatherBytes) {
      this.#close();
    }
  }

  /** Returns the next chunk ready for the consumer, in archive order. */
  take(): Buffer | undefined {
    return this.#ready.shift();
  }

  /** Closes the batch gathered so far, so that {@link take} returns it. */
  flush(): void {
    this.#close();
  }

  #close(): void {
    const buffer = this.#buffer;
    if (buffer === undefined || this.#filled === 0) {
      return;
    }
    const chunk = buffer.subarray(0, this.#filled);
    this.#filled = 0;
    if (this.#buffers === undefined) {
      this.#ready.push(Buffer.from(chunk));
      return;
    }
    this.#buffers.lend(chunk, buffer);
    this.#buffer = undefined;
    this.#ready.push(chunk);
  }
}
