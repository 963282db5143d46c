/**
 * Run settings shared by the fuzz tests. CI uses the fixed seed and the
 * small default run counts; `npm run fuzz` raises them through FUZZ_RUNS
 * (a multiplier) and FUZZ_SEED.
 */
import type { Parameters } from "fast-check";

const defaultSeed = 20_261_204;

function readPositiveInteger(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === "") {
    return fallback;
  }
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new Error(`invalid ${name}=${text}: use a positive integer`);
  }
  return value;
}

/** Multiplies every property's run count; 1 in CI. */
export const runScale = readPositiveInteger("FUZZ_RUNS", 1);

/** Seed of every property, so a failure repeats with the same inputs. */
export const seed = readPositiveInteger("FUZZ_SEED", defaultSeed);

/** fast-check parameters for a property that runs `ciRuns` times in CI. */
export function fuzzParameters<T>(ciRuns: number): Parameters<T> {
  return { seed, numRuns: ciRuns * runScale };
}

/**
 * Resolves with the promise's value, or rejects once `ms` passed, so that
 * a hang fails one run instead of stalling the whole test file.
 */
export async function withinMs<T>(
  promise: Promise<T>,
  ms: number,
  label: string,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${label} did not settle within ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
