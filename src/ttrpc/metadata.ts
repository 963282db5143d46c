/**
 * ttrpc metadata (`repeated KeyValue`, a key may repeat) to and from the
 * `Headers` of connect-es calls. `Headers` lower-cases keys, which is what
 * Go's ttrpc expects: its API lower-cases keys, but its server stores them
 * as received.
 */
import { create } from "@bufbuild/protobuf";
import { type KeyValue, KeyValueSchema } from "../gen/ttrpc/request_pb.js";

/** What the `Headers` constructor accepts, as connect-es's `header`. */
export type HeadersInit = ConstructorParameters<typeof Headers>[0];

/**
 * Values of each key that `init` gives more than once, in order. Only the
 * array form of `HeadersInit` can repeat a key; `Headers` joins repeated
 * values with ", ", which {@link metadataFromHeaders} undoes with this.
 */
export function repeatedValues(
  init: HeadersInit | undefined,
): Map<string, string[]> {
  const repeated = new Map<string, string[]>();
  if (!Array.isArray(init)) {
    return repeated;
  }
  for (const pair of init) {
    const [key, value] = pair;
    if (key === undefined || value === undefined) {
      continue;
    }
    const name = key.toLowerCase();
    const values = repeated.get(name) ?? [];
    values.push(value.trim());
    repeated.set(name, values);
  }
  for (const [name, values] of repeated) {
    if (values.length < 2) {
      repeated.delete(name);
    }
  }
  return repeated;
}

/**
 * Returns the metadata entries for a call's headers. A key listed in
 * `repeated` becomes one entry per value, unless an interceptor changed
 * its value since.
 */
export function metadataFromHeaders(
  header: Headers,
  repeated: Map<string, string[]>,
): KeyValue[] {
  const metadata: KeyValue[] = [];
  header.forEach((value, key) => {
    const values = repeated.get(key);
    if (values && values.join(", ") === value) {
      for (const single of values) {
        metadata.push(create(KeyValueSchema, { key, value: single }));
      }
      return;
    }
    metadata.push(create(KeyValueSchema, { key, value }));
  });
  return metadata;
}

/**
 * Returns the headers for received metadata; a repeated key's values are
 * joined with ", ". Entries that are not valid HTTP header names or values
 * are left out and returned in `rejected`.
 */
export function headersFromMetadata(metadata: KeyValue[]): {
  headers: Headers;
  rejected: KeyValue[];
} {
  const headers = new Headers();
  const rejected: KeyValue[] = [];
  for (const entry of metadata) {
    try {
      headers.append(entry.key, entry.value);
    } catch {
      rejected.push(entry);
    }
  }
  return { headers, rejected };
}
