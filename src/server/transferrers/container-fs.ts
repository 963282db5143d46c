/**
 * Copies tar archives into and out of container filesystems: a
 * ContainerPath to a WriteStream packs the path, a ReadStream to a
 * ContainerPath extracts the archive under the path.
 */
import {
  extractArchive,
  HandoffSink,
  packChunks,
  type WarningHandler,
} from "../../archive/index.js";
import { Code, TransferError } from "../../errors/index.js";
import {
  receiveBytes,
  reuseAfterSend,
  type Stream,
  sendBytes,
} from "../../streaming/index.js";
import { tarMediaType, warningEvent } from "../../transfer/index.js";
import type { ContainerRoots } from "../container-roots.js";
import type { TransferEnd } from "../transfer-ends.js";
import type { TransferContext, Transferrer } from "../transferrer.js";

export interface ContainerFsOptions {
  /**
   * Bytes granted to a client sender at a time. Default 64 KiB, and
   * TransferServer passes 1 MiB.
   */
  windowBytes?: number;
}

export function containerFsTransferrer(
  roots: ContainerRoots,
  options: ContainerFsOptions = {},
): Transferrer {
  return {
    name: "container-fs",
    async transfer(source, destination, context) {
      if (
        source.type === "ContainerPath" &&
        destination.type === "WriteStream"
      ) {
        checkMediaType(destination.mediaType, "WriteStream");
        await roots.withRoot(
          context.namespace,
          source.containerId,
          (rootfs) => copyOut(rootfs, source, destination.stream, context),
          context.signal,
        );
        return true;
      }
      if (
        source.type === "ReadStream" &&
        destination.type === "ContainerPath"
      ) {
        checkMediaType(source.mediaType, "ReadStream");
        await roots.withRoot(
          context.namespace,
          destination.containerId,
          (rootfs) =>
            copyIn(rootfs, source.stream, destination, context, options),
          context.signal,
        );
        return true;
      }
      return false;
    },
  };
}

type ContainerPathEnd = Extract<TransferEnd, { type: "ContainerPath" }>;

async function copyOut(
  rootfs: string,
  source: ContainerPathEnd,
  stream: Stream,
  context: TransferContext,
): Promise<void> {
  // The chunks go to the sender as they are, so the packer can reuse its
  // read buffers once the transport has written them.
  const warnings = copyWarnings(context, source.containerId);
  const archive = packChunks(rootfs, source.path, {
    noWalk: source.noWalk,
    signal: context.signal,
    onWarning: warnings.warn,
    reuseChunk: reuseAfterSend,
  });
  try {
    await sendBytes(stream, archive, { signal: context.signal });
  } catch (error) {
    // sendBytes does not wait for a source stuck in a read. The packer
    // may hold files of the root open, and the root is released, perhaps
    // unmounted, as soon as this returns.
    await settleBefore(archive.return(undefined), context);
    throw error;
  } finally {
    warnings.finish();
  }
}

async function copyIn(
  rootfs: string,
  stream: Stream,
  destination: ContainerPathEnd,
  context: TransferContext,
  options: ContainerFsOptions,
): Promise<void> {
  // The extractor is done with a chunk once it requests the next one, so
  // the transport can reuse the chunk's memory.
  const pipe = new HandoffSink();
  const receiving = receiveBytes(stream, pipe, {
    signal: context.signal,
    windowBytes: options.windowBytes,
    reuseChunks: true,
  });
  const warnings = copyWarnings(context, destination.containerId);
  const extracting = extractArchive(rootfs, destination.path, pipe, {
    preserveOwnership: destination.preserveOwnership,
    signal: context.signal,
    onWarning: warnings.warn,
  });
  // Either side failing fails the other: the receiver's error destroys the
  // pipe the extractor reads, and the extractor's error aborts the stream.
  extracting.catch((error) => {
    stream.abort(error);
    pipe.destroy(error);
  });
  receiving.catch((error) => pipe.destroy(error));
  // The extractor can also destroy the pipe itself, when too many bytes
  // follow the end-of-archive marker. Aborting the stream with that
  // reason at once lets the client see it instead of the receiver's
  // report that its sink is closed.
  pipe.once("error", (error) => stream.abort(error));
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown) => {
    failure ??= { error };
  };
  receiving.catch(fail);
  extracting.catch(fail);
  // The extractor closes its files before it settles, and the root is
  // released, perhaps unmounted, as soon as this returns, so a failed
  // receive waits for the extractor too.
  await Promise.race([
    receiving.then(
      () => extracting,
      () => settleBefore(extracting, context),
    ),
    extracting.then(() => receiving),
  ]).catch(() => {});
  warnings.finish();
  if (failure !== undefined) {
    // The first failure to reach the pipe names the cause.
    throw pipe.errored instanceof TransferError ? pipe.errored : failure.error;
  }
}

/** Maximum wait in milliseconds for the file work of a failed copy to settle. */
const settleTimeoutMs = 10_000;

/**
 * Waits for `work` to settle, for at most {@link settleTimeoutMs}, and
 * logs a warning when it did not: a file call stuck on a hung file system.
 */
async function settleBefore(
  work: Promise<unknown>,
  context: TransferContext,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    work.then(
      () => true,
      () => true,
    ),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), settleTimeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (!settled) {
    context.log.warn(
      `file work of a failed copy still running after ${settleTimeoutMs} ms; ` +
        "releasing the container root anyway",
    );
  }
}

function checkMediaType(mediaType: string, role: string): void {
  if (mediaType !== tarMediaType) {
    throw new TransferError(
      `unsupported media type "${mediaType}" on the ${role}: container ` +
        `copies use ${tarMediaType}`,
      Code.InvalidArgument,
    );
  }
}

/**
 * Maximum number of warnings of one copy that are logged one by one.
 * Later ones are only counted.
 */
const maxLoggedWarnings = 100;

/**
 * Returns the warning handler of one copy and the function that ends it.
 * The handler logs a warning of the packer or the extractor and sends it
 * to the client as a Progress event: `event` "warning", `name` the
 * container path, `parents` the warning's code and its message. An
 * archive of many skipped entries would flood the log, so after
 * {@link maxLoggedWarnings} the rest are only counted, and `finish` logs
 * their number.
 */
function copyWarnings(
  context: TransferContext,
  containerId: string,
): { warn: WarningHandler; finish(): void } {
  let logged = 0;
  let unlogged = 0;
  let sendFailed = false;
  return {
    warn(code, message, path) {
      if (logged < maxLoggedWarnings) {
        logged++;
        context.log.warn(message, { code, path, container: containerId });
      } else {
        unlogged++;
      }
      context
        .progress({ event: warningEvent, name: path, parents: [code, message] })
        .catch((error: unknown) => {
          // The client's progress stream failed, which one line reports.
          if (sendFailed) {
            return;
          }
          sendFailed = true;
          context.log.warn("failed to send a warning to the client", {
            code,
            path,
            error: error instanceof Error ? error.message : String(error),
          });
        });
    },
    finish() {
      if (unlogged > 0) {
        context.log.warn(`${unlogged} more warnings of the copy not logged`, {
          container: containerId,
        });
      }
    },
  };
}
