/**
 * Builds image archives for the image tests: an OCI image layout and a
 * Docker `docker save` archive, each with one uncompressed layer that holds
 * one file of patterned bytes. The same options give the same bytes, so the
 * digests are known before containerd sees the archive.
 */
import { createHash } from "node:crypto";

export interface ImageArchive {
  /** The whole archive, end-of-archive marker included. */
  bytes: Buffer;
  /** Name recorded in the archive. */
  name: string;
  layerDigest: string;
  layerSize: number;
  configDigest: string;
  /**
   * Digest of the image manifest: written into the OCI archive; for the
   * Docker archive, the one containerd 1.7 derives (see dockerArchive).
   */
  manifestDigest: string;
}

export interface ArchiveOptions {
  /** Image name, such as `example.test/images/oci:1`. */
  name: string;
  /** Size of the one file in the layer. */
  fileBytes: number;
  /** Seed of the file's bytes. */
  seed: number;
}

const ociManifestType = "application/vnd.oci.image.manifest.v1+json";
const dockerManifestType =
  "application/vnd.docker.distribution.manifest.v2+json";

/**
 * Returns an OCI image layout archive. The index entry names the image
 * with the `io.containerd.image.name` and `org.opencontainers.image.ref.name`
 * annotations, like containerd's own export.
 */
export function ociArchive(options: ArchiveOptions): ImageArchive {
  const layer = layerTar(options);
  const config = configJson(layer.digest);
  const manifest = json({
    schemaVersion: 2,
    mediaType: ociManifestType,
    config: descriptor("application/vnd.oci.image.config.v1+json", config),
    layers: [descriptor("application/vnd.oci.image.layer.v1.tar", layer.bytes)],
  });
  const index = json({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [
      {
        ...descriptor(ociManifestType, manifest),
        annotations: {
          "io.containerd.image.name": options.name,
          "org.opencontainers.image.ref.name": tagOf(options.name),
        },
        platform: { architecture: goArch(), os: "linux" },
      },
    ],
  });
  const bytes = tar([
    ["oci-layout", json({ imageLayoutVersion: "1.0.0" })],
    ["index.json", index],
    [blobPath(config), config],
    [blobPath(layer.bytes), layer.bytes],
    [blobPath(manifest), manifest],
  ]);
  return {
    bytes,
    name: options.name,
    layerDigest: layer.digest,
    layerSize: layer.bytes.length,
    configDigest: digestOf(config),
    manifestDigest: digestOf(manifest),
  };
}

/**
 * Returns a `docker save` archive (manifest.json, config and layer.tar).
 * containerd 1.7 turns manifest.json into a Docker schema 2 manifest that
 * it serialises like Go's encoding/json; `manifestDigest` is the digest
 * of that serialisation, so a test that compares it checks the import.
 */
export function dockerArchive(options: ArchiveOptions): ImageArchive {
  const layer = layerTar(options);
  const config = configJson(layer.digest);
  const configHex = digestOf(config).slice("sha256:".length);
  const layerPath = `${layer.digest.slice("sha256:".length)}/layer.tar`;
  const manifestList = json([
    {
      Config: `${configHex}.json`,
      RepoTags: [options.name],
      Layers: [layerPath],
    },
  ]);
  const bytes = tar([
    [`${configHex}.json`, config],
    [layerPath, layer.bytes],
    ["manifest.json", manifestList],
  ]);
  const manifest = json({
    schemaVersion: 2,
    mediaType: dockerManifestType,
    config: descriptor(
      "application/vnd.docker.container.image.v1+json",
      config,
    ),
    layers: [
      descriptor("application/vnd.docker.image.rootfs.diff.tar", layer.bytes),
    ],
  });
  return {
    bytes,
    name: options.name,
    layerDigest: layer.digest,
    layerSize: layer.bytes.length,
    configDigest: digestOf(config),
    manifestDigest: digestOf(manifest),
  };
}

/** Returns the digest `sha256:HEX` of some bytes. */
export function digestOf(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** Returns containerd's architecture name for this machine. */
export function goArch(): string {
  const names: Record<string, string> = { x64: "amd64", ia32: "386" };
  return names[process.arch] ?? process.arch;
}

/** Builds a tar archive of regular files, mode 0644, owner 0:0, mtime 0. */
export function tar(entries: [string, Uint8Array][]): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, body] of entries) {
    blocks.push(tarHeader(name, body.length));
    blocks.push(Buffer.from(body.buffer, body.byteOffset, body.length));
    blocks.push(Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** Returns `size` bytes from a seeded xorshift32 generator. */
export function patternBytes(size: number, seed: number): Buffer {
  const words = new Uint32Array(Math.ceil(size / 4));
  let state = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    words[i] = state;
  }
  return Buffer.from(words.buffer, 0, size);
}

function layerTar(options: ArchiveOptions): { bytes: Buffer; digest: string } {
  const bytes = tar([
    ["data.bin", patternBytes(options.fileBytes, options.seed)],
  ]);
  return { bytes, digest: digestOf(bytes) };
}

function configJson(layerDigest: string): Buffer {
  return json({
    architecture: goArch(),
    os: "linux",
    config: { Cmd: ["/data.bin"] },
    rootfs: { type: "layers", diff_ids: [layerDigest] },
  });
}

function descriptor(mediaType: string, bytes: Buffer) {
  return { mediaType, digest: digestOf(bytes), size: bytes.length };
}

function blobPath(bytes: Buffer): string {
  return `blobs/sha256/${digestOf(bytes).slice("sha256:".length)}`;
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

function tagOf(name: string): string {
  const slash = name.lastIndexOf("/");
  const colon = name.lastIndexOf(":");
  return colon > slash ? name.slice(colon + 1) : "latest";
}

/** Returns the ustar header of a regular file, mode 0644, owner 0:0, mtime 0. */
export function tarHeader(name: string, size: number): Buffer {
  const block = Buffer.alloc(512);
  block.write(name, 0, 100, "utf8");
  octal(block, 100, 8, 0o644);
  octal(block, 108, 8, 0);
  octal(block, 116, 8, 0);
  octal(block, 124, 12, size);
  octal(block, 136, 12, 0);
  block.write("0", 156, 1, "ascii");
  block.write("ustar\u000000", 257, 8, "ascii");
  block.fill(" ", 148, 156);
  let sum = 0;
  for (const byte of block) {
    sum += byte;
  }
  octal(block, 148, 7, sum);
  return block;
}

function octal(block: Buffer, offset: number, length: number, value: number) {
  const text = value.toString(8).padStart(length - 1, "0");
  block.write(text, offset, length - 1, "ascii");
}
