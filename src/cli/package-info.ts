/**
 * Facts about the installed package, read from its package.json.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Returns the folder that contains this package's package.json, or
 * undefined when none is found. The code runs from dist/src/cli/ as
 * compiled, and from dist/ as the bundled command.
 */
export function packageRoot(): string | undefined {
  let folder = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(folder, "package.json"))) {
    const parent = dirname(folder);
    if (parent === folder) {
      return undefined;
    }
    folder = parent;
  }
  return folder;
}

/** Returns the package's version, or "unknown" without a package.json. */
export function packageVersion(): string {
  const root = packageRoot();
  if (root === undefined) {
    return "unknown";
  }
  const manifest = JSON.parse(
    readFileSync(join(root, "package.json"), "utf8"),
  ) as { version?: unknown };
  return typeof manifest.version === "string" ? manifest.version : "unknown";
}
