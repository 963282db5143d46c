/**
 * Fixes for three behaviours of Node.js's HTTP/2 client streams (seen on
 * Node.js 20.20) that connect-node 2.1 does not handle for gRPC.
 */
import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";

const { NGHTTP2_NO_ERROR, NGHTTP2_STREAM_CLOSED } = http2.constants;

// The Writable state that Node.js's own http2 code reads; @types/node does
// not declare it.
interface WritableInternals {
  _writableState?: { ending: boolean };
}

/**
 * Makes a call fail, instead of hang or report Canceled, when its stream
 * ends without a status, and makes a cancel send RST_STREAM alone.
 *
 * connect-node maps a closed stream by its RST_STREAM code alone:
 * - When the connection dies under a stream, Node.js closes the stream
 *   with CANCEL, which connect-node reports as Canceled as if the caller
 *   had cancelled. This fails the call with Unavailable first.
 * - When the server resets a stream with NO_ERROR, or ends it, before it
 *   sent its status, connect-node reports no error and a unary call waits
 *   forever for response headers. This fails it with Internal, as grpc-go
 *   clients do.
 * A stream that the server ended, reset with another code, or that the
 * caller cancelled is left to connect-node.
 *
 * Node.js's ClientHttp2Stream.close(code) ends the writable side before it
 * sends RST_STREAM, which puts an empty DATA frame with END_STREAM on the
 * wire first. A server reads that as the client's half-close, so a
 * cancelled upload would look complete to it. grpc-go clients cancel with
 * RST_STREAM alone. Node.js skips the END_STREAM when the writable side is
 * already ending, so the wrapper marks it so first.
 */
export function watchStream(
  stream: http2.ClientHttp2Stream,
  describe: string,
  closedReason: () => ConnectError | undefined,
  lostCause: () => Error | undefined = () => undefined,
): void {
  const session = stream.session;
  let settled = false;

  // connect-node cancels a call with close(code). Node.js calls close()
  // with CANCEL too, on every stream, when the socket has closed.
  const close = stream.close.bind(stream);
  stream.close = (code?: number, callback?: () => void) => {
    if (!isLost(session)) {
      settled = true;
      const writable = (stream as WritableInternals)._writableState;
      if (code !== undefined && code !== NGHTTP2_NO_ERROR && writable) {
        writable.ending = true;
      }
    }
    close(code, callback);
  };

  // The status comes in trailers, or in the response headers when they
  // end the stream. A stream that ends without either has no status.
  stream.once("trailers", () => {
    settled = true;
  });

  // "aborted" comes when the server resets the stream while the request is
  // still being written; Node.js then waits for a read that never comes
  // before it emits "close".
  const check = () => {
    if (settled || stream.endAfterHeaders) {
      return;
    }
    const error = failure(stream, session, describe, closedReason, lostCause);
    // connect-node listens for "error" for the whole life of the stream;
    // without a listener, emitting would throw.
    if (error && stream.listenerCount("error") > 0) {
      settled = true;
      stream.emit("error", error);
    }
  };
  stream.once("aborted", check);
  stream.once("close", check);
}

function failure(
  stream: http2.ClientHttp2Stream,
  session: http2.Http2Session | undefined,
  describe: string,
  closedReason: () => ConnectError | undefined,
  lostCause: () => Error | undefined,
): ConnectError | undefined {
  if (isLost(session)) {
    const cause = lostCause();
    return (
      closedReason() ??
      new ConnectError(
        `connection lost during ${describe}` +
          (cause ? `: ${cause.message}` : ""),
        Code.Unavailable,
        undefined,
        undefined,
        cause,
      )
    );
  }
  const code = stream.rstCode ?? NGHTTP2_NO_ERROR;
  if (code !== NGHTTP2_NO_ERROR && code !== NGHTTP2_STREAM_CLOSED) {
    return undefined;
  }
  return new ConnectError(
    `server ended ${describe} without sending a status`,
    Code.Internal,
  );
}

function isLost(session: http2.Http2Session | undefined): boolean {
  return (
    !session || session.destroyed || session.closed || session.socket.destroyed
  );
}
