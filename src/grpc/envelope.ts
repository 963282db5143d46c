/**
 * gRPC message framing: each message travels as a 1-byte flag, a 4-byte
 * big-endian length and the encoded message. The flag is 0 because this
 * package neither sends nor accepts compressed messages.
 */
import type { Writable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";

/** Bytes of the prefix in front of each message. */
export const envelopePrefixBytes = 5;

/** Returns the prefix of an uncompressed message of `length` bytes. */
export function envelopePrefix(length: number): Buffer {
  const prefix = Buffer.allocUnsafe(envelopePrefixBytes);
  prefix[0] = 0;
  prefix.writeUInt32BE(length, 1);
  return prefix;
}

/**
 * Writes one message of `length` bytes, given as `parts`, behind its
 * prefix, without copying the parts. Returns false when the caller should
 * wait for "drain".
 *
 * NOTE: this reports no write completion to the parts' owners, so buffers
 * that the byte sender could reuse after a ttrpc write are not reused
 * after a gRPC one. Whether the stream's write callback comes only after
 * the socket write was not confirmed.
 */
export function writeEnvelope(
  stream: Writable,
  length: number,
  parts: readonly Uint8Array[],
): boolean {
  let drained = stream.write(envelopePrefix(length));
  for (const part of parts) {
    drained = stream.write(part);
  }
  return drained;
}

/**
 * Splits received chunks into messages. A message that lies inside one
 * chunk is returned as a view of that chunk; one that spans chunks is
 * joined first.
 */
export class EnvelopeReader {
  readonly #maxBytes: number;
  readonly #messageKind: string;
  #chunks: Buffer[] = [];
  #bytes = 0;

  /** `messageKind` names the messages in errors, such as "response message". */
  constructor(maxBytes: number, messageKind: string) {
    this.#maxBytes = maxBytes;
    this.#messageKind = messageKind;
  }

  /** Bytes received and not yet returned as a message. */
  get pendingBytes(): number {
    return this.#bytes;
  }

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
  }

  /**
   * Returns the next whole message, or undefined until more bytes come.
   * Throws a ConnectError for a compressed or oversized message.
   */
  next(): Uint8Array | undefined {
    if (this.#bytes < envelopePrefixBytes) {
      return undefined;
    }
    let head = this.#chunks[0]!;
    if (head.length < envelopePrefixBytes) {
      head = this.#join();
    }

    const flags = head[0]!;
    const length = head.readUInt32BE(1);
    if (flags !== 0) {
      throw new ConnectError(
        `received a ${this.#messageKind} with flags ${flags}, but compression was ` +
          "not negotiated",
        Code.Internal,
      );
    }
    checkMessageSize(length, this.#maxBytes, this.#messageKind);

    const total = envelopePrefixBytes + length;
    if (this.#bytes < total) {
      return undefined;
    }
    if (head.length < total) {
      head = this.#join();
    }
    // A plain Uint8Array, so that bytes fields decode as they do in
    // connect-es and not as Buffers.
    const message = new Uint8Array(
      head.buffer,
      head.byteOffset + envelopePrefixBytes,
      length,
    );
    if (head.length > total) {
      this.#chunks[0] = head.subarray(total);
    } else {
      this.#chunks.shift();
    }
    this.#bytes -= total;
    return message;
  }

  #join(): Buffer {
    const joined = Buffer.concat(this.#chunks, this.#bytes);
    this.#chunks = [joined];
    return joined;
  }
}

/**
 * Throws ResourceExhausted when a message of `length` bytes is larger
 * than `maxBytes`.
 */
export function checkMessageSize(
  length: number,
  maxBytes: number,
  messageKind: string,
): void {
  if (length > maxBytes) {
    throw new ConnectError(
      `${messageKind} of ${length} bytes is larger than the limit of ` +
        `${maxBytes} bytes`,
      Code.ResourceExhausted,
    );
  }
}
