/** Warnings that packing and extraction report instead of failing. */

/**
 * Code of a warning:
 * - `socket-skipped`: a socket was left out of an archive, because tar
 *   cannot store sockets.
 * - `type-skipped`: an entry of a type that is not extracted (device,
 *   FIFO, contiguous file, unknown typeflag) or not packed was skipped.
 * - `name-skipped`: a file whose name is not valid UTF-8 was left out of
 *   an archive, because entry names are stored as UTF-8 strings. On
 *   extraction, an entry whose name or link target decodes with U+FFFD
 *   was skipped, because two such names can decode to the same text.
 * - `vanished`: a file disappeared between listing its directory and
 *   reading it, and was left out.
 * - `changed`: a file was replaced or changed type between listing its
 *   directory and reading it, and was left out. Or a file larger than
 *   64 KiB changed size or mtime while it was read, and was packed as
 *   read. Or a file of up to 64 KiB ended before the size that its
 *   status reported, and was packed as read. A larger file that shrinks
 *   while it is read fails the archive instead.
 * - `metadata-failed`: the mode or times of an extracted directory could
 *   not be applied at the end of extraction.
 * - `outside-skipped`: on a copy out, the archive put an entry outside
 *   the copied path, by its name or through a symlink, and it was
 *   dropped.
 * - `warnings-dropped`: the server made warnings faster than the client
 *   read them and left some out; the message gives how many.
 */
export type ArchiveWarningCode =
  | "socket-skipped"
  | "type-skipped"
  | "name-skipped"
  | "vanished"
  | "changed"
  | "metadata-failed"
  | "outside-skipped"
  | "warnings-dropped";

/**
 * Receives a warning with its code, a message for people and the
 * container path it concerns.
 */
export type WarningHandler = (
  code: ArchiveWarningCode,
  message: string,
  path: string,
) => void;
