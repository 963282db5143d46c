/**
 * Encoding of entry headers. A header whose values all fit plain USTAR
 * fields is written in place by {@link writeUstarHeader}, with the bytes
 * node-tar's Header writes. Any other header is encoded with node-tar's
 * Header and Pax classes. When it does not fit USTAR (a name over 100
 * bytes that cannot be split at a slash, a non-ASCII name, large ids or
 * sizes), a PAX extended header before it carries the exact values.
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

/** Typeflag bytes of the entry types this layer writes. */
const typeFlags: Record<PackedType, number> = {
  File: 0x30,
  Link: 0x31,
  SymbolicLink: 0x32,
  CharacterDevice: 0x33,
  BlockDevice: 0x34,
  Directory: 0x35,
  FIFO: 0x36,
};

/** Largest value of an 8-byte octal field: seven digits. */
const maxOctal8 = 0o7777777;
/** Largest value of a 12-byte octal field: eleven digits. */
const maxOctal12 = 0o77777777777;

/**
 * Writes the USTAR header block of `fields` into the first 512 bytes of
 * `block` and returns true, if every value fits a USTAR field as it is.
 * That takes names of ASCII without NUL and under 100 bytes, numbers
 * within their octal fields, and a modification time after 1970.
 * Otherwise it returns false, leaves `block` unspecified, and the header
 * needs {@link encodeHeader}. The bytes are those of node-tar's Header
 * for the same fields, without user and group names.
 */
export function writeUstarHeader(fields: EntryFields, block: Buffer): boolean {
  const mtime = Math.floor(fields.mtime.getTime() / 1000);
  if (
    !isShortAscii(fields.path) ||
    (fields.linkpath !== undefined && !isShortAscii(fields.linkpath)) ||
    !(fields.mode <= maxOctal8 && fields.uid <= maxOctal8) ||
    !(fields.gid <= maxOctal8 && fields.size <= maxOctal12) ||
    !(mtime >= 0 && mtime <= maxOctal12) ||
    !((fields.devmaj ?? 0) <= maxOctal8 && (fields.devmin ?? 0) <= maxOctal8)
  ) {
    return false;
  }

  block.fill(0, 0, blockBytes);
  block.write(fields.path, 0, "latin1");
  writeOctal(block, 100, 8, fields.mode);
  writeOctal(block, 108, 8, fields.uid);
  writeOctal(block, 116, 8, fields.gid);
  writeOctal(block, 124, 12, fields.size);
  writeOctal(block, 136, 12, mtime);
  block[156] = typeFlags[fields.type];
  if (fields.linkpath !== undefined) {
    block.write(fields.linkpath, 157, "latin1");
  }
  block.write("ustar\u000000", 257, "latin1");
  writeOctal(block, 329, 8, fields.devmaj ?? 0);
  writeOctal(block, 337, 8, fields.devmin ?? 0);

  // The checksum counts its own field as eight spaces.
  let sum = 8 * 0x20;
  for (let index = 0; index < blockBytes; index++) {
    sum += block[index]!;
  }
  writeOctal(block, 148, 8, sum);
  return true;
}

/** Returns whether `text` is ASCII without NUL and under 100 bytes. */
function isShortAscii(text: string): boolean {
  if (text.length >= 100) {
    return false;
  }
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code === 0 || code > 0x7f) {
      return false;
    }
  }
  return true;
}

/**
 * Writes `value` as octal digits padded with zeros, as node-tar does: a
 * full field is its digits and a NUL, a shorter one ends with a space
 * and a NUL.
 */
function writeOctal(
  block: Buffer,
  offset: number,
  size: number,
  value: number,
): void {
  const digits = value.toString(8);
  const text =
    digits.length === size - 1
      ? digits
      : `${"0".repeat(size - 2 - digits.length)}${digits} `;
  block.write(text, offset, "latin1");
  block[offset + text.length] = 0;
}

/** Returns the zero bytes that pad a body of `size` bytes to a block. */
export function bodyPadding(size: number): Buffer {
  const rest = size % blockBytes;
  return Buffer.alloc(rest === 0 ? 0 : blockBytes - rest);
}

/**
 * Returns the header fields of a file from its status: permission bits
 * with setuid, setgid and sticky, numeric ids, and mtime rounded down to
 * whole seconds.
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
    mtime: new Date(wholeSeconds(stats.mtimeNs) * 1000),
  };
}

/**
 * Returns the whole seconds of a time in nanoseconds, rounded down, so
 * that 1.5 s before 1970 gives -2 as `stat` shows it, not -1.
 */
function wholeSeconds(nanoseconds: bigint): number {
  const seconds = nanoseconds / 1_000_000_000n;
  const roundedUp =
    nanoseconds < 0n && seconds * 1_000_000_000n !== nanoseconds;
  return Number(roundedUp ? seconds - 1n : seconds);
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
