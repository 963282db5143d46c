/**
 * PAX extended header records, `LENGTH key=value\n`, read by their length
 * prefix so that a value may hold a newline.
 */
import { type Parser, Pax, type ReadEntry } from "tar";
import { Code, TransferError } from "../errors/index.js";

/** One PAX record as stored: `key=value`. */
export interface PaxRecord {
  key: string;
  value: string;
}

/**
 * Parses the body of a PAX extended header, stopping at a NUL byte.
 * Returns undefined when the body is not a sequence of well-formed records.
 */
export function parsePaxRecords(body: Uint8Array): PaxRecord[] | undefined {
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const records: PaxRecord[] = [];
  let offset = 0;
  while (offset < bytes.length && bytes[offset] !== 0) {
    const space = bytes.indexOf(0x20, offset);
    if (space === -1) {
      return undefined;
    }
    const digits = bytes.subarray(offset, space).toString("ascii");
    const length = Number(digits);
    const end = offset + length;
    if (
      !/^[0-9]+$/.test(digits) ||
      end <= space + 1 ||
      end > bytes.length ||
      bytes[end - 1] !== 0x0a
    ) {
      return undefined;
    }
    const record = bytes.subarray(space + 1, end - 1);
    const equals = record.indexOf(0x3d);
    if (equals <= 0) {
      return undefined;
    }
    records.push({
      key: record.subarray(0, equals).toString("utf8"),
      value: record.subarray(equals + 1).toString("utf8"),
    });
    offset = end;
  }
  return records;
}

/** Returns the value of the last record of `key`, as later records win. */
export function paxValue(
  records: PaxRecord[] | undefined,
  key: string,
): string | undefined {
  return records?.findLast((record) => record.key === key)?.value;
}

/** Encodes one PAX record; its length prefix counts its own digits. */
export function encodePaxRecord({ key, value }: PaxRecord): string {
  const text = ` ${key}=${value}\n`;
  const base = Buffer.byteLength(text);
  let length = base + String(base).length;
  if (String(length).length > String(base).length) {
    length = base + String(length).length;
  }
  return `${length}${text}`;
}

/** Fields of node-tar's Pax that it applies to the next entry. */
const paxFields = [
  "atime",
  "charset",
  "comment",
  "ctime",
  "dev",
  "gid",
  "gname",
  "ino",
  "mtime",
  "nlink",
  "size",
  "uid",
  "uname",
] as const;

interface PendingNames {
  /** The names node-tar read, to tell that no later header changed them. */
  read: Pax;
  path?: string;
  linkpath?: string;
  /** A field that node-tar read from a piece of another record's value. */
  misread?: string;
}

/**
 * Guards entries against node-tar's reading of PAX headers. Its Parser
 * splits a PAX body at every newline, so a `path` or `linkpath` that
 * contains one reaches the entry cut short, and two files could land under
 * one name. Worse, a piece of such a value that looks like a record, as
 * in a name containing `\n12 uid=4242`, sets that field.
 *
 * This reads each extended header that the Parser reports, by the length
 * of each record. It returns a function to call on every entry before it
 * is used. That function gives the entry its whole names, and throws
 * InvalidArgument when the Parser set another field from a piece of a
 * value.
 *
 * NOTE: the Parser reports a header as text decoded as UTF-8, so a header
 * with bytes that are not UTF-8, such as a binary extended attribute,
 * cannot be read by length and keeps the Parser's reading.
 */
export function guardPaxHeaders(parser: Parser): (entry: ReadEntry) => void {
  let pending: PendingNames | undefined;
  parser.on("meta", (text: string) => {
    pending = undefined;
    const records = parsePaxRecords(Buffer.from(text));
    if (
      records === undefined ||
      !records.some((record) => record.value.includes("\n"))
    ) {
      return;
    }
    const read = Pax.parse(text, undefined);
    const whole = records.filter((record) => !record.value.includes("\n"));
    const meant = Pax.parse(whole.map(encodePaxRecord).join(""), undefined);
    const misread = paxFields.find(
      (field) => String(read[field]) !== String(meant[field]),
    );
    pending = {
      read,
      path: withNewline(paxValue(records, "path")),
      linkpath: withNewline(paxValue(records, "linkpath")),
      misread,
    };
  });
  return (entry) => {
    const names = pending;
    pending = undefined;
    // A GNU long name comes as text that may look like PAX records, but
    // the Parser then reads no Pax.
    if (names === undefined || !(entry.extended instanceof Pax)) {
      return;
    }
    if (names.misread !== undefined) {
      throw new TransferError(
        `invalid tar archive: the PAX header of entry "${entry.path}" ` +
          `sets "${names.misread}" from a piece of a value that contains a ` +
          "newline, which node-tar's parser cannot tell apart from a " +
          "record; recreate the archive without newlines in long names",
        Code.InvalidArgument,
      );
    }
    if (names.path !== undefined && entry.extended.path === names.read.path) {
      entry.path = names.path;
    }
    if (
      names.linkpath !== undefined &&
      entry.extended.linkpath === names.read.linkpath
    ) {
      entry.linkpath = names.linkpath;
    }
  };
}

/** Returns a value that contains a newline, cut at a NUL as the Parser cuts. */
function withNewline(value: string | undefined): string | undefined {
  if (value === undefined || !value.includes("\n")) {
    return undefined;
  }
  const end = value.indexOf("\0");
  return end === -1 ? value : value.slice(0, end);
}
