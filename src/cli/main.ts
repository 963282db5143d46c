/**
 * The containerd-transfer command. Results go to standard output,
 * diagnostics to standard error; the exit code is 0 on success, 1 on a
 * failed operation or when `--timeout` runs out, 2 on invalid usage (see
 * usage.ts) and 128 plus the signal's number when a signal stopped it.
 */
import { readFileSync } from "node:fs";
import {
  Command,
  CommanderError,
  InvalidArgumentError,
  Option,
} from "commander";
import { checkNamespace, socketPath } from "../client/address.js";
import { connect } from "../client/index.js";
import { Code, TransferError } from "../errors/index.js";
import { parseCopyEnd } from "./copy-args.js";
import { addCopyOptions, type CopyFlags, runCopy } from "./cp.js";
import { runDemo } from "./demo.js";
import { printable } from "./format.js";
import { addImageCommand } from "./image.js";
import { packageVersion } from "./package-info.js";
import { addServeCommand } from "./serve.js";
import { setLeftover, signalHandler } from "./signals.js";
import { addStatCommand } from "./stat.js";
import { isUsageError, usageError } from "./usage.js";

interface GlobalFlags {
  address: string;
  protocol: "grpc" | "ttrpc";
  namespace: string;
  timeout?: number;
}

const interrupt = new AbortController();
// The global flags once parsed, for messages about the endpoint.
let programFlags: Partial<GlobalFlags> = {};
// The reason `interrupt` aborts with when --timeout runs out.
let timeoutReason: TransferError | undefined;

// Options of the whole program that a command does not take again. A
// command's own -a (cp) is not among them.
const globalOnly = new Set([
  "--address",
  "-p",
  "--protocol",
  "-n",
  "--namespace",
  "--timeout",
]);

/**
 * Writes commander's usage error, with a hint when an option of the whole
 * program came after the command.
 */
function writeUsageError(text: string, write: (text: string) => void): void {
  const rejected = /^error: unknown option '([^'=]+)/.exec(text)?.[1];
  // A short option may carry its value, as in -nfoo.
  const option = rejected?.startsWith("--") ? rejected : rejected?.slice(0, 2);
  if (option === undefined || !globalOnly.has(option)) {
    write(text);
    return;
  }
  write(
    `${text.trimEnd()}\nhint: ${option} is an option of the whole program: ` +
      `put it before the command, as in containerd-transfer ${option} ` +
      "VALUE COMMAND ...\n",
  );
}

function buildProgram(): Command {
  const program = new Command("containerd-transfer")
    .description(
      "Copy files into and out of containers, and move images, through " +
        "containerd's Transfer service",
    )
    .version(packageVersion(), "-V, --version")
    .addOption(
      new Option("-a, --address <socket>", "unix socket of the endpoint")
        .env("CONTAINERD_ADDRESS")
        .default("/run/containerd/containerd.sock"),
    )
    .addOption(
      new Option("-p, --protocol <protocol>", "protocol of the endpoint")
        .choices(["grpc", "ttrpc"])
        .default("grpc"),
    )
    .addOption(
      new Option("-n, --namespace <namespace>", "containerd namespace")
        .env("CONTAINERD_NAMESPACE")
        .default("default"),
    )
    .addOption(
      new Option(
        "--timeout <seconds>",
        "give up and clean up after this many seconds; not for serve " +
          "(default: no limit)",
      ).argParser(parseTimeout),
    )
    // Global options go before the command, so that a command's own
    // short options, such as cp's -a, do not collide with them.
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ outputError: writeUsageError })
    .showHelpAfterError("(add --help for usage)")
    .hook("preAction", (_program, action) => {
      programFlags = program.opts<GlobalFlags>();
      if (!localCommands.has(action.name())) {
        checkEndpointFlags(programFlags as GlobalFlags);
      }
      const seconds = programFlags.timeout;
      if (seconds !== undefined && action.name() === "serve") {
        throw usageError(
          "--timeout does not apply to serve, which runs until SIGINT, " +
            "SIGTERM or SIGHUP stops it",
        );
      }
      if (seconds !== undefined) {
        const reason = new TransferError(
          `timed out: no result within ${seconds} s (--timeout)`,
          Code.DeadlineExceeded,
        );
        timeoutReason = reason;
        setTimeout(() => interrupt.abort(reason), seconds * 1000).unref();
      }
    });

  addCopyOptions(
    program
      .command("cp")
      .description(
        "copy between a container and the local file system; one side is " +
          "CONTAINER:PATH, the other a local path or - for a tar stream",
      )
      .argument("<source>", "CONTAINER:PATH, a local path, or -")
      .argument("<destination>", "CONTAINER:PATH, a local path, or -")
      .addHelpText(
        "after",
        "\nExactly one side is CONTAINER:PATH; CONTAINER: alone is the " +
          "container's root.\n- is a tar stream on standard input or " +
          "output. Write a local path that\ncontains a colon as ./NAME. " +
          "Paths follow docker cp: a destination that\nexists as a folder " +
          "receives the source under its name, and SRC/. copies a\n" +
          "folder's contents. Global options such as --timeout come before " +
          "cp.",
      ),
  ).action(async (source: string, destination: string, flags: CopyFlags) => {
    const copyIn =
      parseCopyEnd(destination).kind === "container" &&
      parseCopyEnd(source).kind !== "container";
    setLeftover(
      copyIn
        ? "the entries written so far stay in the container"
        : "a copy out may leave a .containerd-transfer-* staging folder",
    );
    const client = connect(program.opts<GlobalFlags>());
    try {
      await runCopy(client, source, destination, flags, interrupt.signal);
    } finally {
      await client.close();
    }
  });

  addStatCommand(
    program,
    () => connect(program.opts<GlobalFlags>()),
    interrupt.signal,
  );

  addImageCommand(program, interrupt.signal);
  addServeCommand(program, interrupt.signal);

  program
    .command("demo")
    .description(
      "copy a real tree into a container of an in-process server and back, " +
        "and verify every file",
    )
    .option("--source <dir>", "tree to copy (default: node_modules)")
    .option("--keep", "keep the temporary folder")
    .action(async (flags: { source?: string; keep?: boolean }) => {
      process.exitCode = await runDemo({ ...flags, signal: interrupt.signal });
    });

  return program;
}

/** Commands that connect to no endpoint and so ignore its flags. */
const localCommands = new Set(["serve", "demo"]);

/**
 * Throws a usage error for an `--address` or `--namespace` (or the
 * variables behind them) that no connection could use.
 */
function checkEndpointFlags(flags: GlobalFlags): void {
  try {
    socketPath(flags.address);
    checkNamespace(flags.namespace);
  } catch (error) {
    throw usageError(TransferError.from(error).rawMessage, error);
  }
}

/** Longest `--timeout`: a Node.js timer accepts at most 2^31 - 1 ms. */
const maxTimeoutSeconds = 2_147_483;

/** Parses `--timeout`: a positive number of seconds. */
function parseTimeout(value: string): number {
  const seconds = Number(value);
  if (
    !/^\d+(\.\d+)?$/.test(value) ||
    !(seconds > 0 && seconds <= maxTimeoutSeconds)
  ) {
    throw new InvalidArgumentError(
      "expected a number of seconds above 0 and at most " +
        `${maxTimeoutSeconds} (24 days), such as 30 or 0.5`,
    );
  }
  return seconds;
}

/**
 * Exit statuses by the reason of each signal: 128 plus the signal's
 * number, as shells report a process that a signal ended.
 */
const signalExitCodes: Record<string, number> = {
  interrupted: 130,
  terminated: 143,
  "hung up": 129,
};

/** Returns the exit status for the signal that aborted `interrupt`. */
function signalExitCode(): number {
  const reason = interrupt.signal.reason;
  return (reason instanceof Error && signalExitCodes[reason.message]) || 130;
}

async function main(): Promise<void> {
  const onSignal = signalHandler(interrupt, (message) => {
    process.stderr.write(`containerd-transfer: ${message}\n`);
    process.exit(signalExitCode());
  });
  process.on("SIGINT", () => onSignal("interrupted"));
  process.on("SIGTERM", () => onSignal("terminated"));
  // A closed terminal or SSH session sends SIGHUP.
  process.on("SIGHUP", () => onSignal("hung up"));
  const program = buildProgram();
  try {
    checkArgumentEncoding();
    await program.parseAsync(process.argv);
  } catch (error) {
    process.exitCode = report(error);
    releaseStdio();
  }
}

/**
 * Throws a usage error for a command-line argument that is not valid
 * UTF-8. Node.js decodes arguments as UTF-8 and puts U+FFFD in place of
 * other bytes, so such a name would reach the command changed: a path
 * that does not exist, or a new file under another name. The raw bytes
 * come from /proc/self/cmdline; without it, nothing is checked.
 */
function checkArgumentEncoding(): void {
  let raw: Buffer;
  try {
    raw = readFileSync("/proc/self/cmdline");
  } catch {
    return;
  }
  const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
  for (const argument of raw.subarray(0, -1).toString("latin1").split("\0")) {
    const bytes = Buffer.from(argument, "latin1");
    try {
      strictUtf8.decode(bytes);
    } catch {
      throw usageError(
        `invalid argument "${printable(bytes.toString("utf8"))}": it ` +
          "contains bytes that are not valid UTF-8, which Node.js cannot " +
          "pass on unchanged; rename the file, or name the folder that " +
          "contains it",
      );
    }
  }
}

/**
 * Lets a failed command exit although its standard streams are busy: a
 * pipe or terminal on standard input keeps the process alive until it
 * closes, and so do bytes for a reader of standard output that stopped
 * reading. Both are of no use once the command has failed.
 */
function releaseStdio(): void {
  process.stdin.destroy();
  // destroy() does not close Node.js's standard output, so the process
  // exits instead, once standard error has taken the message.
  if (process.stdout.writableLength > 0) {
    process.stderr.write("", () => process.exit());
  }
}

/** Separator between a message and the hint that this command adds. */
const hintSeparator = "\nhint: ";

function report(error: unknown): number {
  if (error instanceof CommanderError) {
    // commander has already printed the usage problem or the help text.
    return error.exitCode === 0 ? 0 : 2;
  }
  const failure = TransferError.from(error);
  // A hint of this command goes on a line of its own. Any other line
  // break in a message, perhaps from a server, stays escaped.
  const text = describe(failure)
    .split(hintSeparator)
    .map(printable)
    .join(hintSeparator);
  process.stderr.write(`containerd-transfer: ${text}\n`);
  if (interrupt.signal.aborted && interrupt.signal.reason === timeoutReason) {
    return 1;
  }
  if (failure.code === Code.Canceled && interrupt.signal.aborted) {
    return signalExitCode();
  }
  return isUsageError(error) ? 2 : 1;
}

/**
 * Transfer types of image commands, which a peer names when it has no
 * transferrer for them, as `containerd-transfer serve` does.
 */
const imageTransferTypes =
  /containerd\.types\.transfer\.(Image\w*|OCIRegistry)\b/;

/**
 * Returns the message to print. A peer without the requested service or
 * method responds only "service NAME", "method NAME" or "unknown method
 * NAME", so the message names the endpoint too, as it does for a transport
 * failure that does not name it.
 */
function describe(failure: TransferError): string {
  const { address, protocol } = programFlags;
  const missing = /^(?:unknown )?(service|method) (\S+)$/.exec(
    failure.rawMessage,
  );
  if (
    failure.code === Code.Unimplemented &&
    imageTransferTypes.test(failure.rawMessage)
  ) {
    return (
      `${protocol} endpoint ${address} cannot transfer images (it ` +
      `answered: ${failure.rawMessage}). Image commands need containerd's ` +
      "gRPC socket"
    );
  }
  if (failure.code !== Code.Unimplemented || missing === null) {
    // A transport failure such as an HTTP/2 "Protocol error" names no
    // endpoint of its own.
    const transportFailure =
      failure.code === Code.Unknown || failure.code === Code.Internal;
    if (
      transportFailure &&
      address !== undefined &&
      !failure.rawMessage.includes(address)
    ) {
      return `${failure.rawMessage} (${protocol} endpoint ${address})`;
    }
    return failure.rawMessage;
  }
  return (
    `${protocol} endpoint ${address} does not implement the ${missing[1]} ` +
    `${missing[2]}. Image commands need containerd's gRPC socket; cp and ` +
    "stat need a shim or `containerd-transfer serve` that serves container " +
    "paths"
  );
}

await main();
