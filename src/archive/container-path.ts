/**
 * Container path normalisation shared by packing, extraction and the
 * server. A container path is always read as if it started at the
 * container's `/`, so `..` can never climb above the root.
 */

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
