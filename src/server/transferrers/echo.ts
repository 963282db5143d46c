import { PassThrough } from "node:stream";
import { receiveBytes, sendBytes } from "../../streaming/index.js";
import type { Transferrer } from "../transferrer.js";

/**
 * Sends the bytes of a ReadStream back on a WriteStream, whatever their
 * media type: a test aid, like containerd's import-to-export echo.
 */
export function echoTransferrer(): Transferrer {
  return {
    name: "echo",
    async transfer(source, destination, context) {
      if (source.type !== "ReadStream" || destination.type !== "WriteStream") {
        return false;
      }
      const pipe = new PassThrough();
      const receiving = receiveBytes(source.stream, pipe, {
        signal: context.signal,
      });
      const sending = sendBytes(destination.stream, pipe, {
        signal: context.signal,
      });
      receiving.catch((error) => pipe.destroy(error));
      sending.catch((error) => source.stream.abort(error));
      await Promise.all([receiving, sending]);
      return true;
    },
  };
}
