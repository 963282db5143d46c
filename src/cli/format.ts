/** Formats a byte count with binary units: `1.5 MiB`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Formats a rate in MiB/s from bytes and milliseconds. */
export function formatRate(bytes: number, ms: number): string {
  if (ms <= 0) {
    return "- MiB/s";
  }
  return `${(bytes / 1024 / 1024 / (ms / 1000)).toFixed(1)} MiB/s`;
}

/** C0 controls, DEL and C1 controls. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: it finds controls
const controlCharacters = /[\u0000-\u001f\u007f-\u009f]/g;

/**
 * Returns `text` with its control characters (C0, DEL and C1) written as
 * `\xNN`, so that a name from a container cannot move the cursor, clear
 * the screen or retitle the terminal that prints it.
 */
export function printable(text: string): string {
  return text.replace(
    controlCharacters,
    (control) => `\\x${control.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}
