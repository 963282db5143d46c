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

/**
 * HTTP/2 flow-control window of each stream, of the server's connections
 * and of the client's connections to grpc-go: 4 MiB. HTTP/2 starts both
 * at 64 KiB, which lets one stream have only 64 KiB in flight on a local
 * socket. grpc-go grows its windows by measuring the link, and a fixed
 * larger window serves a local socket.
 */
export const http2WindowBytes = 4 * 1024 * 1024;

/** HTTP/2 settings that the client and the server send. */
export const http2Settings = { initialWindowSize: http2WindowBytes };

/**
 * Raises a session's connection window to {@link http2WindowBytes}.
 */
export function widenConnectionWindow(session: {
  setLocalWindowSize(size: number): void;
}): void {
  session.setLocalWindowSize(http2WindowBytes);
}

/** The stream window that HTTP/2 starts with: 65 535 bytes. */
export const http2DefaultWindowBytes = 65_535;

/**
 * Whether a client may widen its connection window, judged from the
 * stream window in the server's SETTINGS. Widened against this package's
 * server, which announces {@link http2WindowBytes}, 10 concurrent echoes
 * stalled for good on Node.js 20.20: both ends had writes pending on the
 * socket and neither read again. grpc-go, and so containerd, announces
 * HTTP/2's default, reads frames in a goroutine apart from its writer and
 * grows its windows itself. Against it, a 64 KiB connection window allows
 * only two of its 32 KiB Data messages in flight.
 */
export function mayWidenClientWindow(serverStreamWindow: number): boolean {
  return serverStreamWindow === http2DefaultWindowBytes;
}

/** Maximum delay of a Node.js timer, in ms: about 24.8 days. */
export const maxTimerMs = 2 ** 31 - 1;

/**
 * Returns `timeoutMs` when a Node.js timer can wait that long, and
 * undefined, no deadline, for longer ones. A longer delay would make the
 * timer fire at once.
 */
export function timerMs(timeoutMs: number | undefined): number | undefined {
  return timeoutMs !== undefined && timeoutMs <= maxTimerMs
    ? timeoutMs
    : undefined;
}
