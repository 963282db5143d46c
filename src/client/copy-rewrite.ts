/**
 * Rewriting a tar archive while it streams: renaming its top entry.
 *
 * The container copy service extracts an archive under a directory and
 * packing names the top entry after the source, so copying a file or a
 * directory to a new name means rewriting the names in the archive. Only
 * headers change: USTAR name fields are patched in place when the new
 * name fits, and a PAX `path` or `linkpath` record carries it otherwise.
 * Bodies pass through untouched, so a large file costs no copy.
 */
import { Transform, type TransformCallback } from "node:stream";
import { Header } from "tar";
import {
  encodePaxRecord,
  type PaxRecord,
  parsePaxRecords,
  paxValue,
} from "../archive/index.js";
import { Code, TransferError } from "../errors/index.js";

export interface RewriteOptions {
  /**
   * Renames the top entry `from` to `to`, with everything under it. Hard
   * link targets under `from` are renamed too, symlink targets are left
   * as they are. An empty `from` names the root form of an archive (`./`
   * and children without a prefix), which then becomes a directory `to`.
   */
  rename?: { from: string; to: string };
}

/** Returns a transform that rewrites a tar archive as `options` specify. */
export function rewriteArchive(options: RewriteOptions): Transform {
  return new ArchiveRewriter(options);
}

/**
 * Returns the name that `name` gets when the top entry `from` is renamed
 * to `to`, or undefined when the name is not under `from`.
 */
export function renameEntryPath(
  name: string,
  from: string,
  to: string,
): string | undefined {
  const trailing = name.endsWith("/") ? "/" : "";
  const bare = name.replace(/\/+$/, "");

  if (from === "") {
    const relative = bare.replace(/^(\.\/)+/, "");
    if (relative === "" || relative === ".") {
      return `${to}/`;
    }
    return `${to}/${relative}${trailing}`;
  }
  if (bare === from) {
    return `${to}${trailing}`;
  }
  if (bare.startsWith(`${from}/`)) {
    return `${to}${bare.slice(from.length)}${trailing}`;
  }
  return undefined;
}

const blockBytes = 512;

/** Largest PAX or GNU long-name body held in memory. */
const maxMetadataBytes = 1024 * 1024;

/** Typeflags whose size field does not announce a body. */
const headerOnlyTypes = new Set(["1", "2", "3", "4", "5", "6"]);

type State =
  | { kind: "header" }
  | { kind: "metadata"; header: Buffer; typeflag: string; size: number }
  | { kind: "body"; remaining: number }
  | { kind: "trailer" };

class ArchiveRewriter extends Transform {
  readonly #options: RewriteOptions;
  #buffered: Buffer = Buffer.alloc(0);
  #state: State = { kind: "header" };
  /** Raw PAX and GNU headers and bodies that precede the next entry. */
  #pendingBlocks: Buffer[] = [];
  #paxRecords: PaxRecord[] | undefined;
  #longPath: string | undefined;
  #longLink: string | undefined;
  /** Output of the chunk being consumed, pushed once it is consumed. */
  #output: Buffer[] = [];
  /** Whether an entry of the chunk being consumed was renamed or dropped. */
  #changed = false;

  constructor(options: RewriteOptions) {
    super();
    this.#options = options;
  }

  override _transform(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: TransformCallback,
  ): void {
    try {
      this.#consume(chunk);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    if (this.#buffered.length > 0) {
      this.push(Buffer.concat([...this.#pendingBlocks, this.#buffered]));
    }
    callback();
  }

  /**
   * Rewrites one chunk. A chunk that contains whole entries, none of them
   * changed, goes on as the same object, which lets its producer reuse
   * the buffer once the sender is done with it.
   */
  #consume(chunk: Buffer): void {
    const carried = this.#buffered.length > 0 || this.#pendingBlocks.length > 0;
    this.#output = [];
    this.#changed = false;
    this.#rewrite(chunk);
    const output = this.#output;
    this.#output = [];
    const outputBytes = output.reduce(
      (total, piece) => total + piece.length,
      0,
    );
    const unchanged =
      !carried &&
      !this.#changed &&
      this.#buffered.length === 0 &&
      this.#pendingBlocks.length === 0 &&
      outputBytes === chunk.length;
    if (unchanged) {
      this.push(chunk);
      return;
    }
    for (const piece of output) {
      this.push(piece);
    }
  }

  #rewrite(chunk: Buffer): void {
    let input =
      this.#buffered.length > 0
        ? Buffer.concat([this.#buffered, chunk])
        : chunk;
    this.#buffered = Buffer.alloc(0);

    while (input.length > 0) {
      const state = this.#state;
      if (state.kind === "trailer") {
        this.#output.push(input);
        return;
      }
      if (state.kind === "body") {
        const bodyBytes = Math.min(state.remaining, input.length);
        this.#output.push(input.subarray(0, bodyBytes));
        input = input.subarray(bodyBytes);
        state.remaining -= bodyBytes;
        if (state.remaining === 0) {
          this.#state = { kind: "header" };
        }
        continue;
      }
      if (state.kind === "metadata") {
        const padded = roundUp(state.size);
        if (input.length < padded) {
          this.#buffered = input;
          return;
        }
        this.#readMetadata(state, input.subarray(0, padded));
        input = input.subarray(padded);
        this.#state = { kind: "header" };
        continue;
      }
      if (input.length < blockBytes) {
        this.#buffered = input;
        return;
      }
      this.#readHeader(Buffer.from(input.subarray(0, blockBytes)));
      input = input.subarray(blockBytes);
    }
  }

  #readHeader(block: Buffer): void {
    if (block.every((byte) => byte === 0)) {
      this.#output.push(...this.#pendingBlocks, block);
      this.#pendingBlocks = [];
      this.#state = { kind: "trailer" };
      return;
    }

    const header = new Header(block);
    if (!header.cksumValid) {
      throw new TransferError(
        "invalid tar archive: a header has a bad checksum",
        Code.InvalidArgument,
      );
    }
    const typeflag = String.fromCharCode(block[156] ?? 0);
    const size = header.size ?? 0;
    if (["x", "g", "L", "K"].includes(typeflag)) {
      if (size > maxMetadataBytes) {
        throw new TransferError(
          `invalid tar archive: a metadata entry of ${size} bytes is over ` +
            `the limit of ${maxMetadataBytes}`,
          Code.InvalidArgument,
        );
      }
      this.#state = { kind: "metadata", header: block, typeflag, size };
      return;
    }

    this.#writeEntry(block, header, typeflag);
    const bodySize = headerOnlyTypes.has(typeflag)
      ? 0
      : (this.#paxSize() ?? size);
    this.#paxRecords = undefined;
    this.#longPath = undefined;
    this.#longLink = undefined;
    this.#state =
      bodySize > 0
        ? { kind: "body", remaining: roundUp(bodySize) }
        : { kind: "header" };
  }

  #readMetadata(
    state: Extract<State, { kind: "metadata" }>,
    body: Buffer,
  ): void {
    const content = body.subarray(0, state.size);
    if (state.typeflag === "g") {
      this.#pendingBlocks.push(state.header, body);
      return;
    }
    if (state.typeflag === "x") {
      const records = parsePaxRecords(content);
      if (records === undefined) {
        throw new TransferError(
          "invalid tar archive: malformed PAX record",
          Code.InvalidArgument,
        );
      }
      this.#paxRecords = records;
    } else if (state.typeflag === "L") {
      this.#longPath = cString(content);
    } else {
      this.#longLink = cString(content);
    }
    this.#pendingBlocks.push(state.header, body);
  }

  /**
   * Emits the entry's headers, renamed when its names are under the
   * renamed top.
   */
  #writeEntry(block: Buffer, header: Header, typeflag: string): void {
    const records = this.#paxRecords;
    const path = paxValue(records, "path") ?? this.#longPath ?? header.path;
    const linkpath =
      paxValue(records, "linkpath") ?? this.#longLink ?? header.linkpath;

    const rename = this.#options.rename;
    const newPath =
      rename && renameEntryPath(path ?? "", rename.from, rename.to);
    const newLink =
      rename && typeflag === "1" && linkpath
        ? renameEntryPath(linkpath, rename.from, rename.to)
        : undefined;

    if (newPath === undefined && newLink === undefined) {
      this.#output.push(...this.#pendingBlocks, block);
      this.#pendingBlocks = [];
      return;
    }

    this.#changed = true;

    // The entry is rewritten: GNU long names are dropped in favour of the
    // USTAR fields or PAX records, and global headers are kept.
    const globals = this.#keptGlobals();
    const outputRecords = (records ?? []).filter(
      (record) => record.key !== "path" && record.key !== "linkpath",
    );
    const patched = Buffer.from(block);
    const finalPath = newPath ?? path ?? "";
    const finalLink = newLink ?? linkpath ?? "";
    if (!writeUstarName(patched, 0, 100, finalPath, true)) {
      outputRecords.push({ key: "path", value: finalPath });
    }
    if (!writeUstarName(patched, 157, 100, finalLink, false)) {
      outputRecords.push({ key: "linkpath", value: finalLink });
    }
    writeChecksum(patched);

    const blocks = [...globals];
    if (outputRecords.length > 0) {
      blocks.push(...paxHeader(outputRecords, header.mtime));
    }
    blocks.push(patched);
    this.#output.push(Buffer.concat(blocks));
    this.#pendingBlocks = [];
  }

  /** Returns the pending blocks that belong to global PAX headers. */
  #keptGlobals(): Buffer[] {
    const outputRecords: Buffer[] = [];
    for (let i = 0; i + 1 < this.#pendingBlocks.length; i += 2) {
      const header = this.#pendingBlocks[i]!;
      if (header[156] === "g".charCodeAt(0)) {
        outputRecords.push(header, this.#pendingBlocks[i + 1]!);
      }
    }
    return outputRecords;
  }

  #paxSize(): number | undefined {
    const value = paxValue(this.#paxRecords, "size");
    return value === undefined ? undefined : Number(value);
  }
}

function roundUp(size: number): number {
  return Math.ceil(size / blockBytes) * blockBytes;
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end === -1 ? bytes.length : end).toString("utf8");
}

/** Builds a PAX extended header entry: its header block and padded body. */
function paxHeader(records: PaxRecord[], mtime: Date | undefined): Buffer[] {
  const body = Buffer.from(records.map(encodePaxRecord).join(""));
  const header = new Header({
    path: "PaxHeader",
    type: "ExtendedHeader",
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: body.length,
    mtime: mtime ?? new Date(0),
  });
  header.encode();
  const padding = Buffer.alloc(roundUp(body.length) - body.length);
  return [header.block!, body, padding];
}

/**
 * Writes `name` into the USTAR field at `offset` if it is ASCII and fits,
 * clearing the POSIX prefix field when `clearPrefix` is set, and returns
 * whether it fit. A name that does not fit leaves a truncated ASCII
 * placeholder, because a PAX record then carries the real one.
 *
 * Control characters such as a newline count as ASCII, as they do when
 * node-tar packs a name. A PAX record could not carry them: node-tar's
 * parser splits PAX records at every newline.
 */
function writeUstarName(
  block: Buffer,
  offset: number,
  length: number,
  name: string,
  clearPrefix: boolean,
): boolean {
  const ascii = [...name].every(isAsciiWithoutNul);
  const fits = ascii && name.length <= length;
  block.fill(0, offset, offset + length);
  const placeholder = fits
    ? name
    : [...name].map((c) => (isAsciiWithoutNul(c) ? c : "_")).join("");
  block.write(placeholder.slice(0, length), offset, length, "ascii");
  if (clearPrefix && block.toString("ascii", 257, 263) === "ustar\0") {
    block.fill(0, 345, 500);
  }
  return fits;
}

function isAsciiWithoutNul(character: string): boolean {
  const code = character.codePointAt(0) ?? 0;
  return code >= 1 && code <= 0x7f;
}

function writeChecksum(block: Buffer): void {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < blockBytes; i++) {
    sum += block[i]!;
  }
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "ascii");
}
