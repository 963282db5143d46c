/**
 * The client side of containerd's auth stream (containerd 1.7 and 2.x):
 * the daemon sends an AuthRequest{host, reference} each time its registry
 * client needs credentials for a host, and waits for exactly one
 * AuthResponse before it sends the next request. It never closes the
 * stream. A request without a response blocks the transfer for good, so
 * every request gets one: NONE when the callback returns nothing, fails
 * or times out.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Any, packAny, unpackAny } from "../any/index.js";
import {
  AuthRequestSchema,
  AuthResponseSchema,
  AuthType,
} from "../gen/containerd/types/transfer/registry_pb.js";
import type { Stream } from "../streaming/index.js";

/** A request of containerd for the credentials of one registry host. */
export interface RegistryAuthRequest {
  /** Registry host, with its port when it has one: `127.0.0.1:5000`. */
  host: string;
  /** The image reference of the transfer. */
  reference: string;
}

/**
 * Credentials for one host: a user name with a password or token, or a
 * refresh token (Docker's identity token) that containerd exchanges for an
 * access token at the registry's token server.
 */
export type RegistryCredentials =
  | { username: string; secret: string }
  | { refreshToken: string };

/**
 * Returns the credentials for a host, or undefined to go on without. The
 * signal aborts when the transfer ends or the lookup timed out.
 */
export type CredentialsCallback = (
  request: RegistryAuthRequest,
  signal: AbortSignal,
) => Promise<RegistryCredentials | undefined> | RegistryCredentials | undefined;

/**
 * Code of a registry warning:
 * - `credentials-failed`: the callback threw or returned something that
 *   is not credentials, so containerd got a response with no credentials.
 * - `credentials-timed-out`: the callback did not settle in time, so
 *   containerd got a response with no credentials.
 * - `invalid-auth-request`: containerd sent a message that is not an
 *   AuthRequest. It got a response with no credentials.
 * - `debug-log-failed`: the HTTP debug log stream failed.
 */
export type RegistryWarningCode =
  | "credentials-failed"
  | "credentials-timed-out"
  | "invalid-auth-request"
  | "debug-log-failed";

export interface RegistryWarning {
  code: RegistryWarningCode;
  message: string;
  /** Host of the auth request the warning concerns, if any. */
  host?: string;
  cause?: unknown;
}

export interface AuthResponderOptions {
  credentials: CredentialsCallback;
  /** Default 60 000 ms. */
  timeoutMs?: number;
  onWarning: (warning: RegistryWarning) => void;
}

type AuthResponseInit = MessageInitShape<typeof AuthResponseSchema>;

/**
 * Sends one AuthResponse for each AuthRequest on `stream`, in order.
 * Resolves when the daemon ends the stream; rejects when the stream fails
 * or the signal aborts.
 */
export async function answerAuthRequests(
  stream: Stream,
  options: AuthResponderOptions,
  signal: AbortSignal,
): Promise<void> {
  for (;;) {
    signal.throwIfAborted();
    const message = await stream.receive();
    if (message === undefined) {
      return;
    }

    const response = await lookUp(message, options, signal);

    signal.throwIfAborted();
    await stream.send(packAny(AuthResponseSchema, response));
  }
}

// Returns the response to one request. It catches every error of the
// callback, so that every request gets a response.
async function lookUp(
  message: Any,
  options: AuthResponderOptions,
  signal: AbortSignal,
): Promise<AuthResponseInit> {
  const none = { authType: AuthType.NONE };
  let request: RegistryAuthRequest;
  try {
    const decoded = unpackAny(message, AuthRequestSchema);
    request = { host: decoded.host, reference: decoded.reference };
  } catch (error) {
    options.onWarning({
      code: "invalid-auth-request",
      message: `invalid message on the auth stream: ${describe(error)}`,
      cause: error,
    });
    return none;
  }

  // A timer of its own, unlike AbortSignal.timeout, keeps the event loop
  // alive while the daemon waits for this response.
  const timeoutMs = options.timeoutMs ?? 60_000;
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), timeoutMs);
  const callSignal = AbortSignal.any([signal, timeout.signal]);
  try {
    const credentials = await settleBefore(
      Promise.resolve(options.credentials(request, callSignal)),
      callSignal,
    );
    return toAuthResponse(credentials);
  } catch (error) {
    if (signal.aborted) {
      return none;
    }
    const timedOut = timeout.signal.aborted;
    options.onWarning({
      code: timedOut ? "credentials-timed-out" : "credentials-failed",
      message: timedOut
        ? `credentials lookup for ${request.host} timed out after ` +
          `${timeoutMs} ms: sent no credentials`
        : `credentials lookup for ${request.host} failed: ` +
          `${describe(error)}: sent no credentials`,
      host: request.host,
      cause: error,
    });
    return none;
  } finally {
    clearTimeout(timer);
  }
}

function toAuthResponse(
  credentials: RegistryCredentials | undefined,
): AuthResponseInit {
  if (credentials === undefined) {
    return { authType: AuthType.NONE };
  }
  if ("refreshToken" in credentials && credentials.refreshToken) {
    return { authType: AuthType.REFRESH, secret: credentials.refreshToken };
  }
  if ("username" in credentials && typeof credentials.secret === "string") {
    return {
      authType: AuthType.CREDENTIALS,
      username: credentials.username,
      secret: credentials.secret,
    };
  }
  throw new TypeError(
    "the credentials callback returned neither {username, secret} nor " +
      "{refreshToken}",
  );
}

// Settles with `promise`, or rejects when `signal` aborts first.
function settleBefore<T>(promise: Promise<T>, signal: AbortSignal) {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => {
      signal.removeEventListener("abort", onAbort);
    });
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
