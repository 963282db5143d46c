/**
 * Encodings built together with their message, so that a transport can
 * write a message without encoding it again. The byte stream's Data
 * messages use it: their payload is then copied once, into the encoding.
 */
import {
  type DescMessage,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";

interface Recorded {
  typeName: string;
  bytes: Uint8Array;
}

const encodings = new WeakMap<object, Recorded>();

/**
 * Records `bytes` as the binary encoding of `message`, a message of type
 * `typeName`. The caller must not change the message afterwards.
 */
export function recordEncoding(
  message: object,
  typeName: string,
  bytes: Uint8Array,
): void {
  encodings.set(message, { typeName, bytes });
}

/**
 * Returns the binary encoding of `message`: the recorded one when there
 * is one for this schema, or else `toBinary`.
 */
export function encodeMessage<Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc>,
): Uint8Array {
  const recorded = encodings.get(message);
  if (recorded !== undefined && recorded.typeName === schema.typeName) {
    return recorded.bytes;
  }
  return toBinary(schema, message);
}
