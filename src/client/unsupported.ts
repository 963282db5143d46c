/**
 * The error for an endpoint that cannot copy container paths at all, such
 * as containerd's own socket.
 */
import { Code, TransferError } from "../errors/index.js";
import type { Client } from "./client.js";

/**
 * Rejects with a clear error when the endpoint cannot copy container
 * paths at all, such as containerd's own socket, and otherwise passes the
 * result or error of `copy` through.
 */
export async function explainUnsupported<T>(
  client: Client,
  copy: Promise<T>,
): Promise<T> {
  try {
    return await copy;
  } catch (error) {
    throw containerPathUnsupported(client, error) ?? error;
  }
}

// containerd 1.7, the version tested here, cannot decode these types and
// returns Unknown "type with url containerd.types.transfer.ContainerPath:
// not found". A peer that decodes them without a transferrer for them
// returns Unimplemented.
const containerPathTypes =
  /containerd\.types\.transfer\.(ContainerPath|ReadStream|WriteStream)\b/;

/** Returns the clear error for an endpoint without container paths. */
export function containerPathUnsupported(
  client: Client,
  error: unknown,
): TransferError | undefined {
  const failure = TransferError.from(error);
  const unsupported =
    containerPathTypes.test(failure.rawMessage) &&
    (failure.code === Code.Unimplemented ||
      failure.rawMessage.includes("type with url"));
  if (!unsupported) {
    return undefined;
  }
  return new TransferError(
    `${client.address} does not implement copying to or from a container ` +
      `path (it answered: ${failure.rawMessage}). containerd's own socket ` +
      "cannot do it: connect to a shim that serves the Transfer service " +
      "for the container, or to `containerd-transfer serve`",
    Code.Unimplemented,
    error,
  );
}
