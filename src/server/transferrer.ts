import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ProgressSchema } from "../gen/containerd/types/transfer/progress_pb.js";
import type { Logger } from "./logger.js";
import type { TransferEnd } from "./transfer-ends.js";

export interface TransferContext {
  namespace: string;
  signal: AbortSignal;
  log: Logger;
  /** Sends a progress event if the client asked for them. */
  progress(event: MessageInitShape<typeof ProgressSchema>): Promise<void>;
}

/**
 * Handles some pairs of transfer ends. Returns false for a pair it does not
 * handle, so the next transferrer is tried.
 */
export interface Transferrer {
  readonly name: string;
  transfer(
    source: TransferEnd,
    destination: TransferEnd,
    context: TransferContext,
  ): Promise<boolean>;
}
