#!/usr/bin/env node
/**
 * Entry of the containerd-transfer command: applies the heap settings,
 * then loads the command, so that the settings apply before its modules
 * are compiled and evaluated.
 */
import "./heap.js";

await import("./main.js");
