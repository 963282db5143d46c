/**
 * Platforms in the `os/architecture/variant` form that containerd and
 * Docker use on the command line, such as `linux/arm64/v8`.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, TransferError } from "../errors/index.js";
import type { PlatformSchema } from "../gen/containerd/types/platform_pb.js";

/** A platform as containerd's Platform message. */
export type PlatformInit = MessageInitShape<typeof PlatformSchema>;

/** A platform given as text (`linux/amd64`) or as fields. */
export type PlatformSpec = string | PlatformInit;

// Node.js names for CPU architectures that Go (and so OCI) names otherwise.
const goArchitectures: Record<string, string> = {
  x64: "amd64",
  ia32: "386",
  arm: "arm",
  arm64: "arm64",
  ppc64: "ppc64le",
  s390x: "s390x",
  riscv64: "riscv64",
  loong64: "loong64",
  mips: "mips",
  mipsel: "mipsle",
};

/**
 * Returns the platform of this machine, which is containerd's default
 * when the client and the daemon share a host: for example
 * `{os: "linux", architecture: "amd64"}`, or `arm64` with variant `v8`.
 */
export function hostPlatform(): PlatformInit {
  const architecture = goArchitectures[process.arch] ?? process.arch;
  const os = process.platform === "win32" ? "windows" : process.platform;
  if (architecture === "arm64") {
    return { os, architecture, variant: "v8" };
  }
  if (architecture === "arm") {
    const version = (process.config.variables as { arm_version?: string })
      .arm_version;
    return { os, architecture, variant: `v${version ?? "7"}` };
  }
  return { os, architecture };
}

/**
 * Parses `os/architecture[/variant]`. Rejects other forms with
 * InvalidArgument; names are lower-cased as containerd does.
 */
export function parsePlatform(spec: PlatformSpec): PlatformInit {
  if (typeof spec !== "string") {
    return spec;
  }
  const parts = spec.toLowerCase().split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === "")) {
    throw new TransferError(
      `invalid platform "${spec}": use os/architecture or ` +
        "os/architecture/variant, such as linux/amd64 or linux/arm64/v8",
      Code.InvalidArgument,
    );
  }
  const [os, architecture, variant] = parts as [string, string, string?];
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** Formats a platform as `os/architecture[/variant]`. */
export function formatPlatform(platform: PlatformInit): string {
  return [platform.os, platform.architecture, platform.variant]
    .filter((part) => part)
    .join("/");
}
