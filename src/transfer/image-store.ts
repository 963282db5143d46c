import type { MessageInitShape } from "@bufbuild/protobuf";
import { packAny } from "../any/index.js";
import { ImageStoreSchema } from "../gen/containerd/types/transfer/imagestore_pb.js";
import type { TransferObject } from "./transfer-object.js";

/** The fields of containerd's ImageStore transfer end. */
export type ImageStoreInit = MessageInitShape<typeof ImageStoreSchema>;

/**
 * containerd's image store: the destination of an import, pull or tag, the
 * source of an export, push or tag. `name` is the image name; `platforms`
 * filters content (empty means all); `unpacks` names platform and
 * snapshotter pairs to unpack after a pull or import.
 */
export class ImageStore implements TransferObject {
  readonly init: ImageStoreInit;

  constructor(init: ImageStoreInit | string = {}) {
    this.init = typeof init === "string" ? { name: init } : init;
  }

  async marshalAny() {
    return packAny(ImageStoreSchema, this.init);
  }
}
