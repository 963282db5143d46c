/**
 * PAX extended header records, `LENGTH key=value\n`, read by their length
 * prefix so that a value may hold a newline.
 */
import type { Parser, ReadEntry } from "tar";

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

/**
 * Gives entries back the newlines in their names that node-tar's Parser
 * loses. The Parser splits PAX bodies at every newline, so a `path` or
 * `linkpath` that holds one reaches the entry cut short, and two files
 * could land under one name. This reads each extended header that the
 * Parser reports and returns a function to call on every entry before it
 * is used: it sets those two names from the header that precedes it.
 *
 * A GNU long name (which needs no fix) after a PAX header drops the fix,
 * since the Parser does not say which kind of header it read.
 */
export function restorePaxNewlines(parser: Parser): (entry: ReadEntry) => void {
  let names: { path?: string; linkpath?: string } = {};
  parser.on("meta", (text: string) => {
    const records = parsePaxRecords(Buffer.from(text));
    if (records === undefined) {
      names = {};
      return;
    }
    for (const key of ["path", "linkpath"] as const) {
      const value = paxValue(records, key);
      if (value !== undefined) {
        // The Parser ends every value at a NUL byte; so does this.
        const end = value.indexOf("\0");
        names[key] = value.includes("\n")
          ? value.slice(0, end === -1 ? value.length : end)
          : undefined;
      }
    }
  });
  return (entry) => {
    if (names.path !== undefined) {
      entry.path = names.path;
    }
    if (names.linkpath !== undefined) {
      entry.linkpath = names.linkpath;
    }
    names = {};
  };
}
