/**
 * The archive layer: tar packing of a container path and extraction into
 * a container root that nothing escapes, on node-tar.
 */
export {
  cleanContainerPath,
  pathComponents,
} from "./container-path.js";
export type { ExtractSummary } from "./entry-writer.js";
export {
  type ArchiveSource,
  type ExtractOptions,
  extractArchive,
} from "./extract.js";
export { HandoffSink } from "./handoff-sink.js";
export { type PackOptions, packChunks, packPath } from "./pack.js";
export {
  encodePaxRecord,
  guardPaxHeaders,
  type PaxRecord,
  parsePaxRecords,
  paxValue,
} from "./pax-records.js";
export { type ResolveOptions, resolveInRoot } from "./resolve.js";
export type { ArchiveWarningCode, WarningHandler } from "./warning.js";
