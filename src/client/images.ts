/**
 * Image operations through containerd's Transfer service: import an image
 * archive, export images as an archive, and tag an image. Listing goes
 * through the Images service (image-list.ts).
 */
import { Code, TransferError } from "../errors/index.js";
import {
  type ByteSink,
  type ByteSource,
  watchStream,
} from "../streaming/index.js";
import { ImageStore, type Progress } from "../transfer/index.js";
import type { Client } from "./client.js";
import { ImageExportSink, ImageImportSource } from "./image-ends.js";
import { checkedArchive, importStoreInit } from "./image-import.js";
import {
  hostPlatform,
  type PlatformSpec,
  parsePlatform,
} from "./image-platform.js";
import { checkImageName } from "./registry.js";

export interface ImageOperationOptions {
  signal?: AbortSignal;
  /**
   * Receives containerd's progress events, such as `Importing`, `saved`
   * with the image name, and `Completed import`; all of them arrive
   * before the operation settles.
   */
  onProgress?: (event: Progress) => void;
}

export interface ImportImageOptions extends ImageOperationOptions {
  /**
   * Stores the archive's index as this image name as well. The index lists
   * every manifest of the archive, so the image covers all its platforms.
   * It must be a valid image reference.
   */
  name?: string;
  /**
   * Prefix for the names found in the archive: only names under it are
   * kept, and tag-only names become `BASE:TAG`. Default: names are kept
   * as they are, and tag-only names become `import-YYYY-MM-DD:TAG`. It
   * must be a repository name without tag or digest.
   */
  baseName?: string;
  /** Also stores each manifest as `BASE@DIGEST`. */
  digests?: boolean;
  /** Labels set on every image created. */
  labels?: Record<string, string>;
  /**
   * Platforms whose content is imported, as `os/arch[/variant]` or fields.
   * Default the platform of this machine.
   */
  platforms?: PlatformSpec[];
  /** Imports the content of every platform in the archive. */
  allPlatforms?: boolean;
  /**
   * Unpacks the imported platforms into a snapshotter: `true` for the
   * daemon's default snapshotter, or its name. containerd unpacks only
   * platforms that its transfer plugin is configured to unpack.
   */
  unpack?: boolean | string;
  /**
   * Media type of the archive. Empty (the default) lets containerd detect
   * gzip or zstd compression; any other value means an uncompressed tar.
   */
  mediaType?: string;
  /** Compresses uncompressed layers while importing. */
  forceCompress?: boolean;
  /** Called with the archive bytes sent so far. */
  onBytes?: (totalBytes: number) => void;
}

export interface ImportImageResult {
  /** Names of the images containerd created or updated, in its order. */
  images: string[];
}

/**
 * Imports an OCI or Docker image archive (tar, optionally gzip or zstd
 * compressed) read from `source`. Resolves when containerd has stored the
 * images. Rejects with kind "not found" when the archive names no image
 * that the naming options keep, because containerd then stores nothing
 * that would outlive its garbage collection. An 'error' of a Node
 * `source`, even one emitted before the import reads it, rejects with
 * that error.
 */
export async function importImage(
  client: Client,
  source: ByteSource,
  options: ImportImageOptions = {},
): Promise<ImportImageResult> {
  watchStream(source);
  if (options.name !== undefined) {
    checkImageName(options.name);
  }
  if (options.baseName !== undefined) {
    checkImageName(options.baseName, "base name", true);
  }
  const platforms = options.allPlatforms
    ? []
    : (options.platforms ?? [hostPlatform()]).map(parsePlatform);
  let unpackSnapshotter: string | undefined;
  if (options.unpack === true) {
    unpackSnapshotter = "";
  } else if (typeof options.unpack === "string") {
    unpackSnapshotter = options.unpack;
  }
  const destination = new ImageStore(
    importStoreInit({
      indexName: options.name,
      baseName: options.baseName,
      digests: options.digests,
      labels: options.labels,
      platforms,
      unpackSnapshotter,
    }),
  );
  const archive = new ImageImportSource(checkedArchive(source), {
    mediaType: options.mediaType,
    forceCompress: options.forceCompress,
    onBytes: options.onBytes,
  });

  const images: string[] = [];
  try {
    await client.transfer(archive, destination, {
      signal: options.signal,
      onProgress: (event) => {
        if (event.event === "saved" && event.name !== "") {
          images.push(event.name);
        }
        options.onProgress?.(event);
      },
    });
  } catch (error) {
    // containerd's import errors name no context ("unexpected EOF").
    const failure = TransferError.from(error);
    if (failure.code === Code.Canceled) {
      throw failure;
    }
    throw new TransferError(
      `image import failed: ${failure.rawMessage}`,
      failure.code,
      failure,
    );
  }
  if (images.length === 0) {
    throw new TransferError(
      "the archive names no image to store, so containerd kept nothing: " +
        "set a name, or a base name that matches the archive's names",
      Code.NotFound,
    );
  }
  return { images };
}

export interface ExportImageOptions extends ImageOperationOptions {
  /**
   * Platforms to export, as `os/arch[/variant]` or fields. Default the
   * daemon's own platform, matched strictly.
   */
  platforms?: PlatformSpec[];
  /** Exports every platform; each must be present in the content store. */
  allPlatforms?: boolean;
  /** Leaves out the Docker `manifest.json`, so `docker load` cannot read it. */
  skipCompatibilityManifest?: boolean;
  /** Leaves out non-distributable (foreign) layers. */
  skipNonDistributable?: boolean;
  /** Whether to end `sink` after the archive. Default true. */
  endSink?: boolean;
  /**
   * Declares that `sink` is done with a chunk once it has called the
   * chunk's write callback, as a file or a pipe is and a PassThrough is
   * not, so that received memory can be reused. Default false.
   */
  reuseChunks?: boolean;
  /** Called with the archive bytes received so far. */
  onBytes?: (totalBytes: number) => void;
  /**
   * How long to wait for more bytes once containerd reported success,
   * before an archive without its end-of-archive marker is reported as
   * truncated (kind "data loss"). Default 30 000 ms.
   */
  idleTimeoutMs?: number;
}

/** Window granted to containerd while it sends an export archive. */
const exportWindowBytes = 1024 * 1024;

/**
 * Writes the images `names` as one uncompressed OCI archive, with a Docker
 * `manifest.json` unless skipped, to `sink`. Resolves with the archive
 * size once its tar end-of-archive marker arrived and the sink flushed;
 * containerd never ends the export stream itself. Rejects with kind "not
 * found" for an unknown name and "data loss" for a truncated archive,
 * and with the error of a Node `sink`, even one emitted before the export
 * writes to it.
 */
export async function exportImage(
  client: Client,
  names: readonly string[],
  sink: ByteSink,
  options: ExportImageOptions = {},
): Promise<{ bytes: number }> {
  watchStream(sink);
  checkNames(names, "export");
  let bytes = 0;
  // Like `ctr images export`: every name is an extra reference, so the
  // index lists one manifest per name with its name annotations.
  const source = new ImageStore({
    extraReferences: names.map((name) => ({ name })),
  });
  const destination = new ImageExportSink(sink, {
    platforms: (options.platforms ?? []).map(parsePlatform),
    allPlatforms: options.allPlatforms ?? false,
    skipCompatibilityManifest: options.skipCompatibilityManifest ?? false,
    skipNonDistributable: options.skipNonDistributable ?? false,
    endSink: options.endSink,
    reuseChunks: options.reuseChunks,
    idleTimeoutMs: options.idleTimeoutMs,
    // containerd's sender keeps its credit in an int32 and sends as much as
    // it is granted, so a larger grant saves a round trip per 64 KiB.
    windowBytes: exportWindowBytes,
    onBytes: (total) => {
      bytes = total;
      options.onBytes?.(total);
    },
  });
  await client.transfer(source, destination, {
    signal: options.signal,
    onProgress: options.onProgress,
  });
  return { bytes };
}

export interface TagImageOptions extends ImageOperationOptions {
  /** Labels set on the new names. */
  labels?: Record<string, string>;
}

/**
 * Points the name or names `target` at the content of the image
 * `source`. containerd replaces a target that already exists. Rejects
 * with kind "not found" when `source` is unknown, and with "invalid
 * argument" for a target outside the image reference grammar.
 */
export async function tagImage(
  client: Client,
  source: string,
  target: string | readonly string[],
  options: TagImageOptions = {},
): Promise<void> {
  const targets = typeof target === "string" ? [target] : [...target];
  checkNames([source], "tag");
  checkNames(targets, "tag");
  for (const name of targets) {
    checkImageName(name);
  }
  const [first, ...rest] = targets as [string, ...string[]];
  await client.transfer(
    new ImageStore(source),
    new ImageStore({
      name: first,
      labels: options.labels ?? {},
      extraReferences: rest.map((name) => ({ name })),
    }),
    { signal: options.signal, onProgress: options.onProgress },
  );
}

function checkNames(names: readonly string[], operation: string): void {
  if (names.length === 0) {
    throw new TransferError(
      `no image name to ${operation}: name at least one image`,
      Code.InvalidArgument,
    );
  }
  for (const name of names) {
    if (name.trim() === "" || name !== name.trim()) {
      throw new TransferError(
        `invalid image name "${name}": it is empty or has spaces around it`,
        Code.InvalidArgument,
      );
    }
  }
}
