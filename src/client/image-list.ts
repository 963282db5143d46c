/**
 * Image records through containerd's Images service, the metadata store
 * that maps image names to content. It is a containerd daemon service:
 * shims and `containerd-transfer serve` do not serve it.
 */

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { Code, TransferError } from "../errors/index.js";
import {
  type Image,
  Images,
} from "../gen/containerd/services/images/v1/images_pb.js";
import type { Client } from "./client.js";

/** An image known to containerd: a name and the content it points to. */
export interface ImageRecord {
  name: string;
  labels: Record<string, string>;
  /** The manifest or index the name points to. */
  target: ImageTarget;
  /** Undefined when the daemon did not send the time. */
  createdAt: Date | undefined;
  updatedAt: Date | undefined;
}

/** A content descriptor as containerd stores it. */
export interface ImageTarget {
  mediaType: string;
  /** `sha256:` followed by 64 hexadecimal digits. */
  digest: string;
  /** Size in bytes of the manifest or index itself, not of the image. */
  sizeBytes: number;
  annotations: Record<string, string>;
}

export interface ListImagesOptions {
  /**
   * containerd filters, such as `name==example.test/app:1` or
   * `name~=^example`; an image is listed when it matches any of them.
   * Default all images.
   */
  filters?: string[];
  signal?: AbortSignal;
}

/** Lists the images of the client's namespace, sorted by name. */
export async function listImages(
  client: Client,
  options: ListImagesOptions = {},
): Promise<ImageRecord[]> {
  const service = createClient(Images, client.transport);
  try {
    const response = await service.list(
      { filters: options.filters ?? [] },
      { signal: options.signal, headers: client.headers },
    );
    return response.images.map(toRecord).sort(byName);
  } catch (error) {
    throw TransferError.from(error);
  }
}

/** Returns the image `name`; rejects with kind "not found" when unknown. */
export async function getImage(
  client: Client,
  name: string,
  options: { signal?: AbortSignal } = {},
): Promise<ImageRecord> {
  const service = createClient(Images, client.transport);
  try {
    const response = await service.get(
      { name },
      { signal: options.signal, headers: client.headers },
    );
    if (!response.image) {
      throw new TransferError(`image "${name}": not found`, Code.NotFound);
    }
    return toRecord(response.image);
  } catch (error) {
    throw TransferError.from(error);
  }
}

export interface DeleteImageOptions {
  /** Waits for containerd's garbage collection before returning. */
  sync?: boolean;
  signal?: AbortSignal;
}

/**
 * Deletes the image name `name`. Its content stays until containerd's
 * garbage collector finds nothing else that uses it. Rejects with kind
 * "not found" when the name is unknown.
 */
export async function deleteImage(
  client: Client,
  name: string,
  options: DeleteImageOptions = {},
): Promise<void> {
  const service = createClient(Images, client.transport);
  try {
    await service.delete(
      { name, sync: options.sync ?? false },
      { signal: options.signal, headers: client.headers },
    );
  } catch (error) {
    throw TransferError.from(error);
  }
}

function toRecord(image: Image): ImageRecord {
  return {
    name: image.name,
    labels: { ...image.labels },
    target: {
      mediaType: image.target?.mediaType ?? "",
      digest: image.target?.digest ?? "",
      sizeBytes: Number(image.target?.size ?? 0n),
      annotations: { ...image.target?.annotations },
    },
    createdAt: image.createdAt ? timestampDate(image.createdAt) : undefined,
    updatedAt: image.updatedAt ? timestampDate(image.updatedAt) : undefined,
  };
}

/** Orders images by name, comparing UTF-16 code units. */
function byName(a: { name: string }, b: { name: string }): number {
  if (a.name < b.name) {
    return -1;
  }
  return a.name > b.name ? 1 : 0;
}
