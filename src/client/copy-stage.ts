/**
 * Safe local writes for a copy out. The archive is extracted into a
 * staging directory beside the destination, on the same file system, and
 * moved into place by rename only after the whole archive arrived and
 * the transfer succeeded. A failed or canceled copy removes the staging
 * directory and leaves the destination as it was.
 */
import type { Stats } from "node:fs";
import { mkdir, mkdtemp, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { fileKind } from "../archive/file-kind.js";
import { localError, lstatOrMissing } from "./copy-local.js";
import { checkReplace, type SourceSpec } from "./copy-rules.js";

/** Prefix of staging directories; they are hidden and removed after use. */
export const stagingPrefix = ".containerd-transfer-";

/**
 * Creates a staging directory inside `parent` and returns its path. The
 * caller removes it with {@link removeStaging}.
 */
export async function createStaging(
  parent: string,
  shownParent: string,
): Promise<string> {
  try {
    return await mkdtemp(join(parent, stagingPrefix));
  } catch (error) {
    throw localError(error, "write to", shownParent);
  }
}

/** Removes a staging directory and whatever is left in it. */
export async function removeStaging(staging: string): Promise<void> {
  await rm(staging, { recursive: true, force: true });
}

interface Move {
  from: string;
  to: string;
}

/**
 * Moves the staged copy `staged` to `target`. A missing target is
 * created by one rename. A directory onto an existing directory merges
 * into it; a non-directory replaces an existing non-directory. Every
 * type conflict is checked before the first rename, so that a rejected
 * copy changes nothing. Symlinks are moved as they are, never followed.
 */
export async function moveIntoPlace(
  staged: string,
  target: string,
  source: SourceSpec,
  shown: (path: string) => string,
): Promise<void> {
  const moves: Move[] = [];
  const stagedStats = await lstatOrMissing(staged);
  if (stagedStats === undefined) {
    return;
  }
  await planMove(staged, stagedStats, target, source, shown, moves);

  for (const move of moves) {
    await rename(move.from, move.to).catch((error) => {
      throw localError(error, "write", shown(move.to));
    });
  }
}

/**
 * Moves the content of the staged directory `staged` into the directory
 * `target`, creating `target` if it is missing.
 */
export async function moveContentsIntoPlace(
  staged: string,
  target: string,
  source: SourceSpec,
  shown: (path: string) => string,
): Promise<void> {
  const existing = await lstatOrMissing(target, shown(target));
  if (existing === undefined) {
    await mkdir(target).catch((error) => {
      throw localError(error, "create directory", shown(target));
    });
  } else if (!existing.isDirectory()) {
    checkReplace(source, fileKind(existing), shown(target));
  }

  const moves: Move[] = [];
  await planMerge(staged, target, source, shown, moves);
  for (const move of moves) {
    await rename(move.from, move.to).catch((error) => {
      throw localError(error, "write", shown(move.to));
    });
  }
}

async function planMove(
  staged: string,
  stagedStats: Stats,
  target: string,
  source: SourceSpec,
  shown: (path: string) => string,
  moves: Move[],
): Promise<void> {
  const existing = await lstatOrMissing(target, shown(target));
  if (existing === undefined) {
    moves.push({ from: staged, to: target });
    return;
  }

  const stagedIsDirectory = stagedStats.isDirectory();
  checkReplace(
    { ...source, isDirectory: stagedIsDirectory },
    fileKind(existing),
    shown(target),
  );
  if (stagedIsDirectory) {
    await planMerge(staged, target, source, shown, moves);
  } else {
    moves.push({ from: staged, to: target });
  }
}

async function planMerge(
  stagedDirectory: string,
  targetDirectory: string,
  source: SourceSpec,
  shown: (path: string) => string,
  moves: Move[],
): Promise<void> {
  const names = await readdir(stagedDirectory).catch((error) => {
    throw localError(error, "list", stagedDirectory);
  });
  names.sort();
  for (const name of names) {
    const staged = join(stagedDirectory, name);
    const stagedStats = await lstatOrMissing(staged);
    if (stagedStats !== undefined) {
      const target = join(targetDirectory, name);
      // Messages name the entry of the source that meets the target.
      const child = {
        ...source,
        display: `${source.display.replace(/\/\.?$|\/+$/, "")}/${name}`,
      };
      await planMove(staged, stagedStats, target, child, shown, moves);
    }
  }
}
