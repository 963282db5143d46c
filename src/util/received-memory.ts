/**
 * Reuse of the memory of received messages. A transport lends the buffer
 * of a large received message, the code that uses views of it holds it,
 * and the transport reuses the buffer once every holder has released it.
 * A lent buffer that is never released is left to the garbage collector,
 * so a consumer that does not take part only costs an allocation.
 *
 * Every release must match the lend or one hold. A release too many
 * would let the transport overwrite bytes that something still reads.
 */

interface Loan {
  holders: number;
  reuse: () => void;
}

const loans = new WeakMap<ArrayBufferLike, Loan>();

/**
 * Lends `memory`, which must be the only view a transport handed out of its
 * ArrayBuffer, with one holder: the receiver of the message. `reuse` runs
 * when the last holder releases it.
 */
export function lendReceivedMemory(
  memory: Uint8Array,
  reuse: () => void,
): void {
  loans.set(memory.buffer, { holders: 1, reuse });
}

/**
 * Adds a holder to the lent memory behind `view`, and does nothing for
 * other memory. Throws if the memory was released already, because its
 * bytes may have been overwritten: that is a bug of the caller.
 */
export function holdReceivedMemory(view: Uint8Array): void {
  const loan = loans.get(view.buffer);
  if (loan === undefined) {
    return;
  }
  if (loan.holders === 0) {
    throw new Error(
      "internal error: received memory was held after its last release",
    );
  }
  loan.holders++;
}

/**
 * Removes a holder from the lent memory behind `view`. The last release
 * hands the memory back to its transport. Does nothing for other memory.
 */
export function releaseReceivedMemory(view: Uint8Array): void {
  const loan = loans.get(view.buffer);
  if (loan === undefined || loan.holders === 0) {
    return;
  }
  loan.holders--;
  if (loan.holders === 0) {
    loan.reuse();
  }
}

/** Smallest received message whose buffer is lent for reuse, in bytes. */
const minLentBytes = 64 * 1024;

/**
 * Bytes of released buffers kept for reuse in the process: room for a
 * 4 MiB window of 1 MiB messages and the pieces an extractor still writes.
 */
const maxFreeBytes = 8 * 1024 * 1024;

/** Released buffers, shared by every connection and call. */
const freeBuffers: Buffer[] = [];
let freeBytes = 0;

/**
 * Returns a buffer of `length` bytes into which a transport copies a
 * message that arrived in pieces. A buffer of 64 KiB or more is lent
 * (see {@link lendReceivedMemory}) and taken again for a later message,
 * of any connection, once its holders have released it.
 *
 * The buffers are shared by the process rather than kept per connection,
 * so a closed connection leaves none behind for the garbage collector. A
 * server copied in an 88 MiB file three times, then 20 000 small files
 * three times. It peaked at 101 MB with a set per connection and at
 * 85 MB with the shared one.
 */
export function takeReceivedBuffer(length: number): Buffer {
  if (length < minLentBytes) {
    return Buffer.allocUnsafe(length);
  }
  const index = freeBuffers.findIndex((buffer) => buffer.length >= length);
  let buffer: Buffer;
  if (index === -1) {
    buffer = Buffer.allocUnsafeSlow(length);
  } else {
    buffer = freeBuffers.splice(index, 1)[0]!;
    freeBytes -= buffer.length;
  }
  const message = buffer.subarray(0, length);
  lendReceivedMemory(message, () => {
    if (freeBytes + buffer.length <= maxFreeBytes) {
      freeBuffers.push(buffer);
      freeBytes += buffer.length;
    }
  });
  return message;
}
