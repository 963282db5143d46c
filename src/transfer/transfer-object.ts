/**
 * The ends of a Transfer request. Each marshals itself into an Any; ends
 * that carry bytes open their stream while marshalling and pump it in the
 * background until `wait()` settles.
 */
import type { Any } from "../any/index.js";
import type { StreamCreator } from "../streaming/index.js";

export interface MarshalOptions {
  /** Aborts stream creation and, later, the pump. */
  signal?: AbortSignal;
}

/** A source or destination of a transfer. */
export interface TransferObject {
  marshalAny(creator: StreamCreator, options?: MarshalOptions): Promise<Any>;
}

/** A transfer end whose bytes travel on a stream of its own. */
export interface StreamingTransferObject extends TransferObject {
  /**
   * Settles once the pump has finished. Resolves only when every byte
   * arrived whole; rejects with the first cause otherwise (a source or sink
   * that failed, a broken stream, an abort). Rejects at once if called
   * before marshalAny.
   */
  wait(): Promise<void>;
  /**
   * Called once the Transfer call returned successfully. An end whose peer
   * never ends the stream uses it to bound how long it still waits.
   */
  transferReturned(): void;
  /**
   * Stops the pump and releases the stream. Before the pump finished,
   * `wait()` rejects with `reason`; afterwards only the stream is released.
   * Idempotent.
   */
  abort(reason?: unknown): void;
}

/** Whether a transfer end carries a stream. */
export function isStreaming(
  object: TransferObject,
): object is StreamingTransferObject {
  return (
    typeof (object as StreamingTransferObject).wait === "function" &&
    typeof (object as StreamingTransferObject).abort === "function"
  );
}
