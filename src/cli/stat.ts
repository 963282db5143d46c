import type { Command } from "commander";
import {
  type Client,
  type ContainerPathStat,
  statContainerPath,
} from "../client/index.js";
import { parseCopyEnd } from "./copy-args.js";
import { printable } from "./format.js";
import { usageError } from "./usage.js";

export interface StatFlags {
  json?: boolean;
  followLink?: boolean;
}

/**
 * Registers `stat CONTAINER:PATH`. `connect` opens the client from the
 * global options when the command runs.
 */
export function addStatCommand(
  program: Command,
  connect: () => Client,
  signal: AbortSignal,
): void {
  program
    .command("stat")
    .description(
      "print the type, size, mode, owner, modification time and link " +
        "target of a container path",
    )
    .argument("<path>", "CONTAINER:PATH")
    .option("--json", "print one JSON object")
    .option("-L, --follow-link", "follow a symbolic link at the end of PATH")
    .action(async (argument: string, flags: StatFlags) => {
      const client = connect();
      try {
        process.stdout.write(await runStat(client, argument, flags, signal));
      } finally {
        await client.close();
      }
    });
}

/** Stats `CONTAINER:PATH` and returns the text to print. */
export async function runStat(
  client: Client,
  argument: string,
  flags: StatFlags,
  signal: AbortSignal,
): Promise<string> {
  const end = parseCopyEnd(argument, "stat");
  if (end.kind !== "container") {
    throw usageError(
      `invalid stat argument "${argument}": name a container path as ` +
        "CONTAINER:PATH",
    );
  }
  const stat = await statContainerPath(
    client,
    { containerId: end.containerId, path: end.path },
    { signal, followLink: flags.followLink },
  );
  if (flags.json) {
    return `${JSON.stringify({ ...stat, mtime: stat.mtime.toISOString() })}\n`;
  }
  return formatStat(argument, stat);
}

/** Formats a stat as `field: value` lines, like stat(1). */
export function formatStat(argument: string, stat: ContainerPathStat): string {
  const lines = [
    ["path", argument],
    ["name", stat.name],
    ["type", stat.type],
    ["size", String(stat.size)],
    ["mode", `${modeString(stat)} (${stat.mode.toString(8).padStart(4, "0")})`],
    ["owner", `${stat.uid}:${stat.gid}`],
    ["modified", stat.mtime.toISOString()],
  ];
  if (stat.type === "symlink") {
    lines.push(["link target", stat.linkTarget]);
  }
  return lines
    .map(([field, value]) => `${field}: ${printable(value!)}\n`)
    .join("");
}

const typeLetters: Record<ContainerPathStat["type"], string> = {
  file: "-",
  directory: "d",
  symlink: "l",
  hardlink: "h",
  "char-device": "c",
  "block-device": "b",
  fifo: "p",
  other: "?",
};

/** Formats permission bits like `ls -l`: `drwxr-sr-t`. */
function modeString(stat: ContainerPathStat): string {
  const bits = "rwxrwxrwx"
    .split("")
    .map((letter, i) => (stat.mode & (0o400 >> i) ? letter : "-"));
  const special = (index: number, flag: number, letter: string) => {
    const set = bits[index] !== "-";
    if (stat.mode & flag) {
      bits[index] = set ? letter : letter.toUpperCase();
    }
  };
  special(2, 0o4000, "s");
  special(5, 0o2000, "s");
  special(8, 0o1000, "t");
  return `${typeLetters[stat.type]}${bits.join("")}`;
}
