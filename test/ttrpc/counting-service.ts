/**
 * A test-only service with the two one-sided streaming kinds, which none
 * of the generated services has. It is built at run time from a
 * FileDescriptorProto and uses google.protobuf.Any for every message.
 */
import {
  create,
  createFileRegistry,
  type DescService,
} from "@bufbuild/protobuf";
import {
  type Any,
  FileDescriptorProtoSchema,
  file_google_protobuf_any,
} from "@bufbuild/protobuf/wkt";

/** Client of {@link Counting} as `createClient()` returns it. */
export interface CountingClient {
  /** Client streaming: many requests, one response. */
  upload(requests: AsyncIterable<Any>): Promise<Any>;
  /** Server streaming: one request, many responses. */
  download(request: Any): AsyncIterable<Any>;
}

const file = create(FileDescriptorProtoSchema, {
  name: "test/counting.proto",
  package: "test",
  syntax: "proto3",
  dependency: ["google/protobuf/any.proto"],
  service: [
    {
      name: "Counting",
      method: [
        {
          name: "Upload",
          inputType: ".google.protobuf.Any",
          outputType: ".google.protobuf.Any",
          clientStreaming: true,
        },
        {
          name: "Download",
          inputType: ".google.protobuf.Any",
          outputType: ".google.protobuf.Any",
          serverStreaming: true,
        },
      ],
    },
  ],
});

/** The service `test.Counting` with methods Upload and Download. */
export const Counting: DescService = createFileRegistry(file, (name) =>
  name === "google/protobuf/any.proto" ? file_google_protobuf_any : undefined,
).getService("test.Counting")!;
