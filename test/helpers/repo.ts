import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Diagnostic } from "../../src/util/diagnostics.ts";

/** Files of a throwaway homelab repository: path → content (string or bytes). */
export type RepoFiles = Record<string, string | Uint8Array>;

/** A Dockerfile-bearing service skeleton most tests start from. */
export const BASE_FILES: RepoFiles = {
  "Pulumi.yaml": "name: homelab\nruntime: nodejs\n",
  "Pulumi.test.yaml": [
    "config:",
    "  homelab:tier1_hosts: [pve-01, pve-02]",
    "  homelab:hosts:",
    "    pve-03: { tags: [tier:2] }",
    "  homelab:registries:",
    "    local_registry: { url: 127.0.0.1:5000, insecure: true }",
    "",
  ].join("\n"),
};

/** Creates a temporary repository with the given files; returns its root and a cleanup. */
export function makeRepo(files: RepoFiles): { root: string; cleanup: () => void } {
  const root = mkdtempSync(join(tmpdir(), "homelab-test-"));
  for (const [path, content] of Object.entries({ ...BASE_FILES, ...files })) {
    const full = join(root, path);
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, content);
    if (path.endsWith(".secrets.yaml")) chmodSync(full, 0o600);
  }
  return { root, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

/** Finds the one diagnostic whose message contains `text`, failing with the full list otherwise. */
export function findDiag(ds: Diagnostic[], text: string): Diagnostic {
  const found = ds.filter((d) => d.message.includes(text));
  if (found.length !== 1) {
    throw new Error(`expected exactly one diagnostic containing ${JSON.stringify(text)}, got ${found.length}:\n${ds.map((d) => `  ${d.line}:${d.col} ${d.message}${d.hint ? ` (${d.hint})` : ""}`).join("\n")}`);
  }
  return found[0] as Diagnostic;
}

/** A valid minimal container resource, as YAML lines indented for a `resources:` list. */
export const CONTAINER = `  - id: web
    type: proxmox:container
    image:
      name: "*debian*"
      version: ">=12"
    host:
      tags: [tier:1]
`;
