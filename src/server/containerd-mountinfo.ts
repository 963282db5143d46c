/**
 * Reads the mount table of the server's mount namespace
 * (`/proc/self/mountinfo`, described in proc(5)) to find where a snapshot
 * is already mounted, such as the rootfs that containerd's runc shim
 * mounts for a task.
 */
import { readFile } from "node:fs/promises";
import type { Mount } from "../gen/containerd/types/mount_pb.js";

/** One line of `/proc/self/mountinfo`, with its octal escapes decoded. */
export interface MountInfo {
  mountId: number;
  /** Device of the mounted file system, as `st_dev` reports it. */
  device: bigint;
  /** Path inside the mounted file system that is mounted. */
  root: string;
  mountPoint: string;
  fsType: string;
  source: string;
  /** Per-superblock options, such as `upperdir=/path`. */
  superOptions: string[];
}

/** Reads and parses the mount table of this process's mount namespace. */
export async function readMountInfo(): Promise<MountInfo[]> {
  return parseMountInfo(await readFile("/proc/self/mountinfo", "utf8"));
}

/**
 * Parses mountinfo text. Lines that do not have the fields of proc(5)
 * are skipped.
 */
export function parseMountInfo(text: string): MountInfo[] {
  const entries: MountInfo[] = [];
  for (const line of text.split("\n")) {
    const fields = line.split(" ");
    // Optional fields (shared:N, master:N) run up to a lone "-".
    const separator = fields.indexOf("-", 6);
    if (separator < 0 || fields.length < separator + 4) {
      continue;
    }
    const [major, minor] = (fields[2] ?? "").split(":").map(Number);
    if (major === undefined || minor === undefined) {
      continue;
    }
    entries.push({
      mountId: Number(fields[0]),
      device: makeDevice(major, minor),
      root: unescapeOctal(fields[3] ?? ""),
      mountPoint: unescapeOctal(fields[4] ?? ""),
      fsType: unescapeOctal(fields[separator + 1] ?? ""),
      source: unescapeOctal(fields[separator + 2] ?? ""),
      superOptions: (fields[separator + 3] ?? "").split(",").map(unescapeOctal),
    });
  }
  return entries;
}

/**
 * Finds a mount of the same overlay snapshot as `mounts`: an overlay
 * mount with the same `upperdir`. Only a single writable overlay mount is
 * matched. For a second overlay on an upper directory in use, Linux logs
 * that accessing files from both mounts "will result in undefined
 * behavior", so the caller uses the mount found instead.
 */
export function findOverlayMount(
  table: readonly MountInfo[],
  mounts: readonly Mount[],
): MountInfo | undefined {
  const upperDir = overlayUpperDir(mounts);
  if (upperDir === undefined) {
    return undefined;
  }
  const option = `upperdir=${upperDir}`;
  return table.find(
    (entry) =>
      entry.fsType === "overlay" &&
      entry.root === "/" &&
      entry.superOptions.includes(option),
  );
}

/** Returns the `upperdir` of a single overlay mount, if that is all it is. */
export function overlayUpperDir(mounts: readonly Mount[]): string | undefined {
  const [mount] = mounts;
  if (mounts.length !== 1 || mount?.type !== "overlay") {
    return undefined;
  }
  const option = mount.options.find((o) => o.startsWith("upperdir="));
  return option?.slice("upperdir=".length);
}

/**
 * Encodes a device number like glibc's `makedev`, which is how Node.js
 * reports `st_dev`.
 */
export function makeDevice(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return (
    ((ma & 0xfffff000n) << 32n) |
    ((ma & 0xfffn) << 8n) |
    ((mi & 0xffffff00n) << 12n) |
    (mi & 0xffn)
  );
}

/** Decodes the `\ooo` escapes the kernel writes for space, tab, `\` etc. */
function unescapeOctal(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, code: string) =>
    String.fromCharCode(Number.parseInt(code, 8)),
  );
}
