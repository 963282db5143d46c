/**
 * `image import|export|tag|ls|rm`: images in containerd's image store.
 * Archives and results go to standard output, progress to standard error.
 */
import { createWriteStream, type Stats } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { Socket } from "node:net";
import { basename, dirname, join } from "node:path";
import type { Writable } from "node:stream";
import { type Command, Option } from "commander";
import {
  type Client,
  connect,
  deleteImage,
  exportImage,
  type ImageRecord,
  importImage,
  listImages,
  tagImage,
} from "../client/index.js";
import { Code, TransferError } from "../errors/index.js";
import { type ByteSource, readFileChunks } from "../streaming/index.js";
import type { Progress } from "../transfer/index.js";
import { openFifoReader, openFifoWriter } from "./fifo.js";
import { printable } from "./format.js";
import {
  addRegistryCommands,
  checkImageArguments,
  checkNameArgument,
  checkPlatformArguments,
  checkSnapshotterArgument,
} from "./image-registry.js";
import { createProgress } from "./progress.js";
import { setLeftover } from "./signals.js";
import { usageError } from "./usage.js";

interface ImportFlags {
  name?: string;
  baseName?: string;
  digests?: boolean;
  platform: string[];
  allPlatforms?: boolean;
  unpack?: boolean;
  snapshotter?: string;
  label: string[];
  compressBlobs?: boolean;
  quiet?: boolean;
}

interface ExportFlags {
  platform: string[];
  allPlatforms?: boolean;
  skipManifestJson?: boolean;
  skipNonDistributable?: boolean;
  quiet?: boolean;
}

/**
 * Registers the `image` command group. The client is opened from the
 * program's global options when a subcommand runs.
 */
export function addImageCommand(program: Command, signal: AbortSignal): void {
  const withClient =
    <A extends unknown[]>(run: (client: Client, ...args: A) => Promise<void>) =>
    async (...args: A) => {
      const client = connect(program.opts());
      try {
        await run(client, ...args);
      } finally {
        await client.close();
      }
    };
  const image = program
    .command("image")
    .description(
      "pull, push, import, export, tag, list and remove images in containerd",
    );
  addRegistryCommands(image, () => connect(program.opts()), signal);

  image
    .command("import")
    .description(
      "import an OCI or Docker image archive (tar, or tar.gz, tar.zst); " +
        "images are named from the archive's name annotations",
    )
    .argument("<file>", "archive to read, or - for standard input")
    .option("--name <name>", "also store the archive's index as this image")
    .option(
      "--base-name <prefix>",
      "keep only names under PREFIX; tag-only names become PREFIX:TAG " +
        "(default: keep full names, tag-only names become import-DATE:TAG)",
    )
    .option("--digests", "also store each manifest as BASE@DIGEST")
    .addOption(
      platformOption("import content for PLATFORM", "the daemon's own"),
    )
    .option("--all-platforms", "import the content of every platform")
    .option("--unpack", "unpack the imported platforms")
    .option(
      "--snapshotter <name>",
      "snapshotter to unpack into (default: the daemon's default); " +
        "implies --unpack",
    )
    .addOption(
      new Option("--label <key=value>", "set a label on the new images")
        .argParser(collect)
        .default([], "none"),
    )
    .option("--compress-blobs", "compress uncompressed layers on import")
    .option("-q, --quiet", "print no progress")
    .action(
      withClient((client, file: string, flags: ImportFlags) =>
        runImport(client, file, flags, signal),
      ),
    );

  image
    .command("export")
    .description("write images as one OCI archive with a Docker manifest.json")
    .argument("<file>", "archive to write, or - for standard output")
    .argument("<names...>", "images to export")
    .addOption(platformOption("export PLATFORM", "the daemon's own"))
    .option("--all-platforms", "export every platform")
    .option("--skip-manifest-json", "leave out Docker's manifest.json")
    .option("--skip-non-distributable", "leave out non-distributable layers")
    .option("-q, --quiet", "print no progress")
    .action(
      withClient((client, file: string, names: string[], flags: ExportFlags) =>
        runExport(client, file, names, flags, signal),
      ),
    );

  image
    .command("tag")
    .description("give the image SOURCE one or more new names")
    .argument("<source>")
    .argument("<targets...>")
    .action(
      withClient(async (client, source: string, targets: string[]) => {
        checkImageArguments([source]);
        for (const target of targets) {
          checkNameArgument(target);
          // A name with a digest would claim content that the source
          // may not have.
          if (target.includes("@")) {
            throw usageError(
              `invalid target "${target}": a new name cannot carry a ` +
                "digest; give a tag, such as example.test/app:2",
            );
          }
        }
        await tagImage(client, source, targets, { signal });
      }),
    );

  image
    .command("ls")
    .description("list images: name, type, digest and creation time")
    .option("-q, --quiet", "print only the names")
    .addOption(
      new Option("--filter <filter>", "containerd filter, such as name~=^x")
        .argParser(collect)
        .default([], "none"),
    )
    .action(
      withClient(
        async (client, flags: { quiet?: boolean; filter: string[] }) => {
          const images = await listImages(client, {
            filters: flags.filter,
            signal,
          });
          process.stdout.write(
            flags.quiet
              ? images.map((i) => `${printable(i.name)}\n`).join("")
              : formatImageTable(images),
          );
        },
      ),
    );

  image
    .command("rm")
    .description("delete image names; content goes once nothing uses it")
    .argument("<names...>")
    .action(
      withClient(async (client, names: string[]) => {
        checkImageArguments(names);
        // Every name is tried, as `docker rmi` does. Each failure is
        // printed, and the command fails at the end.
        const failed: string[] = [];
        let first: TransferError | undefined;
        for (const name of names) {
          try {
            await deleteImage(client, name, { signal });
          } catch (error) {
            const failure = TransferError.from(error);
            // An endpoint without the Images service fails every name.
            if (signal.aborted || failure.code === Code.Unimplemented) {
              throw error;
            }
            first ??= failure;
            failed.push(name);
            process.stderr.write(
              `containerd-transfer: ${printable(failure.rawMessage)}\n`,
            );
          }
        }
        if (first !== undefined) {
          throw new TransferError(
            `failed to delete ${failed.length} of ${names.length} ` +
              `images: ${failed.join(", ")}`,
            first.code,
          );
        }
      }),
    );
}

async function runImport(
  client: Client,
  file: string,
  flags: ImportFlags,
  signal: AbortSignal,
): Promise<void> {
  if (flags.name !== undefined) {
    checkNameArgument(flags.name);
  }
  if (flags.baseName !== undefined) {
    checkNameArgument(flags.baseName, "base name", true);
  }
  checkPlatformArguments(flags.platform);
  checkSnapshotterArgument(flags.snapshotter);
  const fromStdin = file === "-";
  const archive = fromStdin ? undefined : await archiveFile(file);
  let source: ByteSource = process.stdin;
  if (archive?.fifo) {
    source = await openFifoReader(file, signal);
  } else if (!fromStdin) {
    source = readFileChunks(file);
  }
  const label = `import ${fromStdin ? "-" : basename(file)}`;
  const progress = createProgress(label, {
    quiet: flags.quiet,
    total: archive?.size,
  });
  try {
    const result = await importImage(client, source, {
      name: flags.name,
      baseName: flags.baseName,
      digests: flags.digests,
      platforms: flags.platform.length > 0 ? flags.platform : undefined,
      allPlatforms: flags.allPlatforms,
      unpack: flags.snapshotter ?? flags.unpack,
      labels: parseLabels(flags.label),
      forceCompress: flags.compressBlobs,
      signal,
      onBytes: (bytes) => progress.update(bytes),
      onProgress: eventPrinter(flags.quiet),
    });
    progress.stop();
    for (const name of result.images) {
      process.stdout.write(`imported ${printable(name)}\n`);
    }
  } finally {
    progress.stop();
    if (source instanceof Socket) {
      source.destroy();
    }
  }
}

/**
 * Returns the size of the archive FILE to import, undefined when it is
 * not a regular file (a FIFO, a device), and whether it is a FIFO. Throws
 * NotFound for a missing FILE and FailedPrecondition for a directory,
 * naming FILE.
 */
async function archiveFile(
  file: string,
): Promise<{ size?: number; fifo: boolean }> {
  let info: Stats;
  try {
    info = await stat(file);
  } catch (error) {
    if (errorCode(error) === "ENOENT") {
      throw new TransferError(
        `image archive "${file}" not found: check the path, or give - to ` +
          "read standard input",
        Code.NotFound,
        error,
      );
    }
    throw error;
  }
  if (info.isDirectory()) {
    throw new TransferError(
      `image archive "${file}" is a directory: name an archive file, ` +
        "such as one that image export wrote",
      Code.FailedPrecondition,
    );
  }
  return {
    size: info.isFile() ? info.size : undefined,
    fifo: info.isFIFO(),
  };
}

/**
 * Bytes the export file buffers before its writer waits. containerd sends
 * 32 KiB at a time, so the default 16 KiB would wait after every message.
 */
const exportBufferBytes = 1024 * 1024;

async function runExport(
  client: Client,
  file: string,
  names: string[],
  flags: ExportFlags,
  signal: AbortSignal,
): Promise<void> {
  checkImageArguments(names);
  checkPlatformArguments(flags.platform);
  const options = {
    platforms: flags.platform,
    allPlatforms: flags.allPlatforms,
    skipCompatibilityManifest: flags.skipManifestJson,
    skipNonDistributable: flags.skipNonDistributable,
    signal,
    onProgress: eventPrinter(flags.quiet || file === "-"),
  };
  if (file === "-") {
    if (process.stdout.isTTY) {
      throw usageError(
        "refusing to write an image archive to a terminal: redirect " +
          "standard output or name a file",
      );
    }
    await exportImage(client, names, process.stdout, {
      ...options,
      endSink: false,
      reuseChunks: true,
    });
    return;
  }

  const target = await exportTarget(file);
  const progress = createProgress(`export ${basename(file)}`, {
    quiet: flags.quiet,
  });
  const exportTo = (sink: Writable) =>
    exportImage(client, names, sink, {
      ...options,
      // A file stream or a socket is done with a chunk once its write
      // callback runs.
      reuseChunks: true,
      onBytes: (bytes) => progress.update(bytes),
    });
  const fileStream = (path: string) =>
    createWriteStream(path, { highWaterMark: exportBufferBytes });
  if (target === "fifo") {
    let fifo: Socket | undefined;
    try {
      fifo = await openFifoWriter(file, signal);
      await exportTo(fifo);
    } finally {
      progress.stop();
      fifo?.destroy();
    }
    return;
  }
  if (target === "direct") {
    try {
      await exportTo(fileStream(file));
    } finally {
      progress.stop();
    }
    return;
  }

  // The archive goes to a temporary file beside FILE, renamed into place
  // only when complete, so a failed export leaves FILE as it was.
  const partial = join(dirname(file), `.${basename(file)}.${process.pid}.part`);
  setLeftover(`the export may leave its partial archive ${partial}`);
  try {
    await exportTo(fileStream(partial));
    progress.stop();
    await rename(partial, file);
  } catch (error) {
    progress.stop();
    await rm(partial, { force: true });
    throw partialFileError(error, file, partial);
  } finally {
    setLeftover(undefined);
  }
}

/**
 * Returns `error`, or for a failure to create or rename the temporary
 * file `partial` an error that names FILE and its folder instead.
 */
function partialFileError(
  error: unknown,
  file: string,
  partial: string,
): unknown {
  const failure = error as NodeJS.ErrnoException;
  if (failure?.path !== partial || failure.code === undefined) {
    return error;
  }
  const reason = failure.message.replace(/, \w+ '.*'$/, "");
  return new TransferError(
    `cannot write the image archive to "${file}": cannot create a file ` +
      `in ${dirname(partial)} (${reason})`,
    TransferError.from(error).code,
    error,
  );
}

/**
 * Decides how an export reaches FILE, before the export starts. A regular
 * file, or a path with nothing there yet, is "replace": the archive goes
 * to a temporary file renamed over FILE. A FIFO is "fifo", written
 * through a socket once a reader opens it. Any other existing node, such
 * as a character device, is "direct": the archive is written into it,
 * since a rename would put a regular file in its place. Throws for a
 * directory, a path that ends in / and a socket, naming FILE.
 */
async function exportTarget(
  file: string,
): Promise<"replace" | "direct" | "fifo"> {
  const slash = file.endsWith("/");
  const info = await statIfPresent(file);
  const rejection = (reason: string) =>
    new TransferError(
      `cannot write the image archive to "${file}": ${reason}`,
      Code.FailedPrecondition,
    );
  if (info?.isDirectory()) {
    throw rejection(
      `it is a directory, so name a file such as ${join(file, "image.tar")}`,
    );
  }
  if (slash) {
    throw rejection("a path that ends in / names a directory, so name a file");
  }
  if (info === undefined) {
    const folder = dirname(file);
    const folderInfo = await statIfPresent(folder);
    if (folderInfo === undefined) {
      throw rejection(`the folder ${folder} does not exist`);
    }
    if (!folderInfo.isDirectory()) {
      throw rejection(`${folder} is not a folder`);
    }
  }
  if (info === undefined || info.isFile()) {
    return "replace";
  }
  if (info.isSocket()) {
    throw rejection(
      "a socket cannot be opened as a file, so name a file or a FIFO",
    );
  }
  return info.isFIFO() ? "fifo" : "direct";
}

/** Returns the status of `path`, or undefined when it does not exist. */
async function statIfPresent(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch (error) {
    const code = errorCode(error);
    if (code === "ENOENT" || code === "ENOTDIR") {
      return undefined;
    }
    throw error;
  }
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** Formats images as a table with a header line. */
export function formatImageTable(images: ImageRecord[]): string {
  const rows = [["NAME", "TYPE", "DIGEST", "CREATED"]];
  for (const image of images) {
    rows.push([
      printable(image.name),
      shortMediaType(image.target.mediaType),
      image.target.digest,
      image.createdAt?.toISOString().replace(/\.\d+Z$/, "Z") ?? "-",
    ]);
  }
  const widths = rows[0]!.map((_, column) =>
    Math.max(...rows.map((row) => row[column]!.length)),
  );
  return rows
    .map(
      (row) =>
        `${row
          .map((cell, i) =>
            i < row.length - 1 ? cell.padEnd(widths[i]!) : cell,
          )
          .join("  ")}\n`,
    )
    .join("");
}

const mediaTypeNames: Record<string, string> = {
  "application/vnd.oci.image.manifest.v1+json": "oci-manifest",
  "application/vnd.oci.image.index.v1+json": "oci-index",
  "application/vnd.docker.distribution.manifest.v2+json": "docker-manifest",
  "application/vnd.docker.distribution.manifest.list.v2+json": "docker-list",
};

function shortMediaType(mediaType: string): string {
  return mediaTypeNames[mediaType] ?? (mediaType || "-");
}

/**
 * Prints containerd's progress events as lines on standard error when it
 * is not a terminal; on a terminal the byte bar shows progress instead.
 */
function eventPrinter(quiet: boolean | undefined) {
  if (quiet || process.stderr.isTTY) {
    return undefined;
  }
  return (event: Progress) => {
    const name = event.name ? ` ${event.name}` : "";
    process.stderr.write(`${printable(`${event.event}${name}`)}\n`);
  };
}

/** Returns a repeatable --platform option whose help names its default. */
function platformOption(description: string, otherwise: string): Option {
  return new Option("--platform <platform>", `${description}; repeatable`)
    .argParser(collect)
    .default([], otherwise);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function parseLabels(labels: string[]): Record<string, string> {
  const parsed: Record<string, string> = {};
  for (const label of labels) {
    const equals = label.indexOf("=");
    if (equals <= 0) {
      throw usageError(`invalid label "${label}": use KEY=VALUE`);
    }
    parsed[label.slice(0, equals)] = label.slice(equals + 1);
  }
  return parsed;
}
