/**
 * Docker config lookups on temporary config files and credential helper
 * scripts: no containerd involved.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  dockerConfigPath,
  fixedCredentials,
  getHelperCredentials,
  lookUpDockerCredentials,
} from "../../src/client/index.js";
import { TransferError } from "../../src/errors/index.js";

interface Workspace {
  dir: string;
  env: NodeJS.ProcessEnv;
  /** Writes config.json with `config` as JSON (or as text if a string). */
  writeConfig(config: unknown): Promise<void>;
  /** Writes `docker-credential-NAME` running `script` (POSIX sh). */
  writeHelper(name: string, script: string): Promise<void>;
}

async function workspace(t: TestContext): Promise<Workspace> {
  const dir = await mkdtemp(join(tmpdir(), "ctt-creds-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const env = {
    PATH: `${dir}:${process.env.PATH ?? "/usr/bin:/bin"}`,
    DOCKER_CONFIG: dir,
  };
  return {
    dir,
    env,
    async writeConfig(config) {
      const text = typeof config === "string" ? config : JSON.stringify(config);
      await writeFile(join(dir, "config.json"), text);
    },
    async writeHelper(name, script) {
      const path = join(dir, `docker-credential-${name}`);
      await writeFile(path, `#!/bin/sh\n${script}\n`);
      await chmod(path, 0o755);
    },
  };
}

const clientModule = fileURLToPath(
  new URL("../../src/client/index.js", import.meta.url),
);

const basic = (user: string, password: string) =>
  Buffer.from(`${user}:${password}`).toString("base64");

test("auths entry by bare host", async (t) => {
  const w = await workspace(t);
  await w.writeConfig({
    auths: { "127.0.0.1:5000": { auth: basic("alice", "pa:ss") } },
  });

  const found = await lookUpDockerCredentials("127.0.0.1:5000", { env: w.env });

  assert.deepEqual(found, { username: "alice", secret: "pa:ss" });
});

test("auths keys with scheme and path", async (t) => {
  const w = await workspace(t);
  await w.writeConfig({
    auths: {
      "https://registry.example.test": { auth: basic("bob", "one") },
      "http://other.example.test:8443/v2/": {
        username: "carol",
        password: "two",
      },
    },
  });

  const first = await lookUpDockerCredentials("registry.example.test", {
    env: w.env,
  });
  const second = await lookUpDockerCredentials("other.example.test:8443", {
    env: w.env,
  });
  const none = await lookUpDockerCredentials("other.example.test", {
    env: w.env,
  });

  assert.deepEqual(first, { username: "bob", secret: "one" });
  assert.deepEqual(second, { username: "carol", secret: "two" });
  assert.equal(none, undefined);
});

test("identity token becomes refresh token", async (t) => {
  const w = await workspace(t);
  await w.writeConfig({
    auths: {
      "r.example.test": { auth: basic("dave", "x"), identitytoken: "tok-1" },
    },
  });

  const found = await lookUpDockerCredentials("r.example.test", {
    env: w.env,
  });

  assert.deepEqual(found, { refreshToken: "tok-1" });
});

test("Docker Hub key matches hub hosts", async (t) => {
  const w = await workspace(t);
  await w.writeConfig({
    auths: { "https://index.docker.io/v1/": { auth: basic("eve", "hub") } },
  });

  for (const host of ["docker.io", "registry-1.docker.io", "index.docker.io"]) {
    const found = await lookUpDockerCredentials(host, { env: w.env });
    assert.deepEqual(found, { username: "eve", secret: "hub" }, host);
  }
});

test("credHelpers runs the host's helper", async (t) => {
  const w = await workspace(t);
  const input = join(w.dir, "helper-input");
  await w.writeHelper(
    "ctt",
    `[ "$1" = get ] || exit 3\ncat > '${input}'\n` +
      `echo '{"ServerURL":"x","Username":"frank","Secret":"from-helper"}'`,
  );
  await w.writeConfig({
    auths: { "h.example.test": { auth: basic("inline", "ignored") } },
    credHelpers: { "h.example.test": "ctt" },
  });

  const found = await lookUpDockerCredentials("h.example.test", {
    env: w.env,
  });

  assert.deepEqual(found, { username: "frank", secret: "from-helper" });
  assert.equal(await readFile(input, "utf8"), "h.example.test");
});

test("credsStore gets Docker Hub's URL", async (t) => {
  const w = await workspace(t);
  const input = join(w.dir, "helper-input");
  await w.writeHelper(
    "store",
    `cat > '${input}'\necho '{"Username":"<token>","Secret":"id-token"}'`,
  );
  await w.writeConfig({ credsStore: "store" });

  const found = await lookUpDockerCredentials("registry-1.docker.io", {
    env: w.env,
  });

  assert.deepEqual(found, { refreshToken: "id-token" });
  assert.equal(await readFile(input, "utf8"), "https://index.docker.io/v1/");
});

test("helper not found falls back", async (t) => {
  const w = await workspace(t);
  await w.writeHelper(
    "empty",
    "cat >/dev/null\necho 'credentials not found in native keychain'\nexit 1",
  );
  await w.writeConfig({
    credsStore: "empty",
    auths: { "f.example.test": { auth: basic("gina", "inline") } },
  });

  const inline = await lookUpDockerCredentials("f.example.test", {
    env: w.env,
  });
  const none = await lookUpDockerCredentials("g.example.test", {
    env: w.env,
  });

  assert.deepEqual(inline, { username: "gina", secret: "inline" });
  assert.equal(none, undefined);
});

test("failing helper rejects with output", async (t) => {
  const w = await workspace(t);
  await w.writeHelper(
    "broken",
    "cat >/dev/null\necho 'keychain locked' >&2\nexit 2",
  );
  await w.writeConfig({ credHelpers: { "b.example.test": "broken" } });

  const lookup = lookUpDockerCredentials("b.example.test", { env: w.env });

  await assert.rejects(lookup, (error: unknown) => {
    assert.ok(error instanceof TransferError);
    assert.match(error.rawMessage, /docker-credential-broken/);
    assert.match(error.rawMessage, /exit code 2/);
    assert.match(error.rawMessage, /keychain locked/);
    return true;
  });
});

test("hanging helper times out", async (t) => {
  const w = await workspace(t);
  await w.writeHelper("slow", "exec sleep 30");
  const started = Date.now();

  const lookup = getHelperCredentials("slow", "s.example.test", {
    env: w.env,
    timeoutMs: 300,
  });

  await assert.rejects(lookup, (error: unknown) => {
    assert.ok(error instanceof TransferError);
    assert.equal(error.kind, "deadline exceeded");
    return true;
  });
  assert.ok(Date.now() - started < 5000, "the helper was not killed in time");
});

test("missing helper names the program", async (t) => {
  const w = await workspace(t);

  const lookup = getHelperCredentials("ctt-absent", "a.example.test", {
    env: w.env,
  });

  await assert.rejects(lookup, /docker-credential-ctt-absent not found/);
});

test("missing config file finds nothing", async (t) => {
  const w = await workspace(t);

  const found = await lookUpDockerCredentials("m.example.test", {
    env: w.env,
  });

  assert.equal(found, undefined);
});

test("invalid config file is rejected", async (t) => {
  const w = await workspace(t);
  await w.writeConfig("{ not json");

  const lookup = lookUpDockerCredentials("i.example.test", { env: w.env });

  await assert.rejects(lookup, (error: unknown) => {
    assert.ok(error instanceof TransferError);
    assert.equal(error.kind, "invalid argument");
    assert.ok(error.rawMessage.includes(join(w.dir, "config.json")));
    return true;
  });
});

test("FIFO config file is rejected", async () => {
  const dir = await mkdtemp("/tmp/fifofix-creds-");
  try {
    await promisify(execFile)("mkfifo", [join(dir, "config.json")]);
    // The lookup runs in a child, which SIGKILL ends if it waits on the FIFO.
    const lookup = `
      const { lookUpDockerCredentials } = await import(${JSON.stringify(clientModule)});
      await lookUpDockerCredentials("f.example.test", {
        configDir: ${JSON.stringify(dir)},
      }).then(
        () => process.exit(0),
        (error) => {
          process.stderr.write(error.message);
          process.exit(3);
        },
      );`;
    const result = await new Promise<{ code: unknown; stderr: string }>(
      (resolve) =>
        execFile(
          process.execPath,
          ["--input-type=module", "-e", lookup],
          { timeout: 10_000, killSignal: "SIGKILL" },
          (error, _stdout, stderr) =>
            resolve({ code: error === null ? 0 : error.code, stderr }),
        ),
    );

    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /config\.json: it is not a regular file/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("config path follows DOCKER_CONFIG", () => {
  assert.equal(
    dockerConfigPath({ env: { DOCKER_CONFIG: "/tmp/ctt-docker" } }),
    "/tmp/ctt-docker/config.json",
  );
  assert.equal(
    dockerConfigPath({ configDir: "/x", env: { DOCKER_CONFIG: "/y" } }),
    "/x/config.json",
  );
});

test("fixed credentials only for host", async () => {
  const credentials = { username: "u", secret: "p" };
  const callback = fixedCredentials(credentials, "docker.io");
  const signal = new AbortController().signal;

  const hub = await callback(
    { host: "registry-1.docker.io", reference: "docker.io/library/x:1" },
    signal,
  );
  const other = await callback(
    { host: "evil.example.test", reference: "docker.io/library/x:1" },
    signal,
  );

  assert.deepEqual(hub, credentials);
  assert.equal(other, undefined);
});
