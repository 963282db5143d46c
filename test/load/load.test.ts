/**
 * A reduced run of `npm run load` against an in-process server: many
 * concurrent copy in, copy out and echo transfers on one and on several
 * connections. The test checks correctness only (checksums, every
 * transfer settled, the stream registry drained, no listener warnings),
 * never timing.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  directions,
  type LoadPhase,
  payloadSizes,
  runPhase,
} from "../../bench/load-workload.js";
import { protocols, startEndpoint } from "../helpers/endpoint.js";

const phases: LoadPhase[] = [
  { name: "one-connection", connections: 1, transfersPerConnection: 30 },
  { name: "four-connections", connections: 4, transfersPerConnection: 6 },
];

/** Resolves once `check` returns true, or rejects after `ms`. */
async function waitUntil(check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error(`condition not met within ${ms} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

for (const protocol of protocols) {
  describe(`load over ${protocol}`, () => {
    for (const phase of phases) {
      test(`${phase.name} transfers verify`, async (t) => {
        const warnings: string[] = [];
        const onWarning = (warning: Error) => {
          warnings.push(`${warning.name}: ${warning.message}`);
        };
        process.on("warning", onWarning);
        t.after(() => process.off("warning", onWarning));
        const endpoint = await startEndpoint(t, protocol);

        const result = await runPhase(phase, {
          address: endpoint.socket,
          protocol,
          root: endpoint.root,
          sizes: payloadSizes(256 * 1024),
          transferTimeoutMs: 30_000,
        });

        const expectedCount = phase.connections * phase.transfersPerConnection;
        assert.equal(result.outcomes.length, expectedCount);
        for (const outcome of result.outcomes) {
          assert.equal(
            outcome.failure,
            undefined,
            `${outcome.id} (${outcome.direction}, ${outcome.bytes} B)`,
          );
        }
        for (const direction of directions) {
          assert.ok(
            result.outcomes.some((outcome) => outcome.direction === direction),
            `no ${direction} transfer ran`,
          );
        }
        await waitUntil(() => endpoint.server.registry.size === 0, 5000);
        assert.equal(endpoint.server.registry.size, 0);
        assert.deepEqual(
          warnings.filter((warning) => warning.includes("MaxListeners")),
          [],
        );
      });
    }
  });
}
