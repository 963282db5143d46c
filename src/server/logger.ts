/**
 * The server's log interface: one line per event with structured fields.
 * The library default writes nothing unless NODE_DEBUG names
 * containerd-transfer:server; the CLI logs to standard error.
 */
import { debuglog } from "node:util";

export type LogFields = Record<string, unknown>;

export interface Logger {
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

const debug = debuglog("containerd-transfer:server");

export const debugLogger: Logger = {
  info: (message, fields) => debug("%s %j", message, fields ?? {}),
  warn: (message, fields) => debug("warning: %s %j", message, fields ?? {}),
  error: (message, fields) => debug("error: %s %j", message, fields ?? {}),
};
