import { packAny } from "../any/index.js";
import { Code, TransferError } from "../errors/index.js";
import { ContainerPathSchema } from "../gen/containerd/types/transfer/container_pb.js";
import type { TransferObject } from "./transfer-object.js";

export interface ContainerPathInit {
  containerId: string;
  /** Path inside the container; `/` when empty. */
  path?: string;
  /** Archive only the named entry without walking a directory (a stat). */
  noWalk?: boolean;
  /** Apply the archive's numeric uid and gid when extracting. */
  preserveOwnership?: boolean;
}

/**
 * A path inside a container: the source of a tar archive (copy out) or the
 * directory a tar archive is extracted under (copy in). It carries no
 * stream.
 */
export class ContainerPath implements TransferObject {
  readonly containerId: string;
  readonly path: string;
  readonly noWalk: boolean;
  readonly preserveOwnership: boolean;

  constructor(init: ContainerPathInit) {
    if (!init.containerId) {
      throw new TransferError(
        "missing container id: give the id of the container the path is in",
        Code.InvalidArgument,
      );
    }
    this.containerId = init.containerId;
    this.path = init.path || "/";
    this.noWalk = init.noWalk ?? false;
    this.preserveOwnership = init.preserveOwnership ?? false;
  }

  async marshalAny() {
    return packAny(ContainerPathSchema, {
      containerId: this.containerId,
      path: this.path,
      noWalk: this.noWalk,
      preserveOwnership: this.preserveOwnership,
    });
  }
}
