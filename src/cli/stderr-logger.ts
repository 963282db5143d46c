import type { LogFields, Logger } from "../server/index.js";

/** Logs one line per event to standard error: time, level, message, fields. */
export function stderrLogger(): Logger {
  const write = (level: string, message: string, fields?: LogFields) => {
    const details = Object.entries(fields ?? {})
      .map(([key, value]) => `${key}=${JSON.stringify(value)}`)
      .join(" ");
    process.stderr.write(
      `${new Date().toISOString()} ${level} ${message}${details ? ` ${details}` : ""}\n`,
    );
  };
  return {
    info: (message, fields) => write("info", message, fields),
    warn: (message, fields) => write("warn", message, fields),
    error: (message, fields) => write("error", message, fields),
  };
}
