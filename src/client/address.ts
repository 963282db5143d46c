import { Code, TransferError } from "../errors/index.js";
import type { Protocol } from "../transport/index.js";
import { checkSocketPathLength } from "../transport/socket-path.js";

/** containerd's default gRPC socket. */
export const defaultAddress = "/run/containerd/containerd.sock";
/** containerd's default namespace. */
export const defaultNamespace = "default";

const namespacePattern = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;

/**
 * Returns the unix socket path of an address: a path, or `unix://PATH`.
 * Other schemes are rejected because containerd and its shims listen on
 * unix sockets.
 */
export function socketPath(address: string): string {
  if (address.startsWith("unix://")) {
    const path = address.slice("unix://".length);
    if (path === "") {
      throw new TransferError(
        `invalid address "${address}": it names no socket; give ` +
          "unix://PATH or the path alone",
        Code.InvalidArgument,
      );
    }
    return checkedLength(path);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(address)) {
    throw new TransferError(
      `invalid address "${address}": give a unix socket path or unix://PATH`,
      Code.InvalidArgument,
    );
  }
  if (address === "") {
    throw new TransferError(
      "missing address: give the path of a unix socket or unix://PATH " +
        "(the command reads it from --address or CONTAINERD_ADDRESS)",
      Code.InvalidArgument,
    );
  }
  return checkedLength(address);
}

function checkedLength(path: string): string {
  try {
    checkSocketPathLength(path);
  } catch (error) {
    throw TransferError.from(error);
  }
  return path;
}

/** Checks a namespace the way containerd does: 1 to 76 characters. */
export function checkNamespace(namespace: string): string {
  if (namespace.length > 76 || !namespacePattern.test(namespace)) {
    // A header repeated many times can make a value of any length.
    const truncated =
      namespace.length > 100 ? `${namespace.slice(0, 100)}...` : namespace;
    throw new TransferError(
      `invalid namespace "${truncated}": use 1 to 76 letters and digits, ` +
        "separated by single '.', '_' or '-'",
      Code.InvalidArgument,
    );
  }
  return namespace;
}

/** Checks a protocol name given on the command line or in options. */
export function checkProtocol(protocol: string): Protocol {
  if (protocol !== "grpc" && protocol !== "ttrpc") {
    throw new TransferError(
      `invalid protocol "${protocol}": use grpc (containerd's socket) or ` +
        "ttrpc (a shim's socket)",
      Code.InvalidArgument,
    );
  }
  return protocol;
}
