/**
 * The published type declarations as a dependent project compiles them:
 * strict, NodeNext, and without `skipLibCheck`, so that every declaration
 * file the package's entry reaches is checked, those of its
 * dependencies included.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const packageRoot = fileURLToPath(new URL("../../../", import.meta.url));

test("declarations compile without skipLibCheck", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "ct-types-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const entry = join(packageRoot, "dist", "src", "index.js");
  await writeFile(
    join(dir, "use.ts"),
    `import { connect, copyIntoContainer, exportImage } from ${JSON.stringify(entry)};\n` +
      'const client = connect({ address: "/run/ct.sock", protocol: "ttrpc" });\n' +
      'void copyIntoContainer(client, "./site", { containerId: "web", path: "/srv" });\n' +
      "void exportImage;\n",
  );
  await writeFile(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        module: "nodenext",
        moduleResolution: "nodenext",
        target: "es2022",
        noEmit: true,
        skipLibCheck: false,
        types: ["node"],
        typeRoots: [join(packageRoot, "node_modules", "@types")],
      },
      files: ["use.ts"],
    }),
  );

  const tsc = join(packageRoot, "node_modules", ".bin", "tsc");
  const result = await promisify(execFile)(tsc, ["-p", dir]).then(
    () => "",
    (error: { stdout?: string }) => error.stdout ?? String(error),
  );

  assert.equal(result, "");
});
