/**
 * Registry credentials from Docker's client configuration, looked up the
 * way the docker and nerdctl clients do it. `config.json` lives in
 * `$DOCKER_CONFIG` or else `~/.docker`, and may contain:
 *
 * - `auths`: entries keyed by registry (`host`, `https://host`, or
 *   `https://index.docker.io/v1/` for Docker Hub), each with a base64
 *   `auth` of `user:password`, or `username` and `password`, and maybe an
 *   `identitytoken`.
 * - `credHelpers`: a credential helper name per registry host.
 * - `credsStore`: the credential helper for every other registry.
 */
import { readFile, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { Code, TransferError } from "../errors/index.js";
import type {
  CredentialsCallback,
  RegistryCredentials,
} from "../transfer/index.js";
import { getHelperCredentials } from "./credentials-helper.js";

/** The `auths` key and credential helper server URL of Docker Hub. */
export const dockerHubServerUrl = "https://index.docker.io/v1/";

export interface DockerConfigOptions {
  /** Folder of `config.json`. Default `$DOCKER_CONFIG`, else `~/.docker`. */
  configDir?: string;
  /** Environment for `DOCKER_CONFIG` and the helpers; default this one. */
  env?: NodeJS.ProcessEnv;
  /** How long one credential helper may run. Default 10 000 ms. */
  helperTimeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Returns a credentials callback that looks up each requested host in the
 * Docker configuration with {@link lookUpDockerCredentials}. The file is
 * read again for every request, so a `docker login` in between counts.
 */
export function dockerConfigCredentials(
  options: DockerConfigOptions = {},
): CredentialsCallback {
  return (request, signal) =>
    lookUpDockerCredentials(request.host, {
      ...options,
      signal: options.signal
        ? AbortSignal.any([options.signal, signal])
        : signal,
    });
}

/**
 * Returns a callback that returns `credentials` for `host` (every host
 * when unset) and no credentials for other hosts. Docker Hub's
 * names (`docker.io`, `index.docker.io`, `registry-1.docker.io`) count as
 * one host.
 */
export function fixedCredentials(
  credentials: RegistryCredentials,
  host?: string,
): CredentialsCallback {
  return (request) =>
    host === undefined || hostKey(request.host) === hostKey(host)
      ? credentials
      : undefined;
}

/**
 * Looks up the credentials for a registry host: first the credential
 * helper named for the host in `credHelpers`, else the `credsStore`
 * helper, then the host's `auths` entry. An `identitytoken` becomes a
 * refresh token. Returns undefined when nothing matches or there is no
 * config file. Rejects when the file is not valid JSON, an entry cannot
 * be decoded, or a helper fails.
 */
export async function lookUpDockerCredentials(
  host: string,
  options: DockerConfigOptions = {},
): Promise<RegistryCredentials | undefined> {
  const path = dockerConfigPath(options);
  const config = await readConfig(path);
  if (config === undefined) {
    return undefined;
  }

  const helper = findEntry(config.credHelpers, host) ?? config.credsStore;
  if (typeof helper === "string" && helper) {
    const serverUrl = hostKey(host) === "docker.io" ? dockerHubServerUrl : host;
    const found = await getHelperCredentials(helper, serverUrl, {
      timeoutMs: options.helperTimeoutMs,
      signal: options.signal,
      env: options.env,
    });
    if (found) {
      return found;
    }
  }

  const entry = findEntry(config.auths, host);
  return entry === undefined ? undefined : decodeEntry(entry, host, path);
}

/** Returns the path of Docker's `config.json` for these options. */
export function dockerConfigPath(options: DockerConfigOptions = {}): string {
  const env = options.env ?? process.env;
  const dir = options.configDir ?? env.DOCKER_CONFIG;
  return join(dir || join(homedir(), ".docker"), "config.json");
}

interface DockerConfig {
  auths?: Record<string, unknown>;
  credHelpers?: Record<string, unknown>;
  credsStore?: unknown;
}

interface AuthEntry {
  auth?: unknown;
  username?: unknown;
  password?: unknown;
  identitytoken?: unknown;
}

async function readConfig(path: string): Promise<DockerConfig | undefined> {
  let text: string;
  try {
    // An open(2) of a FIFO waits for a writer in a thread that the process
    // joins on exit, so only a regular file is opened.
    if (!(await stat(path)).isFile()) {
      throw new TransferError(
        `invalid Docker config file ${path}: it is not a regular file, ` +
          "so write the configuration to a file",
        Code.FailedPrecondition,
      );
    }
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      return undefined;
    }
    throw TransferError.from(error);
  }

  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (error) {
    throw new TransferError(
      `invalid Docker config file ${path}: ${(error as Error).message}`,
      Code.InvalidArgument,
      error,
    );
  }
  if (typeof config !== "object" || config === null) {
    throw new TransferError(
      `invalid Docker config file ${path}: expected a JSON object`,
      Code.InvalidArgument,
    );
  }
  return config as DockerConfig;
}

// Returns the value for `host` in a record keyed by registry: an exact
// key first, then `https://host`, then any key whose host part matches.
function findEntry(
  record: Record<string, unknown> | undefined,
  host: string,
): unknown {
  if (typeof record !== "object" || record === null) {
    return undefined;
  }
  for (const key of [host, `https://${host}`]) {
    if (Object.hasOwn(record, key)) {
      return record[key];
    }
  }
  const target = hostKey(host);
  const key = Object.keys(record).find((name) => hostKey(name) === target);
  return key === undefined ? undefined : record[key];
}

// Reduces a registry key (`https://host:port/v1/`, `host`) to its host,
// lowercased, with Docker Hub's names folded into `docker.io`.
function hostKey(key: string): string {
  const host = key
    .trim()
    .replace(/^[a-z]+:\/\//i, "")
    .replace(/\/.*$/, "")
    .toLowerCase();
  return dockerHubHosts.has(host) ? "docker.io" : host;
}

const dockerHubHosts = new Set([
  "docker.io",
  "index.docker.io",
  "registry-1.docker.io",
  "registry.hub.docker.com",
]);

function decodeEntry(
  value: unknown,
  host: string,
  path: string,
): RegistryCredentials | undefined {
  const entry = (
    typeof value === "object" && value !== null ? value : {}
  ) as AuthEntry;
  if (typeof entry.identitytoken === "string" && entry.identitytoken) {
    return { refreshToken: entry.identitytoken };
  }
  if (typeof entry.auth === "string" && entry.auth) {
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon <= 0) {
      throw new TransferError(
        `invalid "auth" of the ${host} entry in ${path}: expected ` +
          "base64 of user:password",
        Code.InvalidArgument,
      );
    }
    return {
      username: decoded.slice(0, colon),
      secret: decoded.slice(colon + 1),
    };
  }
  if (typeof entry.username === "string" && entry.username) {
    return {
      username: entry.username,
      secret: typeof entry.password === "string" ? entry.password : "",
    };
  }
  return undefined;
}
