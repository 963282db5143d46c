/**
 * Kinds of file as copies tell them apart: directories, the kinds that a
 * copy never writes or replaces, and everything else.
 */

/** Kind of a file, named as messages name it. */
export type FileKind =
  | "directory"
  | "character device"
  | "block device"
  | "FIFO"
  | "socket"
  | "other";

/** The type tests of `fs.Stats` and `fs.BigIntStats`. */
interface TypeTests {
  isDirectory(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
}

/**
 * Returns the kind of file that `stats` describes: "other" for a regular
 * file or a symlink.
 */
export function fileKind(stats: TypeTests): FileKind {
  if (stats.isDirectory()) {
    return "directory";
  }
  if (stats.isCharacterDevice()) {
    return "character device";
  }
  if (stats.isBlockDevice()) {
    return "block device";
  }
  if (stats.isFIFO()) {
    return "FIFO";
  }
  return stats.isSocket() ? "socket" : "other";
}
