/**
 * Container path normalisation shared by packing, extraction and the
 * server. A container path is always read as if it started at the
 * container's `/`, so `..` can never climb above the root.
 */

import { Code, TransferError } from "../errors/index.js";

/**
 * Maximum directory levels that packing, extraction and resolution go
 * down. Every level keeps a directory open and a copy of its path while
 * its entry is written or its tree is packed. Without a limit, one small
 * archive with a very deep name could exhaust the server's file
 * descriptors or memory. Linux's PATH_MAX of 4096 bytes fits at most
 * 2048 levels.
 */
export const maxPathDepth = 256;

/** Returns the error for a path deeper than {@link maxPathDepth} levels. */
export function tooDeepError(action: string, where: string): TransferError {
  return new TransferError(
    `cannot ${action} "${shortPath(where)}": it is more than ${maxPathDepth} ` +
      "directories deep, the maximum. Copy a folder further down instead",
    Code.InvalidArgument,
  );
}

/** Longest path that a message shows whole, in characters. */
const maxShownPath = 1024;

/**
 * Returns `path` for a message, cut after {@link maxShownPath}
 * characters with its full length noted: an archive can name an entry
 * with up to 1 MiB of PAX header, which would fill logs and terminals.
 */
export function shortPath(path: string): string {
  if (path.length <= maxShownPath) {
    return path;
  }
  return `${path.slice(0, maxShownPath)}... (${path.length} characters)`;
}

/**
 * Cleans `path` the way Go's `path.Clean("/" + path)` does, then drops the
 * leading `/`. The result is relative to the container root and has no
 * `.`, `..` or empty components. So `""`, `/` and `.` all give `""` (the
 * root itself), and `../foo` gives `foo`.
 */
export function cleanContainerPath(path: string): string {
  return pathComponents(path).join("/");
}

/**
 * Splits `path` into its cleaned components: the components of
 * {@link cleanContainerPath}, and an empty list for the root.
 */
export function pathComponents(path: string): string[] {
  const components: string[] = [];
  for (const component of path.split("/")) {
    if (component === "" || component === ".") {
      continue;
    }
    if (component === "..") {
      components.pop();
      continue;
    }
    components.push(component);
  }
  return components;
}

/** Formats cleaned components as an absolute container path for messages. */
export function displayPath(components: readonly string[]): string {
  return `/${components.join("/")}`;
}
