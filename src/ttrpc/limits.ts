/**
 * The limits that every call on a connection shares, their defaults, and
 * the size checks made before sending and on receipt.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { frameLengthMax, messageLengthMax } from "./frame.js";

/** Limits that every call on a connection shares. */
export interface ConnectionLimits {
  /** Maximum frame data length in bytes, sent or received. */
  maxMessageBytes: number;
  /** Messages a stream buffers before reading pauses. */
  streamBufferMessages: number;
  /** Bytes a stream buffers before reading pauses. */
  streamBufferBytes: number;
  /** Time in ms a full stream buffer may pause reading before it fails. */
  streamBufferTimeoutMs: number;
}

/** The options from which {@link resolveLimits} builds the limits. */
export interface LimitOptions {
  maxMessageBytes?: number;
  streamBufferMessages?: number;
  streamBufferBytes?: number;
  streamBufferTimeoutMs?: number;
}

/**
 * Messages a stream buffers by default: 256, where Go ttrpc 1.2.9 buffers
 * 64. A byte stream of this package grants a 4 MiB window, which a Go
 * sender fills with 128 messages of 32 KiB. The bytes stay bounded by
 * {@link defaultStreamBufferBytes}.
 */
export const defaultStreamBufferMessages = 256;

/**
 * Bytes a stream buffers by default. Go ttrpc counts only messages, so 64
 * messages of 4 MiB could hold 256 MiB for one stream that no consumer reads.
 * 16 MiB is four times the 4 MiB window that our byte streams grant.
 */
export const defaultStreamBufferBytes = 16 * 1024 * 1024;

/** Default stream buffer timeout in ms; Go ttrpc 1.2.9 waits 1 s. */
export const defaultStreamBufferTimeoutMs = 1000;

/**
 * Returns the limits with defaults filled in. Throws InvalidArgument for a
 * value that is not a positive integer, or a `maxMessageBytes` that the
 * frame header cannot carry.
 */
export function resolveLimits(options: LimitOptions): ConnectionLimits {
  const maxMessageBytes = positive(
    "maxMessageBytes",
    options.maxMessageBytes ?? messageLengthMax,
  );
  if (maxMessageBytes > frameLengthMax) {
    throw new ConnectError(
      `invalid ttrpc option maxMessageBytes: ${maxMessageBytes}; the ` +
        `frame header holds at most ${frameLengthMax}`,
      Code.InvalidArgument,
    );
  }
  return {
    maxMessageBytes,
    streamBufferMessages: positive(
      "streamBufferMessages",
      options.streamBufferMessages ?? defaultStreamBufferMessages,
    ),
    streamBufferBytes: positive(
      "streamBufferBytes",
      options.streamBufferBytes ?? defaultStreamBufferBytes,
    ),
    streamBufferTimeoutMs: positive(
      "streamBufferTimeoutMs",
      options.streamBufferTimeoutMs ?? defaultStreamBufferTimeoutMs,
    ),
  };
}

/** Returns the receive queue limits of one stream. */
export function queueLimits(limits: ConnectionLimits): {
  messages: number;
  bytes: number;
} {
  return {
    messages: limits.streamBufferMessages,
    bytes: limits.streamBufferBytes,
  };
}

/** Returns `value` if it is a positive integer; throws InvalidArgument. */
export function positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0) {
    throw new ConnectError(
      `invalid ttrpc option ${name}: ${value}; expected a positive integer`,
      Code.InvalidArgument,
    );
  }
  return value;
}

/**
 * Throws ResourceExhausted when a frame's data of `bytes` would exceed
 * `maxBytes`; `what` names the frame in the message.
 */
export function checkMessageSize(
  what: string,
  bytes: number,
  maxBytes: number,
): void {
  if (bytes > maxBytes) {
    throw new ConnectError(
      `${what} of ${bytes} bytes exceeds the ttrpc message limit of ` +
        `${maxBytes} bytes; send smaller messages`,
      Code.ResourceExhausted,
    );
  }
}

/** Returns the error for a received frame over the limit. */
export function oversizedError(
  streamId: number,
  bytes: number,
  maxBytes: number,
): ConnectError {
  return new ConnectError(
    `ttrpc stream ${streamId}: received a frame of ${bytes} bytes, over ` +
      `the limit of ${maxBytes} bytes; the frame was discarded`,
    Code.ResourceExhausted,
  );
}
