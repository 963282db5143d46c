/**
 * Encoding of entry headers with node-tar's Header and Pax classes. A
 * header that does not fit USTAR (a name over 100 bytes that cannot be
 * split at a slash, a non-ASCII name, large ids or sizes) is preceded by
 * a PAX extended header that carries the exact values.
 */
import type { BigIntStats } from "node:fs";
import { Header, Pax } from "tar";

/** Size of a tar block. */
export const blockBytes = 512;

/** The end-of-archive marker: two zero blocks, with no record padding. */
export const endOfArchive: Buffer = Buffer.alloc(2 * blockBytes);

/** Entry types this layer writes, named as node-tar names them. */
export type PackedType =
  | "File"
  | "Directory"
  | "SymbolicLink"
  | "Link"
  | "CharacterDevice"
  | "BlockDevice"
  | "FIFO";

/** Fields of one entry header. */
export interface EntryFields {
  path: string;
  type: PackedType;
  /** Permission bits with setuid, setgid and sticky. */
  mode: number;
  uid: number;
  gid: number;
  /** Body size in bytes; 0 for everything but regular files. */
  size: number;
  /** Modification time, whole seconds. */
  mtime: Date;
  /** Symlink target or hard link name. */
  linkpath?: string;
  devmaj?: number;
  devmin?: number;
}

/** Encodes an entry's header blocks: a PAX header if needed, then USTAR. */
export function encodeHeader(fields: EntryFields): Buffer {
  const header = new Header({ ...fields });
  const needPax = header.encode();
  const block = header.block!;
  if (!needPax) {
    return block;
  }
  const pax = new Pax({
    path: fields.path,
    linkpath: fields.linkpath,
    size: fields.size,
    mtime: fields.mtime,
    uid: fields.uid,
    gid: fields.gid,
  }).encode();
  return Buffer.concat([pax, block]);
}

/** Returns the zero bytes that pad a body of `size` bytes to a block. */
export function bodyPadding(size: number): Buffer {
  const rest = size % blockBytes;
  return Buffer.alloc(rest === 0 ? 0 : blockBytes - rest);
}

/**
 * Returns the header fields of a file from its status: permission bits
 * with setuid, setgid and sticky, numeric ids, and mtime cut to seconds.
 */
export function headerFields(
  path: string,
  type: PackedType,
  stats: BigIntStats,
): EntryFields {
  return {
    path,
    type,
    mode: Number(stats.mode & 0o7777n),
    uid: Number(stats.uid),
    gid: Number(stats.gid),
    size: type === "File" ? Number(stats.size) : 0,
    mtime: new Date(Number(stats.mtimeNs / 1_000_000_000n) * 1000),
  };
}

/**
 * Splits a device number into major and minor with the encoding of the
 * platform's dev_t: glibc's on Linux, 8-bit major and 24-bit minor on
 * macOS and the BSDs.
 */
export function deviceNumbers(rdev: bigint): {
  devmaj: number;
  devmin: number;
} {
  if (process.platform !== "linux") {
    return {
      devmaj: Number((rdev >> 24n) & 0xffn),
      devmin: Number(rdev & 0xffffffn),
    };
  }
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { devmaj: Number(major), devmin: Number(minor) };
}
