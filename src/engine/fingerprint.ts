/**
 * A fingerprint of the code that decides what a deploy does to a resource:
 * the tool's version, the pinned Pulumi CLI, and the provider plugin's
 * sources (with the Proxmox client it uses). Each stack records it; a stack
 * whose inputs and fingerprint are unchanged needs no engine run to know it
 * has nothing to do (see unchanged.ts).
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { TOOL_ROOT } from "./settings.ts";

let cached: string | undefined;

/** The fingerprint of the installed tool and provider (computed once per process). */
export function toolFingerprint(root: string = TOOL_ROOT): string {
  if (cached !== undefined && root === TOOL_ROOT) return cached;
  const hash = createHash("sha256");
  for (const file of ["package.json", "scripts/pulumi-version"]) hash.update(read(path.join(root, file)));
  for (const dir of ["src/provider", "src/proxmox", "src/plan/types.ts"]) {
    for (const file of listFiles(path.join(root, dir))) {
      hash.update(path.relative(root, file));
      hash.update(read(file));
    }
  }
  const out = hash.digest("hex").slice(0, 16);
  if (root === TOOL_ROOT) cached = out;
  return out;
}

function read(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch {
    // A missing file (a trimmed install) is part of what the fingerprint says.
    return Buffer.from(`missing ${file}`);
  }
}

function listFiles(p: string): string[] {
  try {
    return readdirSync(p, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith(".ts"))
      .map((e) => path.join(e.parentPath, e.name))
      .sort();
  } catch {
    return [p];
  }
}
