/**
 * The Transfer service: decodes both ends, claims their streams, and hands
 * the pair to the first transferrer that handles it.
 */
import { performance } from "node:perf_hooks";
import { packAny } from "../any/index.js";
import { Code, TransferError, toConnectError } from "../errors/index.js";
import type { Transfer } from "../gen/containerd/services/transfer/v1/transfer_pb.js";
import { ProgressSchema } from "../gen/containerd/types/transfer/progress_pb.js";
import type { Stream, StreamRegistry } from "../streaming/index.js";
import { warningEvent } from "../transfer/index.js";
import { namespaceOf, type ServiceImpl } from "../transport/index.js";
import type { Logger } from "./logger.js";
import {
  decodeEnd,
  describeEnd,
  streamsOf,
  type TransferEnd,
} from "./transfer-ends.js";
import type { TransferContext, Transferrer } from "./transferrer.js";

export interface TransferServiceOptions {
  registry: StreamRegistry;
  transferrers: Transferrer[];
  log: Logger;
}

export function createTransferService(
  options: TransferServiceOptions,
): ServiceImpl<typeof Transfer> {
  const { registry, transferrers, log } = options;

  return {
    async transfer(request, handlerContext) {
      const started = performance.now();
      const namespace = namespaceOf(handlerContext.requestHeader) ?? "";
      const ends: TransferEnd[] = [];
      let progress: Stream | undefined;
      // A stream takes one message at a time, so events are sent in turn.
      let progressSent: Promise<void> = Promise.resolve();
      let queuedEvents = 0;
      let droppedEvents = 0;

      try {
        const progressId = request.options?.progressStream ?? "";
        if (progressId !== "") {
          progress = registry.claim(namespace, progressId);
        }
        const source = decodeEnd(request.source, "source", registry, namespace);
        ends.push(source);
        const destination = decodeEnd(
          request.destination,
          "destination",
          registry,
          namespace,
        );
        ends.push(destination);

        const context: TransferContext = {
          namespace,
          signal: handlerContext.signal,
          log,
          progress: (event) => {
            // A client that does not read its progress stream must not
            // make the server queue an event per entry without end.
            if (progress === undefined || queuedEvents >= maxQueuedEvents) {
              droppedEvents += progress === undefined ? 0 : 1;
              return Promise.resolve();
            }
            queuedEvents++;
            const sending = progressSent.then(() =>
              progress?.send(packAny(ProgressSchema, event)),
            );
            progressSent = sending
              .catch(() => {})
              .finally(() => {
                queuedEvents--;
              });
            return sending;
          },
        };
        for (const transferrer of transferrers) {
          if (await transferrer.transfer(source, destination, context)) {
            log.info("transfer done", {
              namespace,
              transferrer: transferrer.name,
              source: describeEnd(source),
              destination: describeEnd(destination),
              ms: Math.round(performance.now() - started),
            });
            return {};
          }
        }
        throw new TransferError(
          `method Transfer not implemented for ${typeUrlOf(source)} to ` +
            `${typeUrlOf(destination)}`,
          Code.Unimplemented,
        );
      } catch (error) {
        const failure = TransferError.from(error);
        const fields = {
          namespace,
          ends: ends.map(describeEnd),
          code: failure.kind,
          error: failure.rawMessage,
        };
        // A client may stop reading on purpose, as stat does after the first
        // header, or a user may press Ctrl-C. That is no server fault, and
        // neither is a missing path, which a copy stats to plan its target,
        // nor a request that the server rejects.
        if (failure.code === Code.Canceled) {
          log.info("transfer canceled", fields);
        } else if (failure.code === Code.NotFound) {
          log.info("transfer failed", fields);
        } else if (requestCodes.has(failure.code)) {
          log.warn("transfer failed", fields);
        } else {
          log.error("transfer failed", fields);
        }
        for (const stream of ends.flatMap(streamsOf)) {
          stream.abort(failure);
        }
        throw toConnectError(failure);
      } finally {
        // Every event is sent before the transfer's response.
        await progressSent;
        if (droppedEvents > 0) {
          log.warn("progress events dropped: the client read them too slowly", {
            namespace,
            dropped: droppedEvents,
          });
          await progress
            ?.send(
              packAny(ProgressSchema, {
                event: warningEvent,
                parents: [
                  "warnings-dropped",
                  `${droppedEvents} more warnings were left out, because ` +
                    "they came faster than the client read them",
                ],
              }),
            )
            .catch(() => {});
        }
        await progress?.closeSend();
        for (const stream of ends.flatMap(streamsOf)) {
          stream.abort();
        }
      }
    },
  };
}

/**
 * Progress events, about 1 KB each, that one transfer queues for a client
 * that reads them slower than the server makes them. Later events are
 * dropped, and one warning at the end gives their number.
 */
const maxQueuedEvents = 10_000;

/** Codes of a failure that the request caused rather than the server. */
const requestCodes = new Set([
  Code.InvalidArgument,
  Code.FailedPrecondition,
  Code.AlreadyExists,
  Code.OutOfRange,
  Code.Unimplemented,
  // The server reports DataLoss only for an archive from the client that
  // ends early. Over ttrpc, which has no cancel frame, that is also how a
  // client's cancelled copy in arrives.
  Code.DataLoss,
]);

function typeUrlOf(end: TransferEnd): string {
  return end.type === "other"
    ? end.typeUrl
    : `containerd.types.transfer.${end.type}`;
}
