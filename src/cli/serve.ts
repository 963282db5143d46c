import { Code, TransferError } from "../errors/index.js";
import { TransferServer } from "../server/index.js";
import { stderrLogger } from "./stderr-logger.js";

export interface ServeFlags {
  root: string;
  ttrpc?: string;
  grpc?: string;
}

/** Serves until `signal` aborts, then closes every stream and socket. */
export async function runServe(
  flags: ServeFlags,
  signal: AbortSignal,
): Promise<void> {
  if (!flags.ttrpc && !flags.grpc) {
    throw new TransferError(
      "missing socket: give --ttrpc SOCKET, --grpc SOCKET or both",
      Code.InvalidArgument,
    );
  }
  const log = stderrLogger();
  const server = new TransferServer({ root: flags.root, log });
  await server.listen({ ttrpc: flags.ttrpc, grpc: flags.grpc });
  log.info("server started", { root: flags.root, pid: process.pid });
  await new Promise<void>((resolve) => {
    if (signal.aborted) {
      resolve();
    }
    signal.addEventListener("abort", () => resolve(), { once: true });
  });
  log.info("stopping", { reason: String(signal.reason?.message ?? "") });
  await server.close();
}
