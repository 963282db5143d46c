/**
 * Builds tar archives byte by byte, including entries a well-behaved
 * packer refuses to write (`..` names, absolute names, links out).
 */
export interface RawEntry {
  /** The name, as UTF-8 text or as raw bytes. */
  name: string | Buffer;
  /** Typeflag: "0" file, "1" hard link, "2" symlink, "3" char device, "5" directory, "6" fifo. */
  type?: string;
  body?: string | Buffer;
  linkname?: string;
  mode?: number;
  /** Size written in the header when it differs from the body's. */
  size?: number;
}

export function rawTar(
  entries: RawEntry[],
  options: { trailer?: boolean } = {},
): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const body =
      typeof entry.body === "string"
        ? Buffer.from(entry.body)
        : (entry.body ?? Buffer.alloc(0));
    blocks.push(header(entry, entry.size ?? body.length));
    if (body.length > 0) {
      blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
    }
  }
  if (options.trailer ?? true) {
    blocks.push(Buffer.alloc(1024));
  }
  return Buffer.concat(blocks);
}

function header(entry: RawEntry, size: number): Buffer {
  const block = Buffer.alloc(512);
  if (typeof entry.name === "string") {
    block.write(entry.name, 0, 100, "utf8");
  } else {
    entry.name.copy(block, 0, 0, 100);
  }
  octal(block, 100, 8, entry.mode ?? (entry.type === "5" ? 0o755 : 0o644));
  octal(block, 108, 8, 0);
  octal(block, 116, 8, 0);
  octal(block, 124, 12, size);
  octal(block, 136, 12, 1_700_000_000);
  block.write(entry.type ?? "0", 156, 1, "ascii");
  block.write(entry.linkname ?? "", 157, 100, "utf8");
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
  block.write(
    value.toString(8).padStart(length - 1, "0"),
    offset,
    length - 1,
    "ascii",
  );
}
