/**
 * Pull and push through containerd's Transfer service: an OCIRegistry end
 * on one side, containerd's image store on the other. containerd talks to
 * the registry itself, and this process only sends the credentials it
 * requests.
 */
import { abortReason, Code, TransferError } from "../errors/index.js";
import {
  type CredentialsCallback,
  ImageStore,
  OCIRegistry,
  type OCIRegistryOptions,
  type Progress,
} from "../transfer/index.js";
import type { Client } from "./client.js";
import { type PlatformSpec, parsePlatform } from "./image-platform.js";

export {
  type DockerConfigOptions,
  dockerConfigCredentials,
  dockerConfigPath,
  dockerHubServerUrl,
  fixedCredentials,
  lookUpDockerCredentials,
} from "./credentials.js";
export {
  type CredentialHelperOptions,
  getHelperCredentials,
} from "./credentials-helper.js";

/** Resolver settings of {@link pullImage} and {@link pushImage}. */
export type RegistryOptions = Omit<OCIRegistryOptions, "credentials">;

export interface PullOptions {
  /**
   * Name of the image in containerd. Default the normalized reference.
   * A name outside the reference grammar is rejected (InvalidArgument).
   */
  name?: string;
  /**
   * Platforms to fetch, as `os/arch[/variant]` or objects. Empty or unset
   * fetches every platform of an index.
   */
  platforms?: PlatformSpec[];
  /**
   * Platform and snapshotter pairs to unpack after the pull; an empty
   * snapshotter means the platform's default. containerd keeps only the
   * pairs that its transfer plugin's `unpack_config` lists (by default the
   * daemon's platform with overlayfs), and containerd 1.7 fails the pull
   * with InvalidArgument "no unpack platforms defined" when none is left.
   */
  unpack?: { platform: PlatformSpec; snapshotter?: string }[];
  /** Returns credentials for containerd's credential requests. */
  credentials?: CredentialsCallback;
  registry?: RegistryOptions;
  /** Receives every progress event before the pull settles. */
  onProgress?: (event: Progress) => void;
  signal?: AbortSignal;
}

export interface PushOptions {
  /**
   * Platforms to push. containerd 2.x pushes only these; containerd 1.7
   * ignores the filter and pushes every platform the image has.
   */
  platforms?: PlatformSpec[];
  credentials?: CredentialsCallback;
  registry?: RegistryOptions;
  onProgress?: (event: Progress) => void;
  signal?: AbortSignal;
}

/** Result of a pull or push. */
export interface RegistryTransferSummary {
  /** The normalized registry reference, such as `docker.io/library/x:1`. */
  reference: string;
  /** The image name in containerd. */
  name: string;
}

/**
 * Pulls `reference` from its registry into containerd's image store.
 * A short Docker reference (`busybox`) is normalized the way Docker does
 * (`docker.io/library/busybox:latest`). Rejects with a TransferError whose
 * kind is `unauthorized` when the registry rejected the credentials,
 * `not found` for a missing image, and keeps containerd's message.
 */
export async function pullImage(
  client: Client,
  reference: string,
  options: PullOptions = {},
): Promise<RegistryTransferSummary> {
  const normalized = normalizeReference(reference);
  if (options.name !== undefined) {
    checkImageName(options.name);
  }
  const name = options.name ?? normalized;
  const source = new OCIRegistry(normalized, {
    ...options.registry,
    credentials: options.credentials,
  });
  const destination = new ImageStore({
    name,
    platforms: (options.platforms ?? []).map(parsePlatform),
    unpacks: (options.unpack ?? []).map((entry) => ({
      platform: parsePlatform(entry.platform),
      snapshotter: entry.snapshotter ?? "",
    })),
  });

  try {
    await client.transfer(source, destination, {
      signal: options.signal,
      onProgress: options.onProgress,
    });
  } catch (error) {
    throw registryError(error, "pull", normalized, options.signal);
  }
  return { reference: normalized, name };
}

/**
 * Pushes the containerd image `localName` to `remoteReference` (default
 * `localName`, normalized the way Docker does). containerd pushes the
 * manifest by digest and then tags it.
 */
export async function pushImage(
  client: Client,
  localName: string,
  remoteReference?: string,
  options: PushOptions = {},
): Promise<RegistryTransferSummary> {
  if (!localName) {
    throw new TransferError(
      "missing image name: name the containerd image to push",
      Code.InvalidArgument,
    );
  }
  const normalized = normalizeReference(remoteReference ?? localName);
  const source = new ImageStore({
    name: localName,
    platforms: (options.platforms ?? []).map(parsePlatform),
  });
  const destination = new OCIRegistry(normalized, {
    ...options.registry,
    credentials: options.credentials,
  });

  try {
    await client.transfer(source, destination, {
      signal: options.signal,
      onProgress: options.onProgress,
    });
  } catch (error) {
    throw registryError(error, "push", normalized, options.signal);
  }
  return { reference: normalized, name: localName };
}

/**
 * Converts an error of a pull or push into a TransferError with a
 * registry-specific code, or into Canceled when `signal` aborted.
 * containerd 1.7 sends every registry failure except "not found" as
 * Unknown (2), with the registry's status in the text, such as
 * `unexpected status from HEAD request to URL: 401 Unauthorized`. The
 * code is derived from that text, which is kept.
 */
export function registryError(
  error: unknown,
  operation: "pull" | "push",
  reference: string,
  signal?: AbortSignal,
): TransferError {
  // The transport reports an abort whose reason is a plain Error as
  // Internal, so the caller's signal decides.
  if (signal?.aborted) {
    return abortReason(signal);
  }
  const failure = TransferError.from(error);
  if (
    failure.code === Code.Canceled ||
    failure.code === Code.DeadlineExceeded
  ) {
    return failure;
  }

  const code =
    failure.code === Code.Unknown ? classify(failure.rawMessage) : failure.code;
  return new TransferError(
    `failed to ${operation} ${reference}: ${failure.rawMessage}`,
    code,
    failure,
  );
}

// Status texts of the Go registry client as containerd 1.7 words them.
const unauthorizedText =
  /\b401 Unauthorized\b|authorization failed|no basic auth credentials|\bunauthorized\b/i;
const deniedText = /\b403 Forbidden\b|\bdenied\b/i;
const notFoundText = /\b404 Not Found\b|: not found$/i;
const unreachableText =
  /server gave HTTP response to HTTPS client|connection refused|no such host|i\/o timeout|x509:|tls:/i;

function classify(message: string): Code {
  if (unauthorizedText.test(message)) {
    return Code.Unauthenticated;
  }
  if (deniedText.test(message)) {
    return Code.PermissionDenied;
  }
  if (notFoundText.test(message)) {
    return Code.NotFound;
  }
  if (unreachableText.test(message)) {
    return Code.Unavailable;
  }
  return Code.Unknown;
}

// Grammar of the distribution reference format: path components, tags,
// digests and registry domains (with an optional port).
const componentPattern = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const tagPattern = /^\w[\w.-]{0,127}$/;
const digestPattern = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const domainPattern =
  /^(?:\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)(?::[0-9]+)?$/;

/**
 * Normalizes an image reference the way Docker does. A first path
 * component without `.` or `:` that is not `localhost` (and is all
 * lowercase) names a repository on Docker Hub (`docker.io`). A Docker Hub
 * name of one component gets `library/`, and a reference without tag or
 * digest gets `:latest`.
 * Throws InvalidArgument for a reference outside the grammar.
 */
export function normalizeReference(reference: string): string {
  const { domain, path, tag, digest } = splitReference(
    reference,
    "image reference",
  );
  return `${domain}/${path}${tag ? `:${tag}` : ""}${digest ? `@${digest}` : ""}`;
}

/**
 * Checks a name that containerd is to store, such as the target of a tag
 * or the name of an import, against the reference grammar that
 * {@link normalizeReference} applies to a pull. containerd stores any
 * name as given, but its exporter rejects one outside the grammar with
 * "invalid reference format". `label` names the value in the message.
 * With `repository` set, a tag or digest is rejected as well. Throws
 * InvalidArgument.
 */
export function checkImageName(
  name: string,
  label = "image name",
  repository = false,
): void {
  if (name === "" || name !== name.trim()) {
    throw new TransferError(
      `invalid ${label} "${name}": it is empty or has spaces around it`,
      Code.InvalidArgument,
    );
  }
  const { tag, digest } = splitReference(name, label, repository);
  if (repository && (tag || digest)) {
    throw new TransferError(
      `invalid ${label} "${name}": give a repository without a tag or ` +
        "digest, such as example.test/app",
      Code.InvalidArgument,
    );
  }
}

interface ReferenceParts {
  domain: string;
  path: string;
  tag: string;
  digest: string;
}

// Splits a reference and checks each part, naming it `label` in errors.
// A reference without tag or digest gets the tag `latest` unless `bare`.
function splitReference(
  reference: string,
  label: string,
  bare = false,
): ReferenceParts {
  let rest = reference.trim();
  let digest = "";
  let tag = "";
  const check = (valid: boolean, part: string) => {
    if (!valid) {
      throw new TransferError(
        `invalid ${label} "${reference}": invalid ${part}`,
        Code.InvalidArgument,
      );
    }
  };

  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    check(
      digestPattern.test(digest),
      `digest "${digest}" (use ALGORITHM:HEX, such as sha256:...)`,
    );
  }
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    check(
      tagPattern.test(tag),
      `tag "${tag}" (up to 128 letters, digits and . _ -, not starting ` +
        "with . or -)",
    );
  }

  let domain = "docker.io";
  let path = rest;
  const slash = rest.indexOf("/");
  const first = slash >= 0 ? rest.slice(0, slash) : "";
  if (
    first.includes(".") ||
    first.includes(":") ||
    first === "localhost" ||
    first !== first.toLowerCase()
  ) {
    domain = first;
    path = rest.slice(slash + 1);
    check(domainPattern.test(domain), `registry "${domain}"`);
  }
  if (domain === "index.docker.io") {
    domain = "docker.io";
  }
  if (domain === "docker.io" && !path.includes("/")) {
    path = `library/${path}`;
  }
  for (const component of path.split("/")) {
    check(
      componentPattern.test(component),
      `path component "${component}" (lowercase letters, digits and ` +
        "separators . _ __ - only)",
    );
  }

  if (!tag && !digest && !bare) {
    tag = "latest";
  }
  return { domain, path, tag, digest };
}

/** Returns the registry host of a reference, such as `docker.io`. */
export function referenceHost(reference: string): string {
  const normalized = normalizeReference(reference);
  return normalized.slice(0, normalized.indexOf("/"));
}
