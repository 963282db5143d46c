/**
 * One error class for every layer and both transports. It carries the gRPC
 * status code, containerd's error kind derived from it, the peer's message
 * and the original cause.
 */
import { Code, ConnectError } from "@connectrpc/connect";

export { Code };

/** containerd's error kinds (errdefs), named by their error text. */
export type ErrorKind =
  | "unknown"
  | "invalid argument"
  | "not found"
  | "already exists"
  | "permission denied"
  | "resource exhausted"
  | "failed precondition"
  | "conflict"
  | "not modified"
  | "aborted"
  | "out of range"
  | "not implemented"
  | "internal"
  | "unavailable"
  | "data loss"
  | "unauthorized"
  | "canceled"
  | "deadline exceeded";

const kindByCode: Record<Code, ErrorKind> = {
  [Code.Canceled]: "canceled",
  [Code.Unknown]: "unknown",
  [Code.InvalidArgument]: "invalid argument",
  [Code.DeadlineExceeded]: "deadline exceeded",
  [Code.NotFound]: "not found",
  [Code.AlreadyExists]: "already exists",
  [Code.PermissionDenied]: "permission denied",
  [Code.ResourceExhausted]: "resource exhausted",
  [Code.FailedPrecondition]: "failed precondition",
  [Code.Aborted]: "aborted",
  [Code.OutOfRange]: "out of range",
  [Code.Unimplemented]: "not implemented",
  [Code.Internal]: "internal",
  [Code.Unavailable]: "unavailable",
  [Code.DataLoss]: "data loss",
  [Code.Unauthenticated]: "unauthorized",
};

const codeByKind = new Map<ErrorKind, Code>(
  Object.entries(kindByCode).map(([code, kind]) => [kind, Number(code)]),
);
codeByKind.set("conflict", Code.FailedPrecondition);
codeByKind.set("not modified", Code.FailedPrecondition);

// Go servers that do not convert errors (containerd's Streaming handler,
// ttrpc shims) send Unknown with errdefs text such as "stream x: not found".
const kindSuffixes: ErrorKind[] = [
  "not found",
  "already exists",
  "invalid argument",
  "failed precondition",
  "permission denied",
  "unavailable",
  "not implemented",
  "resource exhausted",
  "conflict",
  "not modified",
  "aborted",
  "out of range",
  "internal",
  "data loss",
  "unauthorized",
];

const brand = Symbol.for("containerd-transfer.TransferError");

/** Name of a code in the form gRPC uses in text, such as `not_found`. */
export function codeName(code: Code): string {
  return (Code[code] ?? `code_${code}`)
    .replace(/([a-z])([A-Z])/g, "$1_$2")
    .toLowerCase();
}

export class TransferError extends Error {
  override name = "TransferError";
  /** gRPC status code. */
  readonly code: Code;
  /** containerd error kind; finer than the code for Conflict and NotModified. */
  readonly kind: ErrorKind;
  /** The message without the code prefix. */
  readonly rawMessage: string;

  constructor(message: string, code: Code = Code.Unknown, cause?: unknown) {
    super(`[${codeName(code)}] ${message}`, { cause });
    this.code = code;
    this.rawMessage = message;
    this.kind = kindOf(code, message);
    Object.defineProperty(this, brand, { value: true });
  }

  /** Whether this error is of the given containerd kind. */
  is(kind: ErrorKind): boolean {
    return this.kind === kind;
  }

  /**
   * Converts any caught value to a TransferError. An existing one is returned
   * as it is; a ConnectError keeps its code and message; an abort becomes
   * Canceled (or DeadlineExceeded for a timeout) and keeps the signal's
   * reason as cause; Node.js system errors map through {@link codeOfNodeError}.
   */
  static from(reason: unknown, fallback: Code = Code.Unknown): TransferError {
    if (reason instanceof TransferError) {
      return reason;
    }
    if (reason instanceof ConnectError) {
      const kindCode =
        reason.code === Code.Unknown
          ? (codeOfKindText(reason.rawMessage) ?? reason.code)
          : reason.code;
      return new TransferError(reason.rawMessage, kindCode, reason);
    }
    if (reason instanceof Error) {
      const code = codeOfNodeError(reason) ?? fallback;
      return new TransferError(reason.message, code, reason);
    }
    return new TransferError(String(reason), fallback, reason);
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && brand in value;
  }
}

/** Returns the gRPC code for a containerd kind. */
export function codeOfKind(kind: ErrorKind): Code {
  return codeByKind.get(kind) ?? Code.Unknown;
}

function kindOf(code: Code, message: string): ErrorKind {
  if (code === Code.FailedPrecondition) {
    if (message === "conflict" || message.endsWith(": conflict")) {
      return "conflict";
    }
    if (message === "not modified" || message.endsWith(": not modified")) {
      return "not modified";
    }
  }
  return kindByCode[code] ?? "unknown";
}

function codeOfKindText(message: string): Code | undefined {
  for (const kind of kindSuffixes) {
    if (message === kind || message.endsWith(`: ${kind}`)) {
      return codeOfKind(kind);
    }
  }
  return undefined;
}

/**
 * Maps a Node.js error to a gRPC code by walking its cause chain once:
 * aborts and timeouts, a peer that went away, and file system errors.
 * Returns undefined for an error it does not recognise.
 */
export function codeOfNodeError(error: unknown): Code | undefined {
  for (let e = error, depth = 0; e && depth < 8; depth++) {
    if (e instanceof TransferError || e instanceof ConnectError) {
      return e.code;
    }
    if (!(e instanceof Error)) {
      return undefined;
    }
    if (e.name === "TimeoutError") {
      return Code.DeadlineExceeded;
    }
    if (e.name === "AbortError") {
      return Code.Canceled;
    }
    switch ((e as NodeJS.ErrnoException).code) {
      case "ECONNRESET":
      case "ECONNREFUSED":
      case "EPIPE":
      case "ERR_STREAM_DESTROYED":
      case "ERR_STREAM_PREMATURE_CLOSE":
      case "ERR_SOCKET_CLOSED":
      case "ERR_HTTP2_STREAM_CANCEL":
      case "ERR_HTTP2_GOAWAY_SESSION":
      case "ERR_HTTP2_INVALID_SESSION":
        return Code.Unavailable;
      case "ENOENT":
      case "ENOTDIR":
        return Code.NotFound;
      case "EEXIST":
      case "ENOTEMPTY":
        return Code.AlreadyExists;
      case "EACCES":
      case "EPERM":
      case "EROFS":
        return Code.PermissionDenied;
      case "ENOSPC":
      case "EMFILE":
      case "ENFILE":
        return Code.ResourceExhausted;
      case "EISDIR":
      case "EINVAL":
      case "ENAMETOOLONG":
      case "ELOOP":
        return Code.InvalidArgument;
    }
    e = e.cause;
  }
  return undefined;
}

/** Converts a TransferError (or anything) to a ConnectError for a server. */
export function toConnectError(reason: unknown): ConnectError {
  if (reason instanceof ConnectError) {
    return reason;
  }
  const error = TransferError.from(reason);
  return new ConnectError(
    error.rawMessage,
    error.code,
    undefined,
    undefined,
    error,
  );
}

/** Returns the errno code of a caught Node error, such as `ENOENT`. */
export function errnoOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}
