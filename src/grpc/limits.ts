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
 * Streams that one client connection may have open on the server at a
 * time. Each open stream costs the server about 27 KB: 32 000 streams on
 * one connection took a server to 860 MB.
 */
export const maxConcurrentStreams = 1024;

/**
 * HTTP/2 streams that the transfers of one gRPC client of this package
 * have open at a time on one connection. Before it opens any, a transfer
 * counts one for its Transfer call, one for its progress and one for
 * each byte stream, and waits while the total would pass this number.
 * It stays below {@link maxConcurrentStreams}, leaving room for streams
 * that the server has not yet seen closed. Without it, 300 concurrent copies
 * on one connection had some streams refused (Node.js's server ends a
 * burst of refused streams by sending ENHANCE_YOUR_CALM), and a transfer
 * whose byte stream waited behind other transfers' streams could wait
 * forever. Counting streams rather than transfers lets a copy out that is
 * piped into a copy in run beside it whenever both fit.
 */
export const transferStreamBudget = maxConcurrentStreams - 64;

/** HTTP/2 settings that the server sends. */
export const serverHttp2Settings = { ...http2Settings, maxConcurrentStreams };

/**
 * Raises a session's connection window to {@link http2WindowBytes}.
 */
export function widenConnectionWindow(session: {
  setLocalWindowSize(size: number): void;
}): void {
  session.setLocalWindowSize(http2WindowBytes);
}

/**
 * Payload of the PING frames with which grpc-go measures a connection to
 * size its flow-control windows (its "BDP ping"). containerd 1.7 sends
 * one as soon as a client's first frames arrive.
 */
const grpcGoWindowPing = Buffer.from([2, 4, 16, 16, 9, 14, 7, 7]);

/**
 * Whether a PING from the server shows that the client may widen its
 * connection window. Only grpc-go's window measurement does, and grpc-go
 * reads frames in a goroutine apart from its writer. Node.js HTTP/2
 * endpoints were seen to stop reading their socket while socket writes
 * of their own were pending. So a widened client and a Node.js server
 * that widened its own window can fill the socket both ways and wait on
 * each other for good. 8 concurrent echoes did so once the client's
 * window was 192 KiB or more, and not at 160 KiB (Node.js 20.20, unix
 * socket).
 */
export function mayWidenClientWindow(pingPayload: Uint8Array): boolean {
  return Buffer.compare(pingPayload, grpcGoWindowPing) === 0;
}
