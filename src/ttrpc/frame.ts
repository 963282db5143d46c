/**
 * The ttrpc frame: a 10-byte big-endian header followed by `length` bytes of
 * data. ttrpc's own protocol document calls a frame a "message" and its
 * header the "message header"; the constants below keep those terms.
 *
 * ```
 *  0               4               8       9       10
 *  +---------------+---------------+-------+-------+-----------------+
 *  | length (u32)  | stream id u32 | type  | flags | data (length B) |
 *  +---------------+---------------+-------+-------+-----------------+
 * ```
 */

/** Size in bytes of the frame header. */
export const messageHeaderLength = 10;

/**
 * Maximum data length in bytes of one frame, 4 MiB. Go ttrpc (1.2.x)
 * discards a longer frame and rejects it with ResourceExhausted.
 */
export const messageLengthMax = 4 * 1024 * 1024;

/** Largest stream id that the header can carry. */
export const streamIdMax = 0xffff_ffff;

/** Largest data length that the header can carry. */
export const frameLengthMax = 0xffff_ffff;

/** Frame types (the header's type byte). */
export const MessageType = {
  /** Opens a call; data is an encoded `ttrpc.Request`. */
  Request: 1,
  /** Ends a call with a status; data is an encoded `ttrpc.Response`. */
  Response: 2,
  /** Carries one stream message, or only flags. */
  Data: 3,
} as const;

export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** Bits of the header's flags byte. */
export const Flag = {
  /** The sender sends nothing more on this stream. */
  RemoteClosed: 0x01,
  /** On a Request: the client will send Data frames. */
  RemoteOpen: 0x02,
  /** On a Data frame: the frame carries no message. */
  NoData: 0x04,
} as const;

/** Flags of the client's half-close and of the server's successful end. */
export const closeFlags = Flag.RemoteClosed | Flag.NoData;

/** A decoded frame header. */
export interface FrameHeader {
  /** Data length in bytes, excluding the header. */
  length: number;
  streamId: number;
  type: number;
  flags: number;
}

/**
 * Writes a frame header into `target` at `offset`, which must have room
 * for {@link messageHeaderLength} bytes.
 */
export function writeFrameHeader(
  target: Buffer,
  offset: number,
  header: FrameHeader,
): void {
  target.writeUInt32BE(header.length, offset);
  target.writeUInt32BE(header.streamId, offset + 4);
  target[offset + 8] = header.type;
  target[offset + 9] = header.flags;
}

/** Returns a new 10-byte buffer with the encoded header. */
export function encodeFrameHeader(header: FrameHeader): Buffer {
  const buffer = Buffer.allocUnsafe(messageHeaderLength);
  writeFrameHeader(buffer, 0, header);
  return buffer;
}

/** Reads a frame header from `source` at `offset`. */
export function decodeFrameHeader(source: Buffer, offset = 0): FrameHeader {
  return {
    length: source.readUInt32BE(offset),
    streamId: source.readUInt32BE(offset + 4),
    type: source[offset + 8]!,
    flags: source[offset + 9]!,
  };
}

/** Returns whether a Data frame's flags mark it as carrying a message. */
export function carriesData(flags: number): boolean {
  return (flags & Flag.NoData) === 0;
}

/** Names a frame for diagnostics, such as `Data(id=3, flags=0x05, 0 B)`. */
export function describeFrame(header: FrameHeader): string {
  const typeName =
    Object.entries(MessageType).find(([, v]) => v === header.type)?.[0] ??
    `type ${header.type}`;
  const flags = header.flags.toString(16).padStart(2, "0");
  return `${typeName}(id=${header.streamId}, flags=0x${flags}, ${header.length} B)`;
}
