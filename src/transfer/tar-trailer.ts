/**
 * Finds the end of a tar archive in a byte stream by following entry
 * headers: each 512-byte header gives the size of the body that follows it,
 * and two zero blocks in place of a header end the archive. It reads only
 * header sizes; it does not parse archives.
 */
const blockSize = 512;

export class TarTrailerDetector {
  // Bytes still to skip before the next header: an entry body and padding.
  #skip = 0;
  #header = new Uint8Array(blockSize);
  #headerFill = 0;
  #zeroBlocks = 0;
  #complete = false;

  /** Whether the end-of-archive marker was seen. */
  get complete(): boolean {
    return this.#complete;
  }

  /** Feeds the next bytes; returns true once the archive is complete. */
  push(chunk: Uint8Array): boolean {
    let offset = 0;
    while (offset < chunk.length && !this.#complete) {
      if (this.#skip > 0) {
        const step = Math.min(this.#skip, chunk.length - offset);
        this.#skip -= step;
        offset += step;
        continue;
      }
      const step = Math.min(
        blockSize - this.#headerFill,
        chunk.length - offset,
      );
      this.#header.set(chunk.subarray(offset, offset + step), this.#headerFill);
      this.#headerFill += step;
      offset += step;
      if (this.#headerFill === blockSize) {
        this.#headerFill = 0;
        this.#readHeader();
      }
    }
    return this.#complete;
  }

  #readHeader(): void {
    if (this.#header.every((byte) => byte === 0)) {
      this.#zeroBlocks++;
      this.#complete = this.#zeroBlocks === 2;
      return;
    }
    this.#zeroBlocks = 0;
    const size = entrySize(this.#header.subarray(124, 136));
    this.#skip = Math.ceil(size / blockSize) * blockSize;
  }
}

/** Reads the size field: octal text, or base-256 when the top bit is set. */
function entrySize(field: Uint8Array): number {
  if (field[0]! & 0x80) {
    let size = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) {
      size = size * 256 + field[i]!;
    }
    return size;
  }
  const text = new TextDecoder()
    .decode(field)
    .replace(/[\0 ]+$/g, "")
    .trim();
  return text === "" ? 0 : Number.parseInt(text, 8);
}
