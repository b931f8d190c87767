import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { toolFingerprint } from "../../src/engine/fingerprint.ts";
import type { ResourceSpec } from "../../src/engine/program.ts";
import { parseDeployment } from "../../src/engine/state.ts";
import { whyChanged } from "../../src/engine/unchanged.ts";
import { containerInputs } from "./plans.ts";
import type { ContainerInputs } from "../../src/plan/types.ts";

const T = "homelab:proxmox:Container" as const;
const inputs: ContainerInputs = containerInputs({ description: "d", tags: ["homelab", "alpha"], sshPublicKeys: "k" });

type ContainerSpec = Extract<ResourceSpec, { type: typeof T }>;
const spec = (o: Partial<ContainerSpec> = {}): ContainerSpec => ({ id: "web", type: T, inputs, protect: false, dependsOn: [], crossDependsOn: [], ...o });

/** A stack state as the provider's check stored it: tags normalised, an optional input absent. */
function state(o: { fingerprint?: string; protect?: boolean; stored?: Record<string, unknown>; pending?: boolean; extra?: boolean } = {}) {
  const stored = { ...inputs, tags: ["alpha", "homelab"], ...o.stored };
  return parseDeployment({
    resources: [
      { urn: "urn:pulumi:s::homelab::pulumi:pulumi:Stack::homelab-s", type: "pulumi:pulumi:Stack", outputs: { homelab: { fingerprint: o.fingerprint ?? "fp1" } } },
      { urn: `urn:pulumi:s::homelab::${T}::web`, type: T, id: "100", protect: o.protect ?? false, inputs: stored, outputs: { ...stored, vmid: 100 } },
      ...(o.extra ? [{ urn: `urn:pulumi:s::homelab::${T}::old`, type: T, id: "101", inputs: stored }] : []),
    ],
    ...(o.pending ? { pending_operations: [{ resource: { urn: `urn:pulumi:s::homelab::${T}::x`, type: T }, type: "creating" }] } : {}),
  });
}

const check = (s: ReturnType<typeof state> | undefined, specs: ResourceSpec[] = [spec()], deployed: Record<string, string[]> = {}) =>
  whyChanged({ state: s, specs, fingerprint: "fp1", deployedIn: (svc) => (deployed[svc] ? new Set(deployed[svc]) : undefined) });

void describe("unchanged without an engine run", () => {
  void it("holds when the stack records exactly the planned inputs (tags as Proxmox normalises them) and the same code", () => {
    assert.equal(check(state()), undefined);
  });

  void it("does not hold for any difference a preview could act on", () => {
    assert.equal(check(undefined), "never deployed");
    assert.equal(check(state({ fingerprint: "fp0" })), "deployed by another version");
    assert.equal(check(state({ pending: true })), "operations pending");
    assert.equal(check(state({ protect: true })), "web: protect changed");
    assert.equal(check(state({ stored: { memory: 1024 } })), "web: inputs changed");
    assert.equal(check(state({ stored: { gateway: "10.0.0.1" } })), "web: inputs changed");
    assert.equal(check(state({ extra: true })), "resources added or removed");
    assert.equal(check(state(), [spec({ id: "other" })]), "other is new");
    assert.equal(check(state(), [spec(), spec({ id: "two" })]), "resources added or removed");
  });

  void it("requires the resources it depends on in other services to be deployed still", () => {
    const s = [spec({ crossDependsOn: [{ service: "data", id: "db" }] })];
    assert.equal(check(state(), s, { data: ["db"] }), undefined);
    assert.equal(check(state(), s, { data: [] }), "data.db is not deployed");
    assert.equal(check(state(), s), "data.db is not deployed");
  });
});

void describe("the code fingerprint", () => {
  void it("changes with the provider's sources, and only with what decides a deploy", () => {
    const root = mkdtempSync(join(tmpdir(), "homelab-fp-"));
    try {
      mkdirSync(join(root, "src", "provider"), { recursive: true });
      mkdirSync(join(root, "scripts"));
      writeFileSync(join(root, "package.json"), '{"version":"1.0.0"}');
      writeFileSync(join(root, "scripts", "pulumi-version"), "v3.274.1\n");
      writeFileSync(join(root, "src", "provider", "diff.ts"), "export const a = 1;\n");
      const first = toolFingerprint(root);
      assert.match(first, /^[0-9a-f]{16}$/);
      assert.equal(toolFingerprint(root), first);
      mkdirSync(join(root, "src", "cli"));
      writeFileSync(join(root, "src", "cli", "main.ts"), "x");
      assert.equal(toolFingerprint(root), first);
      writeFileSync(join(root, "src", "provider", "diff.ts"), "export const a = 2;\n");
      assert.notEqual(toolFingerprint(root), first);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

void describe("images and compose deployments", () => {
  void it("are always left to the engine, with the reason", () => {
    const image: ResourceSpec = { id: "img", type: "homelab:docker:Image", inputs: { name: "x", context: "/c", dockerfile: "Dockerfile", buildArgs: {} }, protect: false, dependsOn: [], crossDependsOn: [] };
    assert.match(whyChanged({ state: state(), specs: [spec(), image], fingerprint: "fp1", deployedIn: () => new Set() }) ?? "", /img: an image's build context can only be compared by the engine/);
  });
});
