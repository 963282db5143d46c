/**
 * An interceptor that reports a lost connection as Unavailable.
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

// Node.js error codes that mean the connection itself failed. connect-node
// maps some of them to Aborted or Internal, the codes a server uses for a
// client that hung up, but gRPC clients report Unavailable for them.
const connectionErrorCodes = new Set([
  "ECONNRESET",
  "EPIPE",
  "ERR_SOCKET_CLOSED",
  "ERR_STREAM_PREMATURE_CLOSE",
  "ERR_HTTP2_SESSION_ERROR",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_INVALID_SESSION",
  "ERR_HTTP2_STREAM_CANCEL",
]);

/**
 * Returns an interceptor that turns errors caused by a failed connection to
 * `path` into Unavailable, for unary calls and for every message of a
 * streaming response.
 */
export function connectionErrors(path: string): Interceptor {
  const convert = (error: unknown) => toUnavailable(error, path);
  return (next) => async (request) => {
    try {
      const response = await next(request);
      if (!response.stream) {
        return response;
      }
      return { ...response, message: mapErrors(response.message, convert) };
    } catch (error) {
      throw convert(error);
    }
  };
}

async function* mapErrors<T>(
  messages: AsyncIterable<T>,
  convert: (error: unknown) => unknown,
): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (error) {
    throw convert(error);
  }
}

function toUnavailable(error: unknown, path: string): unknown {
  if (!(error instanceof ConnectError) || error.code === Code.Unavailable) {
    return error;
  }
  const nodeCode = connectionErrorCode(error);
  if (nodeCode === undefined) {
    return error;
  }
  return new ConnectError(
    `connection to ${path} lost: ${error.rawMessage}`,
    Code.Unavailable,
    error.metadata,
    undefined,
    error,
  );
}

function connectionErrorCode(error: unknown): string | undefined {
  for (let e = error, depth = 0; e instanceof Error && depth < 8; depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === "string" && connectionErrorCodes.has(code)) {
      return code;
    }
    e = e.cause;
  }
  return undefined;
}
