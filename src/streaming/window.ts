/**
 * Flow-control facts of containerd's byte-stream protocol and the credit a
 * sender holds. The receiver grants credit with WindowUpdate messages; the
 * sender never sends more Data bytes than it was granted.
 */
import { Code, TransferError } from "../errors/index.js";

/** Largest Data payload containerd's Go senders emit (32 KiB). */
export const goMaxChunkBytes = 32 * 1024;
/** The window every containerd Go receiver grants at a time (64 KiB). */
export const goWindowBytes = 64 * 1024;
/**
 * The window that this package's receivers grant by default where the
 * sender may be one of ours (4 MiB). A sender of this package then sends
 * 1 MiB chunks with several in flight. A Go sender's 32 KiB chunks fill at
 * most 128 messages, within the 256 that a ttrpc stream of this package
 * buffers before its connection stops reading.
 */
export const largeWindowBytes = 4 * 1024 * 1024;
/**
 * Bounds of the Data payload that a sender of this package uses once a
 * receiver grants more than {@link goWindowBytes} in one update: a quarter
 * of the largest grant, between 256 KiB and 1 MiB.
 */
export const largeChunkMinBytes = 256 * 1024;
export const largeChunkMaxBytes = 1024 * 1024;

/**
 * Returns the largest Data payload for a sender whose receiver granted at
 * most `largestGrant` bytes in one update. A quarter of the grant keeps
 * four messages in flight per window.
 */
export function chunkBytesFor(largestGrant: number): number {
  if (largestGrant <= goWindowBytes) {
    return goMaxChunkBytes;
  }
  const quarter = Math.floor(largestGrant / 4);
  return Math.min(largeChunkMaxBytes, Math.max(largeChunkMinBytes, quarter));
}
/** WindowUpdate.update is an int32; credit can never exceed this. */
export const maxCredit = 2 ** 31 - 1;

/**
 * Checks one WindowUpdate value. Zero, negative and non-integer updates are
 * rejected, because a Go sender that trusted them would end with negative
 * credit.
 */
export function checkWindowUpdate(update: number): void {
  if (!Number.isInteger(update) || update <= 0 || update > maxCredit) {
    throw new TransferError(
      `invalid window update ${update}: it must be between 1 and ${maxCredit}`,
      Code.InvalidArgument,
    );
  }
}

/** Credit of a byte sender, with a wait for more. */
export class Credit {
  #available = 0;
  #granted = 0;
  #waiter?: { resolve: () => void; reject: (error: unknown) => void };
  #error?: unknown;

  /** Total bytes granted so far. */
  get granted(): number {
    return this.#granted;
  }

  /** Adds a checked grant. Credit beyond {@link maxCredit} is an error. */
  add(update: number): void {
    checkWindowUpdate(update);
    if (this.#available + update > maxCredit) {
      throw new TransferError(
        `window update ${update} overflows the credit of ` +
          `${this.#available} bytes: the maximum is ${maxCredit}`,
        Code.InvalidArgument,
      );
    }
    this.#available += update;
    this.#granted += update;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.resolve();
  }

  /**
   * Takes up to `max` bytes of credit, waiting while there is none.
   * Resolves with the number of bytes taken (at least 1).
   */
  async take(max: number): Promise<number> {
    while (this.#available === 0) {
      if (this.#error !== undefined) {
        throw this.#error;
      }
      await new Promise<void>((resolve, reject) => {
        this.#waiter = { resolve, reject };
      });
    }
    const taken = Math.min(max, this.#available);
    this.#available -= taken;
    return taken;
  }

  /** Fails the current and every later wait for credit. */
  fail(error: unknown): void {
    this.#error ??= error;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(this.#error);
  }
}
