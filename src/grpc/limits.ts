/** Message size limits shared by the gRPC client and server. */

/** containerd's default gRPC message limit in both directions: 16 MiB. */
export const defaultMaxMessageBytes = 16 * 1024 * 1024;

/**
 * Returns Node.js's http2 `maxSessionMemory`, in megabytes, for a message
 * limit: room for four messages of the largest size queued at once, and
 * never below Node.js's default of 10. Past this limit Node.js rejects new
 * streams and incoming headers with ENHANCE_YOUR_CALM, so with the default
 * a client that sends a message of more than about 10 MiB never receives
 * the call's status (seen on Node.js 20.20).
 */
export function sessionMemoryMegabytes(maxMessageBytes: number): number {
  return Math.max(10, Math.ceil((4 * maxMessageBytes) / (1024 * 1024)));
}
