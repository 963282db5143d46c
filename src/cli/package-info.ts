/**
 * Facts about the installed package, read from its package.json.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const packageName = "containerd-transfer";

// The bundler replaces this name with the version from package.json, so
// the bundled command prints its version wherever its two files are
// copied together (dist/cli.js loads dist/cli-main.js).
declare const bundledPackageVersion: string | undefined;

/**
 * Returns the folder that contains this package's package.json, or
 * undefined when none is found. The code runs from dist/src/cli/ as
 * compiled, and from dist/ as the bundled command.
 */
export function packageRoot(): string | undefined {
  let folder = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (readManifest(folder)?.name === packageName) {
      return folder;
    }
    const parent = dirname(folder);
    if (parent === folder) {
      return undefined;
    }
    folder = parent;
  }
}

/** Returns the package's version, or "unknown" when it cannot be found. */
export function packageVersion(): string {
  if (typeof bundledPackageVersion === "string") {
    return bundledPackageVersion;
  }
  const root = packageRoot();
  const version = root === undefined ? undefined : readManifest(root)?.version;
  return typeof version === "string" ? version : "unknown";
}

function readManifest(
  folder: string,
): { name?: unknown; version?: unknown } | undefined {
  const path = join(folder, "package.json");
  if (!existsSync(path)) {
    return undefined;
  }
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
}
