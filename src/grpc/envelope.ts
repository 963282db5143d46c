/**
 * gRPC message framing: each message travels as a 1-byte flag, a 4-byte
 * big-endian length and the encoded message. The flag is 0 because this
 * package neither sends nor accepts compressed messages.
 */
import type { Writable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import { takeReceivedBuffer } from "../util/received-memory.js";

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
 * wait for "drain". `onWritten` runs once the parts may be reused: after
 * the write of the last part completed or failed.
 *
 * Node.js calls an HTTP/2 stream's write callback only once its session
 * has written the data to the socket (`Http2Session::OnStreamAfterWrite`
 * completes the pending writes) or dropped it, and a Writable calls the
 * callbacks of its writes in order.
 */
export function writeEnvelope(
  stream: Writable,
  length: number,
  parts: readonly Uint8Array[],
  onWritten?: () => void,
): boolean {
  let drained = stream.write(envelopePrefix(length));
  if (parts.length === 0) {
    onWritten?.();
    return drained;
  }
  const last = parts.length - 1;
  for (let index = 0; index < last; index++) {
    drained = stream.write(parts[index]);
  }
  drained = stream.write(parts[last], onWritten && (() => onWritten()));
  return drained;
}

/**
 * Splits received chunks into messages. A message that lies inside one
 * chunk is returned as a view of that chunk. One that spans chunks is
 * copied into a buffer of its length. A message of 8 KiB or more gets a
 * buffer lent for reuse (see received-memory.ts). Once its consumers
 * release it, a later message is copied into it instead of a new
 * allocation.
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
    let prefix = this.#chunks[0]!;
    if (prefix.length < envelopePrefixBytes) {
      prefix = Buffer.allocUnsafe(envelopePrefixBytes);
      this.#copyOut(prefix, envelopePrefixBytes, false);
    }

    const flags = prefix[0]!;
    const length = prefix.readUInt32BE(1);
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
    const head = this.#chunks[0]!;
    if (head.length >= total) {
      // A plain Uint8Array, so that bytes fields decode as they do in
      // connect-es and not as Buffers.
      const message = new Uint8Array(
        head.buffer,
        head.byteOffset + envelopePrefixBytes,
        length,
      );
      this.#consume(total);
      return message;
    }
    this.#consume(envelopePrefixBytes);
    const body = takeReceivedBuffer(length);
    this.#copyOut(body, length, true);
    return new Uint8Array(body.buffer, body.byteOffset, length);
  }

  /**
   * Copies the first `length` pending bytes into `target`, and removes
   * them from the pending chunks if `consume` is set.
   */
  #copyOut(target: Buffer, length: number, consume: boolean): void {
    let copied = 0;
    for (const chunk of this.#chunks) {
      if (copied === length) {
        break;
      }
      copied += chunk.copy(target, copied, 0, length - copied);
    }
    if (consume) {
      this.#consume(length);
    }
  }

  /** Removes the first `length` pending bytes. */
  #consume(length: number): void {
    this.#bytes -= length;
    let rest = length;
    while (rest > 0) {
      const head = this.#chunks[0]!;
      if (head.length > rest) {
        this.#chunks[0] = head.subarray(rest);
        return;
      }
      rest -= head.length;
      this.#chunks.shift();
    }
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
