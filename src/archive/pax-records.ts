/**
 * PAX extended header records, `LENGTH key=value\n`, read by their length
 * prefix so that a value may contain a newline.
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

/** Encodes one PAX record, whose length prefix counts its own digits. */
export function encodePaxRecord({ key, value }: PaxRecord): string {
  const text = ` ${key}=${value}\n`;
  const base = Buffer.byteLength(text);
  let length = base + String(base).length;
  if (String(length).length > String(base).length) {
    length = base + String(length).length;
  }
  return `${length}${text}`;
}

/** Fields of node-tar's Pax that it applies to the entries it reads. */
const paxFields = [
  "atime",
  "charset",
  "comment",
  "ctime",
  "dev",
  "gid",
  "gname",
  "ino",
  "linkpath",
  "mtime",
  "nlink",
  "path",
  "size",
  "uid",
  "uname",
] as const;

type PaxField = (typeof paxFields)[number];

interface PendingHeader {
  /** The Pax node-tar read, to tell that it applied this header. */
  read: Pax;
  path?: string;
  linkpath?: string;
  /** A field that node-tar read from a piece of another record's value. */
  misread?: PaxField;
}

/**
 * Guards entries against node-tar's reading of PAX headers. Its Parser
 * splits a PAX body at every newline, so a `path` or `linkpath` that
 * contains one reaches the entry cut short, and two files could land under
 * one name. Worse, a piece of any value that looks like a record, as in a
 * name or an extended attribute containing `\n12 uid=4242`, sets that
 * field.
 *
 * This reads each extended header that the Parser reports, by the length
 * of each record. It returns a function to call on every entry before it
 * is used. That function gives the entry its whole names, and throws
 * InvalidArgument when the Parser set a field from a piece of a value.
 *
 * The Parser reports a header as text decoded as UTF-8. A header with
 * bytes that are not UTF-8, such as a binary extended attribute, is then
 * checked line by line. A record whose line is shorter than its length
 * continues on the next lines, and none of those may read as a record.
 *
 * NOTE: in that line-by-line check a continued value that also has bytes
 * that are not UTF-8 looks longer than it is, so a piece near its end can
 * go unnoticed. Names are not restored in such a header.
 *
 * The function also throws InvalidArgument for a sparse file, in GNU's
 * typeflag `S` or in PAX `GNU.sparse.*` records. node-tar cannot restore
 * one: it skips the first, and extracts the second as a file named
 * `GNUSparseFile.N/NAME` that contains the sparse map and the data runs.
 */
export function guardPaxHeaders(parser: Parser): (entry: ReadEntry) => void {
  let pending: PendingHeader | undefined;
  let sparse = false;
  parser.on("meta", (text: string) => {
    pending = readPaxHeader(text);
    sparse = sparseRecord.test(text);
  });
  return (entry) => {
    const header = pending;
    pending = undefined;
    if (sparse || entry.type === "SparseFile") {
      throw new TransferError(
        `unsupported tar entry "${entry.path}": it is a sparse file, ` +
          "which this extractor cannot restore; create the archive " +
          "without GNU tar's --sparse (-S)",
        Code.InvalidArgument,
      );
    }
    if (header === undefined) {
      return;
    }
    const { misread, read } = header;
    // A GNU long name comes as text that may look like PAX records, but
    // the Parser then applies no Pax with that field.
    const applied = (pax: unknown, field: PaxField) =>
      pax instanceof Pax && String(pax[field]) === String(read[field]);
    if (
      misread !== undefined &&
      (applied(entry.extended, misread) ||
        applied(entry.globalExtended, misread))
    ) {
      throw new TransferError(
        `invalid tar archive: the PAX header of entry "${entry.path}" ` +
          `sets "${misread}" from a piece of a value that contains a ` +
          "newline, which node-tar's parser cannot tell apart from a " +
          "record; recreate the archive without newlines in names, link " +
          "targets and extended attributes",
        Code.InvalidArgument,
      );
    }
    if (header.path !== undefined && applied(entry.extended, "path")) {
      entry.path = header.path;
    }
    if (header.linkpath !== undefined && applied(entry.extended, "linkpath")) {
      entry.linkpath = header.linkpath;
    }
  };
}

/** A PAX record of GNU tar's sparse formats 0.0, 0.1 and 1.0. */
const sparseRecord = /^\d+ GNU\.sparse\./m;

/** Compares node-tar's reading of a PAX body with its records. */
function readPaxHeader(text: string): PendingHeader | undefined {
  if (!text.includes("\n")) {
    return undefined;
  }
  const read = Pax.parse(text, undefined);
  const records = parsePaxRecords(Buffer.from(text));
  if (records === undefined) {
    const misread = pieceRecordField(text);
    return misread === undefined ? undefined : { read, misread };
  }
  if (!records.some((record) => record.value.includes("\n"))) {
    return undefined;
  }
  const whole = records.filter((record) => !record.value.includes("\n"));
  const meant = Pax.parse(whole.map(encodePaxRecord).join(""), undefined);
  const path = withNewline(paxValue(records, "path"));
  const linkpath = withNewline(paxValue(records, "linkpath"));
  const misread = paxFields.find(
    (field) =>
      String(read[field]) !== String(meant[field]) &&
      !(field === "path" && path !== undefined) &&
      !(field === "linkpath" && linkpath !== undefined),
  );
  return { read, path, linkpath, misread };
}

/**
 * Returns the field that node-tar reads from a line inside another
 * record, going by the lengths the lines announce.
 */
function pieceRecordField(text: string): PaxField | undefined {
  const lines = text.replace(/\n$/, "").split("\n");
  for (let index = 0; index < lines.length; index++) {
    let rest = Number.parseInt(lines[index]!, 10) - lineBytes(lines[index]!);
    while (rest > 0 && index + 1 < lines.length) {
      index++;
      const field = recordField(lines[index]!);
      if (field !== undefined) {
        return field;
      }
      rest -= lineBytes(lines[index]!);
    }
  }
  return undefined;
}

/** Bytes of a line with its newline. */
function lineBytes(line: string): number {
  return Buffer.byteLength(line) + 1;
}

/** Returns the field a line sets when node-tar reads it as a record. */
function recordField(line: string): PaxField | undefined {
  if (Number.parseInt(line, 10) !== lineBytes(line)) {
    return undefined;
  }
  const key = line
    .slice(line.indexOf(" ") + 1, line.indexOf("="))
    .replace(/^SCHILY\.(dev|ino|nlink)$/, "$1");
  return paxFields.find((field) => field === key);
}

/** Returns a value that contains a newline, cut at a NUL as the Parser cuts. */
function withNewline(value: string | undefined): string | undefined {
  if (value === undefined || !value.includes("\n")) {
    return undefined;
  }
  const end = value.indexOf("\0");
  return end === -1 ? value : value.slice(0, end);
}
