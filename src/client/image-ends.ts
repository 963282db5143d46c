/**
 * The streaming ends of image imports and exports, adjusted to when
 * containerd 1.7 is done with them.
 */

import type {
  ByteSink,
  ByteSource,
  StreamCreator,
} from "../streaming/index.js";
import {
  type ImageExportOptions,
  ImageExportStream,
  type ImageImportOptions,
  ImageImportStream,
  type MarshalOptions,
} from "../transfer/index.js";

/**
 * An image archive to import that counts as sent once the Transfer call
 * succeeded. containerd stops reading at the tar end-of-archive marker,
 * so bytes after it (record padding, a compression trailer) may never be
 * read, and a sender that waited for credit for them would hang.
 */
export class ImageImportSource extends ImageImportStream {
  #returned = () => {};
  readonly #transferReturned = new Promise<void>((resolve) => {
    this.#returned = resolve;
  });

  constructor(source: ByteSource, options: ImageImportOptions = {}) {
    super(source, options);
  }

  override wait(): Promise<void> {
    return Promise.race([super.wait(), this.#transferReturned]);
  }

  override transferReturned(): void {
    super.transferReturned();
    this.#returned();
  }
}

/**
 * An image export whose idle timer starts only while the archive is still
 * incomplete. ImageExportStream starts it whenever the Transfer call
 * returns, and a timer started after the archive already arrived is never
 * cleared, which keeps the process alive for the whole timeout.
 */
export class ImageExportSink extends ImageExportStream {
  #received = false;

  constructor(sink: ByteSink, options: ImageExportOptions = {}) {
    super(sink, options);
  }

  override async marshalAny(
    creator: StreamCreator,
    options: MarshalOptions = {},
  ) {
    const any = await super.marshalAny(creator, options);
    this.wait().then(
      () => {
        this.#received = true;
      },
      () => {},
    );
    return any;
  }

  override transferReturned(): void {
    if (!this.#received) {
      super.transferReturned();
    }
  }
}
