/**
 * Docker credential helpers: `docker-credential-<name> get` reads a server
 * URL on standard input and prints `{"ServerURL", "Username", "Secret"}` as
 * JSON. A user name of `<token>` means the secret is an identity token. A
 * helper without an entry exits non-zero and prints "credentials not
 * found in native keychain".
 */
import { spawn } from "node:child_process";
import { Code, TransferError } from "../errors/index.js";
import type { RegistryCredentials } from "../transfer/index.js";

export interface CredentialHelperOptions {
  /** How long the helper may run. Default 10 000 ms. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Environment of the helper; default this process's. */
  env?: NodeJS.ProcessEnv;
}

// Output beyond this size is dropped: a credentials response is far smaller.
const maxOutputBytes = 64 * 1024;

/**
 * Runs `docker-credential-<helper> get` for `serverUrl`. Returns the
 * credentials, or undefined when the helper has none for the server.
 * Rejects when the helper is missing, fails, times out or prints
 * something that is not a credentials response.
 */
export async function getHelperCredentials(
  helper: string,
  serverUrl: string,
  options: CredentialHelperOptions = {},
): Promise<RegistryCredentials | undefined> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(helper)) {
    throw new TransferError(
      `invalid credential helper name "${helper}": use letters, digits, ` +
        "'.', '_' and '-'",
      Code.InvalidArgument,
    );
  }
  const program = `docker-credential-${helper}`;
  const result = await run(program, serverUrl, options);

  if (result.code !== 0) {
    const output = (result.stdout || result.stderr).trim();
    if (/credentials not found/i.test(output)) {
      return undefined;
    }
    throw new TransferError(
      `${program} get failed for ${serverUrl} with exit code ` +
        `${result.code}: ${output.slice(0, 500) || "no output"}`,
      Code.Unavailable,
    );
  }

  let response: { Username?: unknown; Secret?: unknown };
  try {
    response = JSON.parse(result.stdout);
  } catch (error) {
    throw new TransferError(
      `${program} get printed invalid JSON for ${serverUrl}`,
      Code.Internal,
      error,
    );
  }
  if (typeof response?.Secret !== "string" || !response.Secret) {
    return undefined;
  }
  if (response.Username === "<token>") {
    return { refreshToken: response.Secret };
  }
  return {
    username: typeof response.Username === "string" ? response.Username : "",
    secret: response.Secret,
  };
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(
  program: string,
  input: string,
  options: CredentialHelperOptions,
): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const signal = options.signal
    ? AbortSignal.any([options.signal, AbortSignal.timeout(timeoutMs)])
    : AbortSignal.timeout(timeoutMs);

  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn(program, ["get"], {
      env: options.env,
      stdio: ["pipe", "pipe", "pipe"],
      signal,
      killSignal: "SIGKILL",
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let outputBytes = 0;
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      if (outputBytes < maxOutputBytes) {
        into.push(chunk);
        outputBytes += chunk.length;
      }
    };
    child.stdout.on("data", collect(stdout));
    child.stderr.on("data", collect(stderr));
    // A helper that exits without reading its input makes the write fail
    // with EPIPE. Its exit code and output are reported instead.
    child.stdin.on("error", () => {});
    child.stdin.end(input);

    const stopped = (cause: unknown) => {
      const timedOut = !options.signal?.aborted;
      return new TransferError(
        timedOut
          ? `${program} get timed out after ${timeoutMs} ms`
          : `${program} get was canceled`,
        timedOut ? Code.DeadlineExceeded : Code.Canceled,
        cause,
      );
    };
    child.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") {
        reject(
          new TransferError(
            `credential helper ${program} not found in PATH: install it ` +
              "or remove it from the Docker config file",
            Code.NotFound,
            error,
          ),
        );
      } else if (signal.aborted) {
        reject(stopped(error));
      } else {
        reject(TransferError.from(error));
      }
    });
    child.on("close", (code) => {
      if (signal.aborted) {
        reject(stopped(signal.reason));
        return;
      }
      resolve({
        code: code ?? -1,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: Buffer.concat(stderr).toString("utf8"),
      });
    });
  });
}
