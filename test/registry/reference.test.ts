/** Reference normalization and the classification of registry errors. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { isLoopbackHost } from "../../src/cli/image-registry.js";
import {
  checkImageName,
  connect,
  importImage,
  normalizeReference,
  pullImage,
  referenceHost,
  registryError,
  tagImage,
} from "../../src/client/index.js";
import { Code, TransferError } from "../../src/errors/index.js";

const digest = `sha256:${"ab".repeat(32)}`;

test("normalize references like Docker", () => {
  const cases: [string, string][] = [
    ["busybox", "docker.io/library/busybox:latest"],
    ["busybox:1.36", "docker.io/library/busybox:1.36"],
    ["user/app", "docker.io/user/app:latest"],
    ["index.docker.io/user/app:2", "docker.io/user/app:2"],
    ["localhost/app", "localhost/app:latest"],
    ["127.0.0.1:5000/a/b:1", "127.0.0.1:5000/a/b:1"],
    ["127.0.0.1:5000/a", "127.0.0.1:5000/a:latest"],
    ["[::1]:5000/a:v1", "[::1]:5000/a:v1"],
    [`ghcr.io/o/r@${digest}`, `ghcr.io/o/r@${digest}`],
    [`ghcr.io/o/r:t@${digest}`, `ghcr.io/o/r:t@${digest}`],
  ];
  for (const [input, expected] of cases) {
    assert.equal(normalizeReference(input), expected, input);
  }
});

test("invalid references are rejected", () => {
  const cases = [
    "",
    "busybox:",
    "docker.io/Bad:1",
    "host:5000/a:bad tag",
    "a/b@sha256:short",
    "a//b",
  ];
  for (const input of cases) {
    assert.throws(
      () => normalizeReference(input),
      (error: unknown) =>
        error instanceof TransferError && error.kind === "invalid argument",
      JSON.stringify(input),
    );
  }
});

test("image names follow the grammar", () => {
  for (const name of ["bb:1", "imgfix.test/a/b:1", `x.test/r@${digest}`]) {
    assert.doesNotThrow(() => checkImageName(name), name);
  }
  const cases: [string, RegExp][] = [
    ["imgfix.test/Bad Name:1", /path component "Bad Name"/],
    ["imgfix.test/x:UP per", /tag "UP per"/],
    [" imgfix.test/x:1", /spaces around it/],
    ["", /empty/],
  ];
  for (const [name, detail] of cases) {
    assert.throws(
      () => checkImageName(name),
      (error: unknown) =>
        error instanceof TransferError &&
        error.kind === "invalid argument" &&
        error.message.includes(`invalid image name "${name}"`) &&
        detail.test(error.message),
      JSON.stringify(name),
    );
  }
  assert.throws(
    () => checkImageName("imgfix.test/app:1", "base name", true),
    /invalid base name "imgfix.test\/app:1": give a repository/,
  );
});

test("new names checked before sending", async () => {
  // Nothing listens here, so a call that sent a request would fail
  // as unavailable instead.
  const client = connect({ address: "/tmp/imgfix-absent/none.sock" });
  const invalid = (error: { kind?: string; message?: string }) => {
    assert.equal(error.kind, "invalid argument", error.message);
    return true;
  };
  try {
    await assert.rejects(
      tagImage(client, "imgfix.test/a:1", "imgfix.test/B:1"),
      invalid,
    );
    await assert.rejects(
      importImage(client, [Buffer.alloc(1024)], { name: "imgfix.test/b c" }),
      invalid,
    );
    await assert.rejects(
      importImage(client, [Buffer.alloc(1024)], { baseName: "x.test/Up" }),
      invalid,
    );
    await assert.rejects(
      pullImage(client, "imgfix.test/a:1", { name: "imgfix.test/a:b c" }),
      invalid,
    );
  } finally {
    await client.close();
  }
});

test("reference host of short names", () => {
  assert.equal(referenceHost("busybox"), "docker.io");
  assert.equal(referenceHost("127.0.0.1:5443/x/y:1"), "127.0.0.1:5443");
});

test("registry errors get their kind", () => {
  const reference = "127.0.0.1:5444/a:1";
  const cases: [string, Code, string][] = [
    [
      "failed to resolve image: unexpected status from HEAD request to " +
        "https://127.0.0.1:5444/v2/a/manifests/1: 401 Unauthorized",
      Code.Unknown,
      "unauthorized",
    ],
    [
      "failed to resolve image: pull access denied, repository does not " +
        "exist or may require authorization: authorization failed: no " +
        "basic auth credentials",
      Code.Unknown,
      "unauthorized",
    ],
    [
      "unexpected status from PUT request to https://x/v2/a/manifests/1: " +
        "403 Forbidden",
      Code.Unknown,
      "permission denied",
    ],
    [
      "failed to resolve image: 127.0.0.1:5444/a:1: not found",
      Code.NotFound,
      "not found",
    ],
    [
      'failed to do request: Head "https://127.0.0.1:5000/v2/a/manifests/1"' +
        ": http: server gave HTTP response to HTTPS client",
      Code.Unknown,
      "unavailable",
    ],
    ["something else", Code.Unknown, "unknown"],
  ];
  for (const [message, code, kind] of cases) {
    const error = registryError(
      new TransferError(message, code),
      "pull",
      reference,
    );
    assert.equal(error.kind, kind, message);
    assert.equal(
      error.rawMessage,
      `failed to pull ${reference}: ${message}`,
      message,
    );
  }
});

test("canceled registry errors stay", () => {
  const canceled = new TransferError("canceled: interrupted", Code.Canceled);

  const error = registryError(canceled, "push", "r.example.test/a:1");

  assert.equal(error, canceled);
});

test("aborted signal makes canceled error", () => {
  const controller = new AbortController();
  controller.abort(new Error("interrupted"));
  const internal = new TransferError("interrupted", Code.Internal);

  const error = registryError(
    internal,
    "pull",
    "r.example.test/a:1",
    controller.signal,
  );

  assert.equal(error.kind, "canceled");
  assert.match(error.rawMessage, /interrupted/);
});

test("loopback hosts are recognized", () => {
  for (const host of [
    "localhost",
    "127.0.0.1:5000",
    "127.9.9.9",
    "[::1]:5000",
  ]) {
    assert.equal(isLoopbackHost(host), true, host);
  }
  for (const host of ["registry.example.test", "192.0.2.1:5000", "[::2]:80"]) {
    assert.equal(isLoopbackHost(host), false, host);
  }
});
