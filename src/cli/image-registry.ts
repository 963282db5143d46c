/**
 * `image pull` and `image push`: move images between a registry and
 * containerd through the Transfer service, with credentials from `--user`
 * or Docker's config file, and progress on standard error.
 */
import { type Command, Option } from "commander";
import {
  hostPlatform,
  type PlatformSpec,
  parsePlatform,
} from "../client/image-platform.js";
import {
  type Client,
  checkImageName,
  dockerConfigCredentials,
  dockerConfigPath,
  fixedCredentials,
  pullImage,
  pushImage,
  type RegistryOptions,
  referenceHost,
} from "../client/index.js";
import { TransferError } from "../errors/index.js";
import type {
  CredentialsCallback,
  RegistryWarning,
} from "../transfer/index.js";
import { printable } from "./format.js";
import { createRegistryProgress } from "./image-registry-progress.js";
import { usageError } from "./usage.js";

interface RegistryFlags {
  platform: string[];
  user?: string;
  passwordStdin?: boolean;
  plainHttp?: boolean;
  header: string[];
  quiet?: boolean;
}

interface PullFlags extends RegistryFlags {
  name?: string;
  unpack?: boolean;
  snapshotter?: string;
}

/**
 * Registers `pull` and `push` on the `image` command. `connect` opens the
 * client from the global options when a command runs.
 */
export function addRegistryCommands(
  image: Command,
  connect: () => Client,
  signal: AbortSignal,
): void {
  addRegistryOptions(
    image
      .command("pull")
      .description("pull an image from a registry into containerd")
      .argument("<reference>", "image reference, such as docker.io/x/y:1")
      .option("--name <name>", "image name in containerd (default: REF)")
      .option("--unpack", "unpack the image for the platforms pulled")
      .option(
        "--snapshotter <name>",
        "snapshotter to unpack into; implies --unpack",
      ),
  ).action(async (reference: string, flags: PullFlags) => {
    const client = connect();
    try {
      const summary = await runPull(client, reference, flags, signal);
      process.stdout.write(`${summary}\n`);
    } finally {
      await client.close();
    }
  });

  addRegistryOptions(
    image
      .command("push")
      .description("push a containerd image to a registry")
      .argument("<name>", "image name in containerd")
      .argument("[remote]", "reference to push to (default: NAME)"),
  ).action(
    async (name: string, remote: string | undefined, flags: RegistryFlags) => {
      const client = connect();
      try {
        const summary = await runPush(client, name, remote, flags, signal);
        process.stdout.write(`${summary}\n`);
      } finally {
        await client.close();
      }
    },
  );
}

/** Pulls `reference` and returns the containerd image name. */
export async function runPull(
  client: Client,
  reference: string,
  flags: PullFlags,
  signal: AbortSignal,
): Promise<string> {
  const host = hostArgument(reference);
  if (flags.name !== undefined) {
    checkNameArgument(flags.name);
  }
  checkPlatformArguments(flags.platform);
  checkSnapshotterArgument(flags.snapshotter);
  const unpack = flags.unpack || flags.snapshotter !== undefined;
  const unpackPlatforms: PlatformSpec[] =
    flags.platform.length > 0 ? flags.platform : [hostPlatform()];
  const options = {
    name: flags.name,
    platforms: flags.platform,
    unpack: unpack
      ? unpackPlatforms.map((platform) => ({
          platform,
          snapshotter: flags.snapshotter,
        }))
      : [],
    credentials: await credentialsFor(host, flags),
    registry: registryOptions(host, flags),
    signal,
  };

  const display = createRegistryProgress(flags.quiet);
  try {
    const summary = await pullImage(client, reference, {
      ...options,
      onProgress: display.onProgress,
    });
    display.stop(true);
    return summary.name;
  } catch (error) {
    display.stop(false);
    throw withHint(error, host);
  }
}

/** Pushes `name` to `remote` (default `name`) and returns the reference. */
export async function runPush(
  client: Client,
  name: string,
  remote: string | undefined,
  flags: RegistryFlags,
  signal: AbortSignal,
): Promise<string> {
  checkImageArguments([name]);
  const host = hostArgument(remote ?? name);
  checkPlatformArguments(flags.platform);
  const options = {
    platforms: flags.platform,
    credentials: await credentialsFor(host, flags),
    registry: registryOptions(host, flags),
    signal,
  };

  const display = createRegistryProgress(flags.quiet);
  try {
    const summary = await pushImage(client, name, remote, {
      ...options,
      onProgress: display.onProgress,
    });
    display.stop(true);
    return summary.reference;
  } catch (error) {
    display.stop(false);
    throw withHint(error, host);
  }
}

/**
 * Checks a new image name given on the command line with
 * {@link checkImageName}, and throws what it rejects as a usage error.
 */
export function checkNameArgument(
  name: string,
  label?: string,
  repository?: boolean,
): void {
  asUsage(() => checkImageName(name, label, repository));
}

/**
 * Checks the names of images in containerd given on the command line:
 * containerd stores any name, so only an empty name or one with spaces
 * around it is rejected, as a usage error.
 */
export function checkImageArguments(names: readonly string[]): void {
  for (const name of names) {
    if (name.trim() === "" || name !== name.trim()) {
      throw usage(
        `invalid image name "${name}": it is empty or has spaces around it`,
      );
    }
  }
}

/** Checks each `--platform` with {@link parsePlatform}, as usage errors. */
export function checkPlatformArguments(platforms: readonly string[]): void {
  for (const platform of platforms) {
    asUsage(() => parsePlatform(platform));
  }
}

/** Rejects an empty `--snapshotter` as a usage error. */
export function checkSnapshotterArgument(
  snapshotter: string | undefined,
): void {
  if (snapshotter !== undefined && snapshotter.trim() === "") {
    throw usage(
      `invalid --snapshotter "${snapshotter}": name a snapshotter, or ` +
        "leave the option out for the daemon's default",
    );
  }
}

// Returns the registry host of the reference given on the command line,
// and throws a reference outside the grammar as a usage error.
function hostArgument(reference: string): string {
  return asUsage(() => referenceHost(reference));
}

// Returns what `check` returns, and throws what it throws as a usage error.
function asUsage<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    throw usageError(TransferError.from(error).rawMessage, error);
  }
}

function addRegistryOptions(command: Command): Command {
  const collect = (value: string, previous: string[]) => [...previous, value];
  return command
    .addOption(
      new Option(
        "--platform <platform>",
        "os/architecture[/variant] to pull or push; repeatable",
      )
        .argParser(collect)
        .default([], "every platform"),
    )
    .option("-u, --user <user[:password]>", "registry user and password")
    .option("--password-stdin", "read the password of --user from stdin")
    .option(
      "--plain-http",
      "reach the registry over plain HTTP (containerd 2.0 and later; 1.7 " +
        "always uses HTTPS)",
    )
    .addOption(
      new Option(
        "--header <name:value>",
        "HTTP header for every registry request; repeatable",
      )
        .argParser(collect)
        .default([], "none"),
    )
    .option("-q, --quiet", "print no progress");
}

async function credentialsFor(
  host: string,
  flags: RegistryFlags,
): Promise<CredentialsCallback> {
  if (flags.user === undefined) {
    if (flags.passwordStdin) {
      throw usage("--password-stdin needs --user USER");
    }
    return dockerConfigCredentials();
  }

  const colon = flags.user.indexOf(":");
  const username = colon >= 0 ? flags.user.slice(0, colon) : flags.user;
  let secret = colon >= 0 ? flags.user.slice(colon + 1) : undefined;
  if (!username) {
    throw usage(`invalid --user "${flags.user}": use USER[:PASSWORD]`);
  }
  if (flags.passwordStdin) {
    if (secret !== undefined) {
      throw usage("give the password in --user or on stdin, not both");
    }
    secret = (await readStdin()).replace(/\r?\n$/, "");
  }
  if (secret === undefined || secret === "") {
    throw usage(
      `missing password for user ${username}: use --user USER:PASSWORD ` +
        "or --password-stdin",
    );
  }
  return fixedCredentials({ username, secret }, host);
}

function registryOptions(host: string, flags: RegistryFlags): RegistryOptions {
  const headers: Record<string, string> = {};
  for (const header of flags.header) {
    const colon = header.indexOf(":");
    if (colon <= 0) {
      throw usage(`invalid --header "${header}": use NAME:VALUE`);
    }
    headers[header.slice(0, colon).trim()] = header.slice(colon + 1).trim();
  }
  if (flags.plainHttp && !isLoopbackHost(host)) {
    process.stderr.write(
      `warning: --plain-http sends credentials for ${host} unencrypted\n`,
    );
  }
  return {
    headers,
    defaultScheme: flags.plainHttp ? "http" : undefined,
    onWarning: (warning: RegistryWarning) =>
      process.stderr.write(
        `warning: ${printable(warning.message)} (${warning.code})\n`,
      ),
  };
}

// Adds what to do next to the errors a user can fix.
function withHint(error: unknown, host: string): TransferError {
  const failure = TransferError.from(error);
  const message = failure.rawMessage;
  let hint: string | undefined;
  if (failure.kind === "unauthorized") {
    hint =
      `the registry ${host} rejected the credentials: give --user ` +
      `USER[:PASSWORD], or log in to ${host} in ${dockerConfigPath()}`;
  } else if (failure.kind === "permission denied") {
    hint = `the credentials for ${host} lack access to this repository`;
  } else if (message.includes("server gave HTTP response to HTTPS client")) {
    hint =
      `${host} serves plain HTTP: containerd 1.7 reaches registries over ` +
      "HTTPS only; with containerd 2.0 or later use --plain-http";
  } else if (message.includes("no unpack platforms defined")) {
    hint =
      "containerd unpacks only the platform and snapshotter pairs listed " +
      "in the unpack_config of its transfer plugin: choose a listed " +
      "snapshotter, or pull without --snapshotter";
  } else if (/x509:|certificate/.test(message)) {
    hint =
      `containerd does not trust the certificate of ${host}: add its CA ` +
      "to the trust store of the containerd daemon";
  }
  if (hint === undefined) {
    return failure;
  }
  return new TransferError(`${message}\nhint: ${hint}`, failure.code, failure);
}

/** Returns whether `host` (maybe with a port) is a loopback name or address. */
export function isLoopbackHost(host: string): boolean {
  const name = host.startsWith("[")
    ? host.slice(1, host.indexOf("]"))
    : host.replace(/:\d+$/, "");
  return name === "localhost" || name === "::1" || /^127\./.test(name);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function usage(message: string): TransferError {
  return usageError(message);
}
