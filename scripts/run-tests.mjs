#!/usr/bin/env node
// Runs every compiled test file under dist/test with node's test runner.
// Arguments are substrings that select test files, for example
// `npm test -- ttrpc` runs the files whose path contains "ttrpc".
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";

function findTests(dir) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      found.push(...findTests(path));
    } else if (entry.name.endsWith(".test.js")) {
      found.push(path);
    }
  }
  return found;
}

const filters = process.argv.slice(2);
const files = findTests("dist/test")
  .filter(
    (file) => filters.length === 0 || filters.some((f) => file.includes(f)),
  )
  .sort();
if (files.length === 0) {
  console.error(`run-tests: no test file matches ${filters.join(", ")}`);
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  ["--test", "--test-timeout=900000", ...files],
  { stdio: "inherit" },
);
process.exit(result.status ?? 1);
