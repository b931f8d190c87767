import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ChangeTracker, changeKindOf, loadChangeDescriber, countChanges, hasChanges, propertyChanges, sameValue } from "../../src/engine/events.ts";
import type { EngineEventLike, StepProgress } from "../../src/engine/events.ts";
import { dataGuard, deletionGuard, productionGuard, protectGuard } from "../../src/engine/guards.ts";
import { containerInputs, plannedContainer, servicePlan } from "./plans.ts";
import type { ServicePlan } from "../../src/plan/types.ts";

const T = "homelab:proxmox:Container";
const urn = (id: string, type = T) => `urn:pulumi:prod.peach::homelab::${type}::${id}`;
const base = { node: "pve-01", template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", memory: 2048, tags: ["homelab", "peach"] };

function pre(op: string, id: string, old?: Record<string, unknown>, news?: Record<string, unknown>, extra: Record<string, unknown> = {}, planning = false): EngineEventLike {
  return { resourcePreEvent: { planning, metadata: { op, urn: urn(id), type: T, ...(old ? { old: { inputs: old } } : {}), ...(news ? { new: { inputs: news } } : {}), ...extra } } };
}
function outs(op: string, id: string, outputs: Record<string, unknown> = {}): EngineEventLike {
  return { resOutputsEvent: { metadata: { op, urn: urn(id), type: T, new: { outputs } } } };
}

void describe("engine events → changes", () => {
  void it("maps step ops to resource changes", () => {
    assert.equal(changeKindOf("create-replacement"), "replace");
    assert.equal(changeKindOf("delete-replaced"), "replace");
    assert.equal(changeKindOf("update"), "update");
    assert.equal(changeKindOf("same"), "same");
    assert.equal(changeKindOf("remove-pending-replace"), undefined);
  });

  void it("finds changed inputs by comparing old and new (the Node provider SDK sends no detailed diff)", () => {
    const props = propertyChanges({ op: "update", urn: urn("c"), type: T, old: { inputs: base }, new: { inputs: { ...base, memory: 4096, tags: ["homelab", "peach", "x"] } } });
    assert.deepEqual(props.map((p) => [p.key, p.kind, p.replaces, p.old, p.new]), [
      ["memory", "update", false, 2048, 4096],
      ["tags", "update", false, ["homelab", "peach"], ["homelab", "peach", "x"]],
    ]);
    const replace = propertyChanges({ op: "replace", urn: urn("c"), type: T, keys: ["template"], old: { inputs: base }, new: { inputs: { ...base, template: "local:vztmpl/ubuntu.tar.zst" } } });
    assert.deepEqual(replace.map((p) => [p.key, p.replaces]), [["template", true]]);
  });

  void it("uses a detailed diff when a provider gives one, nested paths under their top-level input", () => {
    const props = propertyChanges({ op: "update", urn: urn("c"), type: T, old: { inputs: base }, new: { inputs: base }, detailedDiff: { "tags[2]": { diffKind: "add", inputDiff: true }, node: { diffKind: "update-replace", inputDiff: true } } });
    assert.deepEqual(props.map((p) => [p.key, p.kind, p.replaces]), [
      ["node", "update", true],
      ["tags", "update", false],
    ]);
  });

  void it("compares JSON values deeply, key order ignored", () => {
    assert.equal(sameValue({ a: [1, { b: 2 }], c: "x" }, { c: "x", a: [1, { b: 2 }] }), true);
    assert.equal(sameValue([1, 2], [2, 1]), false);
    assert.equal(sameValue({ a: 1 }, { a: 1, b: undefined }), true);
    assert.equal(sameValue(null, {}), false);
  });

  void it("folds a replacement's steps into one change, reports step progress and durations", () => {
    let now = 1000;
    const steps: StepProgress[] = [];
    const t = new ChangeTracker({ now: () => now, onStep: (s) => steps.push(s) });
    t.handle({ resourcePreEvent: { metadata: { op: "same", urn: urn("homelab-prod.peach", "pulumi:pulumi:Stack"), type: "pulumi:pulumi:Stack" } } });
    t.handle(pre("create-replacement", "c", base, { ...base, node: "pve-02" }, { keys: ["node"] }));
    now += 2000;
    t.handle(outs("create-replacement", "c", { vmid: 105 }));
    t.handle(pre("replace", "c", base, { ...base, node: "pve-02" }, { keys: ["node"] }));
    t.handle(outs("replace", "c", { vmid: 105 }));
    t.handle(pre("delete-replaced", "c", base, undefined));
    now += 500;
    t.handle(outs("delete-replaced", "c"));
    t.handle(pre("same", "other", base, base));
    const changes = t.changes();
    assert.deepEqual(changes.map((c) => [c.id, c.kind, c.status]), [["c", "replace", "done"], ["other", "same", "done"]]);
    assert.deepEqual(changes[0]?.properties.map((p) => [p.key, p.old, p.new, p.replaces]), [["node", "pve-01", "pve-02", true]]);
    assert.equal(changes[0]?.durationMs, 2500);
    assert.deepEqual(steps.map((s) => `${s.op}:${s.phase}`), ["create-replacement:start", "create-replacement:done", "replace:start", "replace:done", "delete-replaced:start", "delete-replaced:done"]);
    assert.deepEqual(countChanges(changes), { create: 0, update: 0, replace: 1, delete: 0, same: 1, read: 0 });
    assert.equal(hasChanges(changes), true);
  });

  void it("in a preview nothing runs: changes stay planned and no progress is reported", () => {
    const steps: StepProgress[] = [];
    const t = new ChangeTracker({ onStep: (s) => steps.push(s) });
    t.handle(pre("create", "c", undefined, base, {}, true));
    t.handle({ resOutputsEvent: { planning: true, metadata: { op: "create", urn: urn("c"), type: T } } });
    assert.equal(t.changes()[0]?.status, "planned");
    assert.equal(steps.length, 0);
  });

  void it("attaches errors to the failed resource and drops engine chatter", () => {
    const t = new ChangeTracker();
    t.handle(pre("create", "c", undefined, base));
    t.handle({ diagnosticEvent: { urn: urn("c"), severity: "error", message: "creating container peach on pve-01: CT is locked\n" } });
    t.handle({ diagnosticEvent: { severity: "warning", message: "using pulumi-resource-homelab from $PATH at /x/bin/pulumi-resource-homelab\n" } });
    t.handle({ diagnosticEvent: { severity: "debug", message: "Registering resource" } });
    t.handle({ resOpFailedEvent: { status: 1, steps: 1, metadata: { op: "create", urn: urn("c"), type: T } } });
    const c = t.changes()[0];
    assert.equal(c?.status, "failed");
    assert.equal(c?.error, "creating container peach on pve-01: CT is locked");
    assert.deepEqual(t.diagnostics().map((d) => d.severity), ["error"]);
  });
});

const change = (id: string, kind: "create" | "update" | "replace" | "delete" | "same") => ({
  urn: urn(id),
  id,
  type: T,
  kind,
  properties: kind === "replace" ? [{ key: "template", kind: "update" as const, replaces: true, old: "a", new: "b" }] : [],
  protect: false,
  status: "planned" as const,
  durationMs: undefined,
  error: undefined,
  outputs: undefined,
});

void describe("guards", () => {
  void it("CI deletion guard: refuses deletes and replaces, unless allowed", () => {
    const changes = [change("a", "create"), change("b", "update"), change("c", "replace"), change("d", "delete")];
    const v = deletionGuard("peach", changes, false);
    assert.deepEqual(v.map((x) => [x.resource, x.guard]), [["c", "ci-delete"], ["d", "ci-delete"]]);
    assert.match(v[0]?.message ?? "", /replaced .*template changed/);
    assert.match(v[1]?.message ?? "", /deleted: it is no longer in service.yaml/);
    assert.match(v[0]?.hint ?? "", /--allow-delete/);
    assert.deepEqual(deletionGuard("peach", changes, true), []);
  });

  void it("production guard: containers must be protected in a production environment only", () => {
    const planned = (id: string, protect: boolean) => ({ kind: "proxmox:container", id, protect }) as ServicePlan["resources"][number];
    const plan = { service: "peach", environment: "prod", stack: "prod.peach", dependsOnServices: [], notes: [], provisioning: { enabled: true, dockerSource: "docker" }, resources: [planned("a", true), planned("b", false)] } as ServicePlan;
    assert.deepEqual(productionGuard(plan, true, "prod").map((v) => v.resource), ["b"]);
    assert.match(productionGuard(plan, true, "prod")[0]?.hint ?? "", /protect: true/);
    assert.deepEqual(productionGuard(plan, false, "dev"), []);
  });

  void it("data guard: a container whose volumes cannot follow it to another node is refused, in CI or not, unless allowed", () => {
    const moving = plannedContainer("web", containerInputs({ node: "pve-02" }), { dataMove: { from: "pve-01", to: "pve-02", volumes: ["data"] } });
    const plan = servicePlan("sandbox", [moving, plannedContainer("other", containerInputs())]);
    const v = dataGuard(plan, false);
    assert.deepEqual(v.map((x) => [x.resource, x.guard]), [["web", "data"]]);
    assert.match(v[0]?.message ?? "", /from pve-01 to pve-02, and its volumes \(data\) cannot follow/);
    assert.match(v[0]?.hint ?? "", /--allow-delete/);
    assert.deepEqual(dataGuard(plan, true), []);
  });

  void it("protect guard: lists the protected resources of a stack", () => {
    const r = (id: string, protect: boolean) => ({ urn: urn(id), id, type: T, physicalId: "1", protect, inputs: {}, outputs: {} });
    assert.deepEqual(protectGuard("peach", [r("a", true), r("b", false)]).map((v) => v.resource), ["a"]);
  });
});

void describe("compose deployment changes in words", () => {
  void it("an update of a Deployment names the compose file that changed and says secrets changed, instead of dumping inputs", async () => {
    const t = new ChangeTracker({ describe: await loadChangeDescriber() });
    const dir = "/opt/homelab/hello";
    const old = { service: "hello", fileHashes: { [`${dir}/docker-compose.yaml`]: "a1", [`${dir}/compose`]: "c1" }, secretsHash: "s1" };
    const news = { service: "hello", fileHashes: { [`${dir}/docker-compose.yaml`]: "a2", [`${dir}/compose`]: "c1" }, secretsHash: "s2" };
    t.handle({ resourcePreEvent: { planning: true, metadata: { op: "update", urn: "urn:pulumi:test.hello::homelab::homelab:compose:Deployment::hello_container.compose", type: "homelab:compose:Deployment", old: { inputs: old }, new: { inputs: news } } } });
    const [c] = t.changes();
    assert.equal(c?.id, "hello_container.compose");
    assert.deepEqual(c?.summary, ["compose files changed: docker-compose.yaml", "secrets changed"]);
    // Other resources keep their list of changed inputs.
    t.handle(pre("update", "web", { ...base, memory: 1024 }, { ...base, memory: 2048 }, {}, true));
    assert.equal(t.changes().find((x) => x.id === "web")?.summary, undefined);
  });
});
