/**
 * The pieces of an image import: the ImageStore that decides which names
 * the imported images get, and a check of the archive on its way out.
 */
import { Code, TransferError } from "../errors/index.js";
import { type ByteSource, readSource } from "../streaming/index.js";
import { type ImageStoreInit, TarTrailerDetector } from "../transfer/index.js";
import { hostPlatform, type PlatformInit } from "./image-platform.js";

/** How containerd names and filters what it imports. */
export interface ImportNaming {
  /** Stores the archive's index, with every manifest in it, as this name. */
  indexName?: string;
  /**
   * Name prefix for the images named inside the archive. Given, only names
   * under it are kept. Unset, full names are kept as they are and tag-only
   * names are put under `import-YYYY-MM-DD`, as `ctr images import` does.
   */
  baseName?: string;
  /** Also stores every manifest as `BASE@DIGEST`. */
  digests?: boolean;
  labels?: Record<string, string>;
  /** Platforms whose content is imported; empty means every platform. */
  platforms: PlatformInit[];
  /** Unpacks into the snapshotter after the import: "" is the default. */
  unpackSnapshotter?: string;
}

/**
 * Returns the ImageStore fields for an import. containerd 1.7 stores the
 * archive's index under `name`, and names each manifest of the index from
 * its `io.containerd.image.name` annotation, or else from its
 * `org.opencontainers.image.ref.name` annotation, through the prefix
 * references in `extra_references`.
 */
export function importStoreInit(
  naming: ImportNaming,
  now: Date = new Date(),
): ImageStoreInit {
  const prefix = naming.baseName ?? `import-${now.toISOString().slice(0, 10)}`;
  const unpackPlatforms =
    naming.platforms.length > 0 ? naming.platforms : [hostPlatform()];
  return {
    name: naming.indexName ?? "",
    labels: naming.labels ?? {},
    platforms: naming.platforms,
    extraReferences: [
      {
        name: prefix,
        isPrefix: true,
        // Without a base name, names from the archive are kept even when
        // they lie outside the generated prefix.
        allowOverwrite: naming.baseName === undefined,
        addDigest: naming.digests ?? false,
      },
    ],
    unpacks:
      naming.unpackSnapshotter === undefined
        ? []
        : unpackPlatforms.map((platform) => ({
            platform,
            snapshotter: naming.unpackSnapshotter,
          })),
  };
}

const gzipMagic = [0x1f, 0x8b];
const zstdMagic = [0x28, 0xb5, 0x2f, 0xfd];

/**
 * Passes `source` through and checks it on the way: it must start with a
 * tar header or gzip or zstd data, and an uncompressed tar must end with
 * its end-of-archive marker. containerd 1.7 reports a non-tar input only
 * as "unexpected EOF", and imports a tar cut at an entry boundary as if it
 * were whole. Throws InvalidArgument or DataLoss, which fails the transfer
 * before the stream is half-closed.
 */
export async function* checkedArchive(
  source: ByteSource,
): AsyncGenerator<Uint8Array> {
  const detector = new TarTrailerDetector();
  let head: Uint8Array = new Uint8Array(0);
  let kind: "tar" | "compressed" | undefined;
  let total = 0;
  for await (const chunk of readSource(source)) {
    total += chunk.length;
    if (kind === undefined) {
      head = concat(head, chunk);
      if (
        head.length < 512 &&
        !startsWith(head, gzipMagic) &&
        !startsWith(head, zstdMagic)
      ) {
        continue;
      }
      kind = archiveKind(head);
      if (kind === "tar") {
        detector.push(head);
      }
      yield head;
      continue;
    }
    if (kind === "tar") {
      detector.push(chunk);
    }
    yield chunk;
  }
  if (kind === undefined) {
    throw new TransferError(
      `invalid image archive: it has only ${total} bytes, less than one ` +
        "512-byte tar header",
      Code.InvalidArgument,
    );
  }
  if (kind === "tar" && !detector.complete) {
    throw new TransferError(
      `image archive truncated: it ended after ${total} bytes without the ` +
        "tar end-of-archive marker",
      Code.DataLoss,
    );
  }
}

function archiveKind(head: Uint8Array): "tar" | "compressed" {
  if (startsWith(head, gzipMagic) || startsWith(head, zstdMagic)) {
    return "compressed";
  }
  if (isTarHeader(head.subarray(0, 512))) {
    return "tar";
  }
  throw new TransferError(
    "invalid image archive: the first 512 bytes are neither a tar header " +
      "nor the start of gzip or zstd data",
    Code.InvalidArgument,
  );
}

/** Whether a block is a tar header: its checksum field matches its bytes. */
function isTarHeader(block: Uint8Array): boolean {
  const text = new TextDecoder().decode(block.subarray(148, 156));
  const stored = Number.parseInt(text.replace(/[\0 ]+$/, "").trim(), 8);
  if (!Number.isFinite(stored)) {
    return false;
  }
  let sum = 0;
  for (let i = 0; i < 512; i++) {
    sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  }
  return sum === stored;
}

function startsWith(bytes: Uint8Array, magic: number[]): boolean {
  return (
    bytes.length >= magic.length && magic.every((byte, i) => bytes[i] === byte)
  );
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) {
    return b;
  }
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}
