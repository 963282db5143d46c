/**
 * Encodings built together with their message, so that a transport can
 * write a message without encoding it again. The byte stream's Data
 * messages use it: their encoding is a short prefix followed by the
 * payload itself, so the ttrpc transport writes the payload uncopied.
 */
import {
  type DescMessage,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";

interface Recorded {
  typeName: string;
  parts: readonly Uint8Array[];
}

const encodings = new WeakMap<object, Recorded>();
const writtenCallbacks = new WeakMap<object, () => void>();

/**
 * Records `parts`, in order, as the binary encoding of `message`, a
 * message of type `typeName`. The caller must change neither the message
 * nor the parts afterwards. `onWritten`, when given, is for the transport
 * that writes the parts: see {@link takeWrittenCallback}.
 */
export function recordEncoding(
  message: object,
  typeName: string,
  parts: readonly Uint8Array[],
  onWritten?: () => void,
): void {
  encodings.set(message, { typeName, parts });
  if (onWritten !== undefined) {
    writtenCallbacks.set(message, onWritten);
  }
}

/**
 * Returns, once, the callback recorded with the encoding of `message`. A
 * transport that writes the parts calls it when its socket no longer
 * references them, after the write completed or failed, so that their owner
 * may reuse the memory. A transport that never calls it only loses that
 * reuse.
 */
export function takeWrittenCallback(message: object): (() => void) | undefined {
  const callback = writtenCallbacks.get(message);
  writtenCallbacks.delete(message);
  return callback;
}

/**
 * Returns the binary encoding of `message` as parts to be written in
 * order: the recorded parts when there are some for this schema, or else
 * the one buffer of `toBinary`.
 */
export function encodeMessageParts<Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc>,
): readonly Uint8Array[] {
  const recorded = encodings.get(message);
  if (recorded !== undefined && recorded.typeName === schema.typeName) {
    return recorded.parts;
  }
  return [toBinary(schema, message)];
}

/** Returns the binary encoding of `message` in one buffer. */
export function encodeMessage<Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc>,
): Uint8Array {
  return concatParts(encodeMessageParts(schema, message));
}

/** Returns the total length in bytes of `parts`. */
export function partsLength(parts: readonly Uint8Array[]): number {
  let length = 0;
  for (const part of parts) {
    length += part.length;
  }
  return length;
}

/** Returns `parts` joined in one buffer, or the only part uncopied. */
export function concatParts(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) {
    return parts[0]!;
  }
  return Buffer.concat(parts, partsLength(parts));
}
