import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { deployExitCode } from "../../src/cli/commands/deploy.ts";
import { ciMode } from "../../src/cli/context.ts";
import { destroyExitCode } from "../../src/cli/commands/destroy.ts";
import { statusText } from "../../src/cli/commands/status.ts";
import { makeStyle } from "../../src/cli/output.ts";
import { changeLines, countsText, explainPlacement, formatValue, servicePreviewText, summaryText } from "../../src/cli/render/changes.ts";
import { markdownSummary } from "../../src/cli/render/markdown.ts";
import { Progress, truncate } from "../../src/cli/render/progress.ts";
import { failedOutcome } from "../../src/engine/deploy.ts";
import type { ServiceOutcome } from "../../src/engine/deploy.ts";
import type { ResourceChange } from "../../src/engine/events.ts";
import type { PlannedContainer } from "../../src/plan/types.ts";
import { locateContainer } from "../../src/session/session.ts";

const o = makeStyle(false);
const T = "homelab:proxmox:Container";

function change(id: string, kind: ResourceChange["kind"], properties: ResourceChange["properties"] = [], extra: Partial<ResourceChange> = {}): ResourceChange {
  return { urn: `urn:pulumi:s::homelab::${T}::${id}`, id, type: T, kind, properties, protect: false, status: "planned", durationMs: undefined, error: undefined, outputs: undefined, ...extra };
}

const planned: PlannedContainer = {
  kind: "proxmox:container",
  id: "peach_container",
  protect: false,
  dependsOn: [],
  crossDependsOn: [],
  inputs: {
    node: "pve-01",
    template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
    hostname: "peach-container",
    description: "",
    tags: ["homelab", "peach"],
    memory: 2048,
    swap: 512,
    cores: 2,
    storage: "local-lvm",
    diskGb: 8,
    volumes: [],
    bindMounts: [],
    bridge: "vmbr0",
    ip: "dhcp",
    unprivileged: true,
    nesting: true,
    keyctl: true,
    sshPublicKeys: "",
    onBoot: true,
    protection: false,
  },
  template: {
    chosen: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
    sticky: false,
    candidates: [
      { volid: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", version: "12.7-1", matched: true, reason: "newest matching version" },
      { volid: "local:vztmpl/debian-12-standard_12.2-1_amd64.tar.zst", version: "12.2-1", matched: true, reason: "matches, older than 12.7-1" },
      { volid: "local:vztmpl/debian-11-standard_11.7-1_amd64.tar.zst", version: "11.7-1", matched: false, reason: "version 11.7-1 does not satisfy >=12" },
    ],
  },
  placement: {
    chosen: "pve-01",
    sticky: false,
    strategy: "most-free-memory",
    candidates: [
      { node: "pve-01", eligible: true, code: "chosen", reason: "30.8 GiB free", memFreeMb: 31539 },
      { node: "pve-02", eligible: true, code: "ranked-lower", reason: "14.8 GiB free", memFreeMb: 15155 },
      { node: "pve-03", eligible: false, code: "missing-tags", reason: "missing tag tier:1", memFreeMb: 60000 },
    ],
  },
  compose: undefined,
};

function outcome(o2: Partial<ServiceOutcome>): ServiceOutcome {
  return { ...failedOutcome("peach", "prod", ""), status: "unchanged", error: undefined, ...o2 };
}

void describe("change text", () => {
  void it("says what changes and why, and which inputs force a replacement", () => {
    const lines = changeLines(
      [
        change("a", "update", [{ key: "memory", kind: "update", replaces: false, old: 2048, new: 4096 }]),
        change("b", "replace", [{ key: "template", kind: "update", replaces: true, old: "x", new: "y" }]),
        change("c", "same"),
      ],
      [],
      o,
      { past: false, explain: false, showSame: false },
    );
    assert.deepEqual(lines, ["  ~ update  a", "      memory 2048 → 4096", "  +- replace  b", "      template x → y (forces replacement)"]);
  });

  void it("explains placement: the template and the candidates it beat, the node and why the others were not chosen", () => {
    const text = explainPlacement(planned, o).join("\n");
    assert.match(text, /template {2}debian-12-standard_12\.7-1_amd64 — newest matching version/);
    assert.match(text, /beat debian-12-standard_12\.2-1_amd64: matches, older than 12\.7-1/);
    assert.match(text, /not debian-11-standard_11\.7-1_amd64: version 11\.7-1 does not satisfy >=12/);
    assert.match(text, /node {6}pve-01 — 30\.8 GiB free; strategy most-free-memory/);
    assert.match(text, /beat pve-02: 14\.8 GiB free/);
    assert.match(text, /not pve-03: missing tag tier:1/);
  });

  void it("a service preview names skipped docker images, the changes, and errors with hints", () => {
    const text = servicePreviewText(
      outcome({
        status: "failed",
        plan: { service: "peach", environment: "prod", stack: "prod.peach", resources: [planned], dependsOnServices: [], notes: [], provisioning: { enabled: true, dockerSource: "docker" } },
        skippedResources: [{ id: "img", kind: "docker:image", reason: "docker:image resources are not deployable yet; skipped" }],
        preview: [change("peach_container", "create")],
        error: { message: "stack prod.peach is locked by pid 7 on vm, no longer running", detail: "", hint: "clear the lock with `homelab unlock peach`" },
      }),
      o,
      { explain: true, verbose: false },
    );
    assert.match(text, /^peach \(prod\.peach\) {2}1 to create {2}FAILED/);
    assert.match(text, /! img {2}docker:image resources are not deployable yet; skipped/);
    assert.match(text, /\+ create {2}peach_container {2}on pve-01, debian-12-standard_12\.7-1_amd64, 2048 MB, 2 core\(s\)/);
    assert.match(text, /node {6}pve-01/);
    assert.match(text, /hint: clear the lock with `homelab unlock peach`/);
  });

  void it("counts and summarises", () => {
    assert.equal(countsText([change("a", "create"), change("b", "create"), change("c", "delete"), change("d", "same")], false), "2 to create, 1 to delete");
    assert.equal(countsText([change("a", "update")], true), "1 updated");
    assert.equal(countsText([change("a", "same")], true), "no changes");
    const s = summaryText([outcome({ service: "a", status: "applied", applied: [change("x", "create")] }), outcome({ service: "b", status: "unchanged" })], o, { envName: "prod", dryRun: false, durationMs: 1234 });
    assert.match(s, /a {2}applied {2}1 created/);
    assert.match(s, /Deploy of 2 service\(s\) to prod: 1 applied, 1 unchanged \(1\.2 s\)/);
    assert.equal(formatValue(["a", 1]), "[a, 1]");
    assert.equal(formatValue("x".repeat(100)).length, 57);
  });
});

void describe("Markdown summary", () => {
  void it("lists each service's result and every change with its reasons, refusals with their hints", () => {
    const md = markdownSummary(
      [
        outcome({ service: "peach", status: "blocked", preview: [change("peach_container", "replace", [{ key: "template", kind: "update", replaces: true, old: "a", new: "b" }])], violations: [{ guard: "ci-delete", service: "peach", resource: "peach_container", message: "peach_container would be replaced", hint: "needs --allow-delete" }] }),
        outcome({ service: "web", status: "pending", preview: [change("w", "create")] }),
        outcome({ service: "db", status: "unchanged", preview: [change("d", "same")] }),
      ],
      { envName: "prod", dryRun: true, ci: true, exitCode: 3 },
    );
    assert.match(md, /^### homelab deploy preview: environment `prod`/);
    assert.match(md, /\| peach \| ⛔ blocked by a guard \| 1 to replace \|/);
    assert.match(md, /\| web \| 📝 changes to apply \| 1 to create \|/);
    assert.match(md, /\| db \| ➖ no changes \| no changes \|/);
    assert.match(md, /- \*\*replace\*\* `peach_container`: `template`: `a` → `b` \*\*\(forces replacement\)\*\*/);
    assert.match(md, /- ⛔ peach_container would be replaced\. _needs --allow-delete_/);
    assert.ok(!md.includes("#### db"));
    assert.match(md, /exit code 3 \(CI mode\)/);
  });
});

void describe("exit codes", () => {
  void it("deploy: failed 1 > blocked 3 > (CI) changes 4 > 0; interrupted 130", () => {
    const s = (...statuses: ServiceOutcome["status"][]) => statuses.map((status) => ({ status }));
    assert.equal(deployExitCode(s("unchanged"), { ci: true, interrupted: false }), 0);
    assert.equal(deployExitCode(s("applied", "unchanged"), { ci: true, interrupted: false }), 4);
    assert.equal(deployExitCode(s("pending"), { ci: true, interrupted: false }), 4);
    assert.equal(deployExitCode(s("applied"), { ci: false, interrupted: false }), 0);
    assert.equal(deployExitCode(s("applied", "blocked", "skipped"), { ci: true, interrupted: false }), 3);
    assert.equal(deployExitCode(s("blocked", "failed"), { ci: true, interrupted: false }), 1);
    assert.equal(deployExitCode(s("applied"), { ci: true, interrupted: true }), 130);
    assert.equal(destroyExitCode("blocked"), 3);
    assert.equal(destroyExitCode("destroyed"), 0);
    assert.equal(destroyExitCode("failed"), 1);
  });

  void it("CI mode from --ci or CI=true", () => {
    assert.equal(ciMode(true, {}), true);
    assert.equal(ciMode(undefined, { CI: "true" }), true);
    assert.equal(ciMode(undefined, { CI: "false" }), false);
    assert.equal(ciMode(undefined, {}), false);
  });
});

void describe("status and progress text", () => {
  void it("status shows resources, orphans and services never deployed", () => {
    const text = statusText(
      [
        { service: "gone", stack: "prod.gone", state: "orphaned", lastUpdate: "2026-01-01T00:00:00.000Z", resources: [], pendingOperations: 0, lock: undefined },
        { service: "new", stack: "prod.new", state: "never-deployed", lastUpdate: undefined, resources: [], pendingOperations: 0, lock: undefined },
        { service: "peach", stack: "prod.peach", state: "deployed", lastUpdate: "2026-01-01T00:00:00.000Z", resources: [{ id: "c", type: T, node: "pve-01", vmid: 101, address: "10.0.0.5", detail: undefined, protect: true }], pendingOperations: 1, lock: "pid 7 on vm, no longer running" },
      ],
      { out: o, envName: "prod" },
      "file:///r/.homelab/state",
      Date.parse("2026-01-01T00:10:00Z"),
    );
    assert.match(text, /gone {3}ORPHANED {2}prod\.gone/);
    assert.match(text, /homelab destroy gone --env prod/);
    assert.match(text, /new {4}never deployed/);
    assert.match(text, /peach {2}deployed {2}prod\.peach {2}last update 2026-01-01 00:00:00Z \(10 min ago\)/);
    assert.match(text, / {2}c {2}pve-01 {2}vmid 101 {2}10\.0\.0\.5 {2}protected/);
    assert.match(text, /1 operation\(s\) left pending/);
    assert.match(text, /locked by pid 7 on vm, no longer running/);
  });

  void it("status shows what the monitor last recorded: health and the last repair", () => {
    const rows = [{ service: "peach", stack: "prod.peach", state: "deployed" as const, lastUpdate: undefined, resources: [], pendingOperations: 0, lock: undefined }];
    const health = new Map([["peach", { health: "unhealthy since 2026-01-01T00:05:00Z (http: 502)", remediation: "restart at 2026-01-01T00:06:00Z: ok" }]]);
    const text = statusText(rows, { out: o, envName: "prod" }, "file:///r", Date.parse("2026-01-01T00:10:00Z"), health);
    assert.match(text, /^ {2}health {2}unhealthy since 2026-01-01T00:05:00Z \(http: 502\)$/m);
    assert.match(text, /^ {2}last repair {2}restart at 2026-01-01T00:06:00Z: ok$/m);
    assert.doesNotMatch(statusText(rows, { out: o, envName: "prod" }, "file:///r"), /health/);
  });

  void it("plain progress prints one line per step, with durations", () => {
    const out: string[] = [];
    const p = new Progress({ write: (s) => out.push(s), style: o, live: false, verbose: false });
    p.step("peach", { id: "c", type: T, op: "create", phase: "start", elapsedMs: undefined });
    p.step("peach", { id: "c", type: T, op: "create", phase: "done", elapsedMs: 2300 });
    p.step("peach", { id: "d", type: T, op: "delete-replaced", phase: "failed", elapsedMs: 100 });
    p.diagnostic("peach", { severity: "warning", id: "c", message: "slow task", ephemeral: false });
    p.close();
    assert.deepEqual(out.join("").split("\n").filter(Boolean), [
      "peach  c  creating…",
      "peach  c  created (2.3s)",
      "peach  d  deleting the replaced one FAILED after 0.1s",
      "peach  c  warning: slow task",
    ]);
    assert.equal(truncate("abcdef", 4), "abc…");
  });

  void it("finds the container a killed run created, only when exactly one matches", () => {
    const guest = (vmid: number, name: string, node = "pve-01", tags = ["homelab", "peach"], status = "running") => ({ vmid, node, type: "lxc" as const, name, status, tags, template: false, lock: undefined, memMax: 0 });
    const op = { urn: "u", id: "c", type: T, op: "creating", inputs: { hostname: "web", node: "pve-01" } };
    assert.deepEqual(locateContainer({ guests: [guest(100, "web"), guest(101, "db")] }, "peach", op, new Set()), { physicalId: "100", complete: true });
    assert.deepEqual(locateContainer({ guests: [guest(100, "web", "pve-01", ["homelab", "peach"], "stopped")] }, "peach", op, new Set()), { physicalId: "100", complete: false });
    assert.equal(locateContainer({ guests: [guest(100, "web")] }, "peach", op, new Set(["100"])), undefined);
    assert.equal(locateContainer({ guests: [guest(100, "web"), guest(102, "web")] }, "peach", op, new Set()), undefined);
    assert.equal(locateContainer({ guests: [guest(100, "web", "pve-02")] }, "peach", op, new Set()), undefined);
    assert.equal(locateContainer({ guests: [guest(100, "web", "pve-01", ["other"])] }, "peach", op, new Set()), undefined);
  });
});
