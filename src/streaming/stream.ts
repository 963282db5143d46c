/**
 * A stream is one call of containerd's Streaming service after its
 * handshake: an ordered, bidirectional channel of Any messages named by an
 * id. The same interface serves the client end (over either transport) and
 * the server end (handed out by the stream registry).
 */
import type { Any } from "../any/index.js";

export interface Stream {
  /** The id the stream was registered under. */
  readonly id: string;
  /**
   * Sends one message. Resolves when the transport has taken it, so a
   * sender that awaits each call runs at the transport's pace. Rejects once
   * the stream is aborted or its sending side closed.
   */
  send(message: Any): Promise<void>;
  /**
   * Receives the next message, or undefined when the peer ended its sending
   * side cleanly. Rejects with a TransferError when the stream failed.
   */
  receive(): Promise<Any | undefined>;
  /** Ends the sending side (a half-close). Idempotent. */
  closeSend(): Promise<void>;
  /**
   * Tears down both directions: pending and later sends and receives reject
   * with `reason`. Idempotent; the first reason wins.
   */
  abort(reason?: unknown): void;
}
