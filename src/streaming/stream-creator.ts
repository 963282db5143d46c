import { randomUUID } from "node:crypto";
import type { Transport } from "../transport/index.js";
import { openStream } from "./client-stream.js";
import type { Stream } from "./stream.js";

/** Opens streams on a connection; the transfer types use it to marshal. */
export interface StreamCreator {
  /**
   * Opens a stream with a new id that starts with `purpose` and waits for
   * the server to acknowledge it.
   */
  create(purpose: string, options?: { signal?: AbortSignal }): Promise<Stream>;
}

/**
 * Returns a creator that opens Streaming.Stream calls on `transport`, each
 * with `headers` (the namespace, and over gRPC an optional lease). The
 * server scopes streams by namespace, so the Transfer call must carry the
 * same one.
 */
export function createStreamCreator(
  transport: Transport,
  headers: Record<string, string> = {},
): StreamCreator {
  return {
    create(purpose, options = {}) {
      return openStream(transport, newStreamId(purpose), {
        headers,
        signal: options.signal,
      });
    },
  };
}

/**
 * Returns `<purpose>-<random UUID>`: unique and unguessable, unlike Go's
 * ids, which carry 24 random bits.
 */
export function newStreamId(purpose: string): string {
  return `${purpose}-${randomUUID()}`;
}
