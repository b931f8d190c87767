import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ServiceStatusRow } from "../../src/engine/status.ts";
import type { ServiceSnapshot } from "../../src/monitor/monitor.ts";
import { PHASES } from "../../src/monitor/state-machine.ts";
import type { LastDeploy } from "../../src/status/deploy-history.ts";
import { buildStatusModel, LEVELS, levelOfPhase, safeUrl, serviceLinks } from "../../src/status/model.ts";
import type { ModelInput, ServiceInfo } from "../../src/status/model.ts";
import type { PreviewRecord } from "../../src/status/previews.ts";
import { BUCKET_MS, BUCKETS, RecentHistory, UptimeSeries } from "../../src/status/series.ts";

const NOW = Date.UTC(2025, 5, 1, 12, 0, 0);
const iso = (ms: number): string => new Date(ms).toISOString();
const CT = "homelab:proxmox:Container";

function row(service: string, o: Partial<ServiceStatusRow> = {}): ServiceStatusRow {
  return {
    service,
    stack: `test.${service}`,
    state: "deployed",
    lastUpdate: iso(NOW - 3_600_000),
    resources: [{ id: `${service}_ct`, type: CT, node: "pve-01", vmid: 101, address: "10.0.0.5", template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", detail: undefined, protect: false }],
    pendingOperations: 0,
    lock: undefined,
    ...o,
  };
}

function info(name: string, checks: ServiceInfo["checks"] = [{ label: "http http://{address}:80/health", type: "http", url: "http://{address}:80/health", resource: undefined }]): ServiceInfo {
  return { name, description: `${name} the service`, checks };
}

function snap(service: string, phase: ServiceSnapshot["phase"], o: Partial<ServiceSnapshot> = {}): ServiceSnapshot {
  return {
    service,
    phase,
    reason: phase === "healthy" ? "every check passes" : "check 1 failed 3/3",
    since: iso(NOW - 60_000),
    lastRemediation: undefined,
    remediationsLastHour: 0,
    checks: [{ label: "http http://{address}:80/health", ok: phase === "healthy", detail: phase === "healthy" ? "status 200" : "connection refused", at: iso(NOW - 1000) }],
    ...o,
  };
}

function input(o: Partial<ModelInput> = {}): ModelInput {
  return {
    environment: "test",
    backend: "file:///srv/homelab/.homelab/state",
    now: NOW,
    config: new Map([["web", info("web")]]),
    rows: [row("web")],
    monitor: { source: "live", updatedAt: iso(NOW), pid: 1, hostname: "h", running: true, services: [snap("web", "healthy")] },
    series: undefined,
    history: undefined,
    deploys: new Map(),
    previews: new Map(),
    nodes: undefined,
    ...o,
  };
}

void describe("status model: levels", () => {
  void it("every monitor phase has a level, and the level list holds each once", () => {
    for (const p of PHASES) assert.ok(LEVELS.includes(levelOfPhase(p)), p);
    assert.equal(new Set(LEVELS).size, LEVELS.length);
    assert.equal(levelOfPhase("failing"), "unhealthy");
    assert.equal(levelOfPhase("backoff"), "unhealthy");
    assert.equal(levelOfPhase("restarting"), "remediating");
    assert.equal(levelOfPhase("grace"), "remediating");
    assert.equal(levelOfPhase("waiting_deploy"), "remediating");
    assert.equal(levelOfPhase("gave_up"), "needs_human");
    assert.equal(levelOfPhase("needs_human"), "needs_human");
    assert.equal(levelOfPhase("unknown"), "checking");
  });

  void it("unhealthy names the failing check and its reason; healthy has none", () => {
    const bad = buildStatusModel(input({ monitor: { source: "live", updatedAt: iso(NOW), pid: 1, hostname: "h", running: true, services: [snap("web", "unhealthy")] } })).services[0];
    assert.equal(bad?.level, "unhealthy");
    assert.equal(bad?.label, "Unhealthy");
    assert.deepEqual(bad?.failing, [{ check: "http http://{address}:80/health", detail: "connection refused" }]);
    assert.equal(bad?.reason, "check 1 failed 3/3");
    const good = buildStatusModel(input()).services[0];
    assert.equal(good?.level, "healthy");
    assert.deepEqual(good?.failing, []);
    assert.equal(good?.reason, null);
  });

  void it("never deployed, orphaned, not monitored, no monitor data, deployment not read yet", () => {
    const m = buildStatusModel(
      input({
        config: new Map([
          ["web", info("web")],
          ["fresh", info("fresh")],
          ["plain", info("plain", [])],
          ["lonely", info("lonely")],
        ]),
        rows: [row("web"), row("fresh", { state: "never-deployed", resources: [], lastUpdate: undefined }), row("plain"), row("gone", { state: "orphaned" }), row("lonely")],
      }),
    );
    const level = Object.fromEntries(m.services.map((s) => [s.service, s.level]));
    assert.deepEqual(level, { fresh: "never_deployed", gone: "orphaned", lonely: "unknown", plain: "unmonitored", web: "healthy" });
    assert.equal(m.services.find((s) => s.service === "lonely")?.reason, "this monitor does not watch it");
    const fresh = m.services.find((s) => s.service === "fresh");
    assert.equal(fresh?.reason, "not deployed yet (homelab deploy fresh)");
    assert.equal(fresh?.uptime, null);
    assert.deepEqual(fresh?.failing, []);
    assert.deepEqual({ ...m.summary }, { total: 5, unhealthy: 0, needs_human: 0, remediating: 0, checking: 0, unknown: 1, never_deployed: 1, orphaned: 1, unmonitored: 1, healthy: 1 });
    const early = buildStatusModel(input({ rows: undefined }));
    assert.equal(early.deployment.read, false);
    assert.equal(early.services[0]?.state, "unknown");
    const none = buildStatusModel(input({ monitor: undefined }));
    assert.equal(none.services[0]?.level, "unknown");
    assert.equal(none.services[0]?.reason, "no monitor has run in this environment");
    assert.equal(none.monitor.source, "none");
  });
});

void describe("status model: what the page shows", () => {
  void it("placement has node, vmid, address, template; links are origins without credentials or paths", () => {
    const s = buildStatusModel(input()).services[0];
    assert.deepEqual(s?.placement, [{ resource: "web_ct", node: "pve-01", vmid: 101, address: "10.0.0.5", template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", protect: false }]);
    assert.deepEqual(s?.links, ["http://10.0.0.5/"]);
    const checks: ServiceInfo["checks"] = [
      { label: "a", type: "http", url: "https://admin:hunter2@{address}:8443/api/health?token=abc", resource: "web_ct" },
      { label: "b", type: "tcp", url: undefined, resource: undefined },
      { label: "c", type: "http", url: "http://{address}:9000/", resource: "missing" },
    ];
    assert.deepEqual(serviceLinks(info("web", checks), row("web").resources), ["https://10.0.0.5:8443/"]);
    // Without an address there is nothing to link.
    assert.deepEqual(serviceLinks(info("web"), []), []);
  });

  void it("a preview is pending while it is newer than the last deploy", () => {
    const preview: PreviewRecord = { service: "web", environment: "test", at: iso(NOW - 60_000), status: "pending", changes: [{ resource: "web_ct", type: CT, kind: "update", inputs: ["memory 512 → 1024"], replaces: false, summary: [] }] };
    const deploy = (at: number): LastDeploy => ({ at: iso(at), startedAt: iso(at - 5000), kind: "update", result: "succeeded", durationMs: 5000, counts: { update: 1 }, changed: [{ resource: "web_ct", change: "updated" }] });
    const pending = buildStatusModel(input({ previews: new Map([["web", preview]]), deploys: new Map([["web", deploy(NOW - 3_600_000)]]) })).services[0];
    assert.deepEqual(pending?.pending?.changes.map((c) => c.inputs), [["memory 512 → 1024"]]);
    assert.equal(pending?.lastDeploy?.kind, "update");
    const applied = buildStatusModel(input({ previews: new Map([["web", preview]]), deploys: new Map([["web", deploy(NOW - 1000)]]) })).services[0];
    assert.equal(applied?.pending, null);
    const unchanged = buildStatusModel(input({ previews: new Map([["web", { ...preview, status: "unchanged", changes: [] }]]) })).services[0];
    assert.equal(unchanged?.pending, null);
    // Without a history record, the listing's time is the last deploy.
    assert.deepEqual(buildStatusModel(input()).services[0]?.lastDeploy, { at: iso(NOW - 3_600_000), startedAt: null, kind: null, result: null, durationMs: null, counts: null, changed: null });
  });

  void it("uptime and history come from the series the model is given", () => {
    const series = new UptimeSeries();
    for (let i = 0; i < 10; i++) series.record("web", NOW - 5 * 60_000 + i * 1000, i !== 3, 20);
    const history = new RecentHistory();
    history.record({ type: "action", at: iso(NOW - 30_000), service: "web", action: "restart", phase: "start", detail: "check 1 failed 3/3" });
    const s = buildStatusModel(input({ series, history })).services[0];
    assert.equal(s?.uptime?.checks, 10);
    assert.equal(s?.uptime?.failed, 1);
    assert.equal(s?.remediation.recent[0]?.kind, "action");
  });

  void it("nodes: sorted, memory, guests with the service they belong to; templates left out; an error is kept", () => {
    const node = (name: string, used: number) => ({ name, online: true, memTotal: 8 * 2 ** 30, memUsed: used, memFree: 8 * 2 ** 30 - used, cpuCount: 4, cpuUsage: 0.1, cpuFree: 3.6 });
    const guest = (vmid: number, nodeName: string, template = false) => ({ vmid, node: nodeName, type: "lxc" as const, name: `ct${vmid}`, status: "running", tags: [], template, lock: undefined, memMax: 0 });
    const m = buildStatusModel(input({ nodes: { at: iso(NOW), nodes: [node("pve-02", 2 ** 30), node("pve-01", 2 ** 31)], guests: [guest(101, "pve-01"), guest(102, "pve-01"), guest(900, "pve-01", true)] } }));
    assert.deepEqual(m.nodes?.list.map((n) => n.name), ["pve-01", "pve-02"]);
    assert.deepEqual(m.nodes?.list[0]?.guests.map((g) => [g.vmid, g.service]), [[101, "web"], [102, null]]);
    assert.equal(m.nodes?.list[1]?.memFree, 7 * 2 ** 30);
    const failed = buildStatusModel(input({ nodes: { at: iso(NOW), error: "connection refused" } }));
    assert.deepEqual(failed.nodes, { at: iso(NOW), error: "connection refused", list: [] });
    assert.equal(buildStatusModel(input()).nodes, null);
  });

  void it("the backend URL loses its credentials and query", () => {
    assert.equal(safeUrl("postgres://homelab:s3cret@db.lan:5432/pulumi?sslmode=require"), "postgres://db.lan:5432/pulumi");
    assert.equal(safeUrl("s3://bucket?region=x&accessKey=AKIA"), "s3://bucket");
    assert.equal(safeUrl("file:///srv/homelab/.homelab/state"), "file:///srv/homelab/.homelab/state");
    assert.equal(buildStatusModel(input({ backend: "https://user:pw@api.example/org" })).backend, "https://api.example/org");
  });
});

void describe("uptime series and history: fixed memory", () => {
  void it("96 buckets of 15 minutes: old results fall out of the window, a slot is reused", () => {
    const s = new UptimeSeries();
    const start = Math.floor(NOW / BUCKET_MS) * BUCKET_MS;
    s.record("a", start - 25 * 3_600_000, false, 0); // older than the window by the time of the view
    for (let b = 0; b < BUCKETS + 10; b++) s.record("a", start + b * BUCKET_MS, b % 2 === 0, b);
    const now = start + (BUCKETS + 9) * BUCKET_MS + 1;
    const v = s.view("a", now);
    assert.equal(v?.buckets.length, BUCKETS);
    assert.equal(v?.checks, BUCKETS);
    assert.equal(v?.failed, BUCKETS / 2);
    assert.equal(v?.ratio, 0.5);
    assert.equal(v?.buckets[0]?.start, iso(start + 10 * BUCKET_MS));
    assert.equal(v?.since, iso(start + 10 * BUCKET_MS));
    // A late result for a bucket already reused is ignored.
    s.record("a", start, true, 1);
    assert.equal(s.view("a", now)?.checks, BUCKETS);
    assert.equal(s.view("nobody", now), undefined);
  });

  void it("response time is the mean of the passing checks; a bucket of failures has none", () => {
    const s = new UptimeSeries();
    s.record("a", NOW - 1000, true, 10);
    s.record("a", NOW - 900, true, 30);
    s.record("a", NOW - 800, false, 5000);
    const v = s.view("a", NOW);
    assert.equal(v?.avgMs, 20);
    assert.equal(v?.lastMs, 30);
    const down = new UptimeSeries();
    down.record("b", NOW - 1000, false, 5000);
    assert.equal(down.view("b", NOW)?.buckets[0]?.avgMs, null);
    assert.equal(down.view("b", NOW)?.ratio, 0);
  });

  void it("history keeps remedies and notable state changes, at most 20 per service, newest first", () => {
    const h = new RecentHistory();
    assert.equal(h.record({ type: "state", at: iso(NOW), service: "a", from: "unknown", to: "healthy", reason: "" }), false);
    assert.equal(h.record({ type: "state", at: iso(NOW), service: "a", from: "healthy", to: "failing", reason: "" }), false);
    assert.equal(h.record({ type: "check", at: iso(NOW), service: "a", check: "x", index: 0, ok: false, latencyMs: 1, detail: "" }), false);
    for (let i = 0; i < 30; i++) h.record({ type: "action", at: iso(NOW + i), service: "a", action: "restart", phase: "start", detail: `#${i}` });
    assert.equal(h.record({ type: "state", at: iso(NOW + 99), service: "a", from: "failing", to: "unhealthy", reason: "check 1 failed" }), true);
    const list = h.list("a");
    assert.equal(list.length, 20);
    assert.equal(list[0]?.kind, "state");
    assert.deepEqual(list[1], { at: iso(NOW + 29), kind: "action", action: "restart", phase: "start", detail: "#29" });
  });
});
