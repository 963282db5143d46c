/**
 * A unary call: one Request frame with flags 0, followed by one Response
 * frame.
 */
import {
  type DescMessage,
  type DescMethodUnary,
  fromBinary,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { ResponseSchema } from "../gen/ttrpc/request_pb.js";
import type { CallHandler, ClientConnection } from "./client-connection.js";
import { encodeRequest, type RequestEnvelope } from "./client-request.js";
import { type FrameHeader, MessageType } from "./frame.js";
import { oversizedError } from "./limits.js";
import { decodeError, errorFromStatus } from "./status.js";

/**
 * Sends `input` and resolves with the response message. Rejects with the
 * status of an error Response, with Unavailable when the connection drops,
 * and with the signal's reason when `signal` aborts. An aborted call stops
 * waiting at once; a Response that comes later is dropped.
 */
export function callUnary<I extends DescMessage, O extends DescMessage>(
  connection: ClientConnection,
  method: DescMethodUnary<I, O>,
  envelope: RequestEnvelope,
  input: MessageShape<I>,
  signal: AbortSignal,
): Promise<MessageShape<O>> {
  const request = encodeRequest(envelope, toBinary(method.input, input));
  signal.throwIfAborted();

  return new Promise((resolve, reject) => {
    let streamId = 0;
    const settle = (error: unknown, output?: MessageShape<O>) => {
      connection.forget(streamId);
      signal.removeEventListener("abort", onAbort);
      if (output) {
        resolve(output);
      } else {
        reject(error);
      }
    };
    const onAbort = () => settle(signal.reason);

    const call: CallHandler = {
      onFrame(header: FrameHeader, data: Buffer) {
        // A Data frame on a unary call is a peer error; only the
        // Response ends the call.
        if (header.type !== MessageType.Response) {
          return;
        }
        const result = decodeResponse(method.output, data);
        if (result instanceof ConnectError) {
          settle(result);
        } else {
          settle(undefined, result);
        }
      },
      onOversized(header: FrameHeader) {
        settle(
          oversizedError(
            header.streamId,
            header.length,
            envelope.maxMessageBytes,
          ),
        );
      },
      onClose(error: ConnectError) {
        settle(error);
      },
    };

    signal.addEventListener("abort", onAbort, { once: true });
    try {
      streamId = connection.open(call, 0, request);
    } catch (error) {
      settle(error);
    }
  });
}

function decodeResponse<O extends DescMessage>(
  output: O,
  data: Buffer,
): MessageShape<O> | ConnectError {
  try {
    const response = fromBinary(ResponseSchema, data);
    if (response.status && response.status.code !== 0) {
      return errorFromStatus(response.status);
    }
    return fromBinary(output, response.payload);
  } catch (error) {
    return decodeError("ttrpc response", error);
  }
}
