import { usageError } from "./usage.js";

export type CopyEnd =
  | { kind: "container"; containerId: string; path: string }
  | { kind: "local"; path: string }
  | { kind: "stdio" };

/**
 * Parses a `cp` argument the way docker cp does: `CONTAINER:PATH` names a
 * container path (`CONTAINER:` is its root), `-` is a tar stream on
 * standard input or output, and anything else is a local path. A local
 * path that contains a colon is written with a `./` or `/` prefix.
 * `command` names the command in errors.
 */
export function parseCopyEnd(argument: string, command = "copy"): CopyEnd {
  if (argument === "") {
    throw usageError(
      `invalid ${command} argument "": give a path, or . for the current ` +
        "directory",
    );
  }
  if (argument === "-") {
    return { kind: "stdio" };
  }
  if (/^\.{0,2}\//.test(argument)) {
    return { kind: "local", path: argument };
  }
  const colon = argument.indexOf(":");
  if (colon > 0) {
    return {
      kind: "container",
      containerId: argument.slice(0, colon),
      path: argument.slice(colon + 1) || "/",
    };
  }
  if (colon === 0) {
    throw usageError(
      `invalid ${command} argument "${argument}": the container name ` +
        "before ':' " +
        "is missing",
    );
  }
  return { kind: "local", path: argument };
}
