/**
 * Checks of the numeric options of the public API, so that a value such as
 * NaN fails at once with the option's name instead of deep in a transfer.
 */
import { Code, TransferError } from "../errors/index.js";
import { maxTimerMs } from "./timer.js";

/**
 * Returns `value`, or `fallback` when it is undefined, once it is an
 * integer from `min` to `max`. Throws InvalidArgument naming the option,
 * the value and the range otherwise.
 */
export function integerOption(
  name: string,
  value: number | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) {
    return fallback;
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new TransferError(
      `invalid option ${name}: ${value}. Use an integer from ${min} to ${max}`,
      Code.InvalidArgument,
    );
  }
  return value;
}

/**
 * Returns a delay in ms that feeds a Node.js timer, or `fallback` when it
 * is undefined. The delay must be an integer from `min` to the longest
 * delay that a Node.js timer takes (2147483647 ms), because a longer one
 * fires after 1 ms.
 */
export function timerOption(
  name: string,
  value: number | undefined,
  fallback: number,
  min = 1,
): number {
  return integerOption(name, value, fallback, min, maxTimerMs);
}
