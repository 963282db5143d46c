/**
 * Image import, export and tag against the containerd 1.7 test daemon,
 * checked through the Images service and against `ctr`.
 */
import assert from "node:assert/strict";
import { createWriteStream } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  exportImage,
  getImage,
  importImage,
  listImages,
  tagImage,
} from "../../src/client/index.js";
import {
  digestOf,
  dockerArchive,
  type ImageArchive,
  ociArchive,
} from "./archives.js";
import {
  ctr,
  ctrImageDigest,
  type Daemon,
  memorySink,
  openDaemon,
  tarFiles,
} from "./daemon.js";

const mib = 1024 * 1024;
const ociManifestType = "application/vnd.oci.image.manifest.v1+json";
const dockerManifestType =
  "application/vnd.docker.distribution.manifest.v2+json";

/** Imports `archive` and registers its name for clean-up. */
async function importArchive(daemon: Daemon, archive: ImageArchive) {
  daemon.cleanUp(archive.name);
  return importImage(daemon.client, [archive.bytes]);
}

/** Exports `names` through this package into memory. */
async function exportToMemory(daemon: Daemon, names: string[]) {
  const { sink, bytes } = memorySink();
  const result = await exportImage(daemon.client, names, sink);
  assert.equal(result.bytes, bytes().length);
  return bytes();
}

for (const format of ["OCI", "Docker"] as const) {
  test(`${format} archive imports with digest`, async (t) => {
    const daemon = openDaemon(t);
    if (!daemon) {
      return;
    }
    const build = format === "OCI" ? ociArchive : dockerArchive;
    const archive = build({
      name: daemon.name(`${format.toLowerCase()}:1`),
      fileBytes: 6 * mib,
      seed: 11,
    });

    const result = await importArchive(daemon, archive);

    assert.deepEqual(result.images, [archive.name]);
    const listed = await listImages(daemon.client, {
      filters: [`name==${archive.name}`],
    });
    assert.equal(listed.length, 1);
    assert.equal(listed[0]!.target.digest, archive.manifestDigest);
    assert.equal(
      listed[0]!.target.mediaType,
      format === "OCI" ? ociManifestType : dockerManifestType,
    );
    assert.ok(listed[0]!.createdAt instanceof Date);
    assert.equal(
      await ctrImageDigest(daemon.env, archive.name),
      archive.manifestDigest,
    );
  });
}

test("export matches ctr export", async (t) => {
  const daemon = openDaemon(t);
  if (!daemon) {
    return;
  }
  const archive = ociArchive({
    name: daemon.name("compare:1"),
    fileBytes: 5 * mib,
    seed: 12,
  });
  await importArchive(daemon, archive);
  const dir = await mkdtemp(join(tmpdir(), "ct-images-"));
  t.after(() => rm(dir, { recursive: true, force: true }));

  const ours = tarFiles(await exportToMemory(daemon, [archive.name]));
  await ctr(
    daemon.env,
    "images",
    "export",
    "--local=false",
    join(dir, "transfer.tar"),
    archive.name,
  );
  await ctr(
    daemon.env,
    "images",
    "export",
    join(dir, "local.tar"),
    archive.name,
  );

  const expectedBlobs = [
    archive.configDigest,
    archive.layerDigest,
    archive.manifestDigest,
  ]
    .map((digest) => `blobs/sha256/${digest.slice("sha256:".length)}`)
    .sort();
  const blobNames = (files: Map<string, Buffer>) =>
    [...files.keys()].filter((name) => name.startsWith("blobs/")).sort();
  assert.deepEqual(blobNames(ours), expectedBlobs);
  for (const [name, body] of ours) {
    if (name.startsWith("blobs/sha256/")) {
      assert.equal(digestOf(body), `sha256:${name.slice(13)}`, name);
    }
  }

  for (const other of ["transfer.tar", "local.tar"]) {
    const theirs = tarFiles(await readFile(join(dir, other)));
    assert.deepEqual(blobNames(theirs), expectedBlobs, other);
    for (const name of expectedBlobs) {
      assert.ok(ours.get(name)!.equals(theirs.get(name)!), `${other} ${name}`);
    }
    assert.equal(
      ours.get("index.json")!.toString(),
      theirs.get("index.json")!.toString(),
      `${other} index.json`,
    );
    assert.equal(
      ours.get("manifest.json")!.toString(),
      theirs.get("manifest.json")!.toString(),
      `${other} manifest.json`,
    );
  }
});

test("export to a file reusing memory", async (t) => {
  // The file stream is done with each chunk once its write callback runs,
  // so the received memory is reused for later messages. Bytes written
  // from reused memory too early would break the blob digests.
  const daemon = openDaemon(t);
  if (!daemon) {
    return;
  }
  const archive = ociArchive({
    name: daemon.name("reuse:1"),
    fileBytes: 8 * mib,
    seed: 21,
  });
  await importArchive(daemon, archive);
  const dir = await mkdtemp(join(tmpdir(), "ct-images-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "export.tar");

  const result = await exportImage(
    daemon.client,
    [archive.name],
    createWriteStream(path),
    { reuseChunks: true },
  );

  const bytes = await readFile(path);
  assert.equal(result.bytes, bytes.length);
  const files = tarFiles(bytes);
  const layer = `blobs/sha256/${archive.layerDigest.slice("sha256:".length)}`;
  assert.ok(files.has(layer), "the layer is in the archive");
  for (const [name, body] of files) {
    if (name.startsWith("blobs/sha256/")) {
      assert.equal(digestOf(body), `sha256:${name.slice(13)}`, name);
    }
  }
});

test("tag then export new name", async (t) => {
  const daemon = openDaemon(t);
  if (!daemon) {
    return;
  }
  const archive = dockerArchive({
    name: daemon.name("tag-source:1"),
    fileBytes: 3 * mib,
    seed: 13,
  });
  await importArchive(daemon, archive);
  const targets = [daemon.name("tagged:1"), daemon.name("tagged:2")];
  daemon.cleanUp(...targets);

  await tagImage(daemon.client, archive.name, targets);

  for (const target of targets) {
    const image = await getImage(daemon.client, target);
    assert.equal(image.target.digest, archive.manifestDigest, target);
  }
  const files = tarFiles(await exportToMemory(daemon, [targets[1]!]));
  const index = JSON.parse(files.get("index.json")!.toString());
  assert.equal(index.manifests.length, 1);
  assert.equal(index.manifests[0].digest, archive.manifestDigest);
  assert.equal(
    index.manifests[0].annotations["io.containerd.image.name"],
    targets[1],
  );
  const manifestList = JSON.parse(files.get("manifest.json")!.toString());
  assert.deepEqual(manifestList[0].RepoTags, [targets[1]]);
});

test("re-import of export is idempotent", async (t) => {
  const daemon = openDaemon(t);
  if (!daemon) {
    return;
  }
  const archive = ociArchive({
    name: daemon.name("again:1"),
    fileBytes: 4 * mib,
    seed: 14,
  });
  await importArchive(daemon, archive);
  const before = await getImage(daemon.client, archive.name);
  const exported = await exportToMemory(daemon, [archive.name]);

  for (let round = 1; round <= 2; round++) {
    const result = await importImage(daemon.client, [exported]);
    assert.deepEqual(result.images, [archive.name], `round ${round}`);
  }

  const after = await getImage(daemon.client, archive.name);
  assert.equal(after.target.digest, before.target.digest);
  assert.equal(after.createdAt?.getTime(), before.createdAt?.getTime());
  const again = await exportToMemory(daemon, [archive.name]);
  assert.ok(again.equals(exported), "the second export differs");
  const ours = await listImages(daemon.client, {
    filters: [`name~=^${daemon.name("again")}`],
  });
  assert.deepEqual(
    ours.map((image) => image.name),
    [archive.name],
  );
});

test("progress events precede settling", async (t) => {
  const daemon = openDaemon(t);
  if (!daemon) {
    return;
  }
  const archive = ociArchive({
    name: daemon.name("progress:1"),
    fileBytes: 2 * mib,
    seed: 15,
  });
  daemon.cleanUp(archive.name);
  let settled = false;
  const late: string[] = [];
  const events: string[] = [];
  const onProgress = (event: { event: string; name: string }) => {
    (settled ? late : events).push(`${event.event} ${event.name}`.trim());
  };

  await importImage(daemon.client, [archive.bytes], { onProgress });
  settled = true;
  await new Promise((resolve) => setTimeout(resolve, 500));

  assert.deepEqual(events, [
    "Importing",
    `saved ${archive.name}`,
    "Completed import",
  ]);
  assert.deepEqual(late, []);

  settled = false;
  events.length = 0;
  const { sink } = memorySink();
  await exportImage(daemon.client, [archive.name], sink, { onProgress });
  settled = true;
  await new Promise((resolve) => setTimeout(resolve, 500));

  assert.deepEqual(events, ["Exporting", "Completed export"]);
  assert.deepEqual(late, []);
});
