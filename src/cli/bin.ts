#!/usr/bin/env node
/**
 * Entry of the containerd-transfer command: applies the heap settings,
 * then loads the command, so that the settings apply before its modules
 * are compiled and evaluated.
 */
import "./heap.js";

// The launcher in bin/ keeps NODE_EXTRA_CA_CERTS from this process's
// start-up and passes it here, for the processes that the command runs.
const extraCaCerts = process.env.CONTAINERD_TRANSFER_NODE_EXTRA_CA_CERTS;
if (extraCaCerts !== undefined) {
  process.env.NODE_EXTRA_CA_CERTS = extraCaCerts;
  delete process.env.CONTAINERD_TRANSFER_NODE_EXTRA_CA_CERTS;
}

await import("./main.js");
