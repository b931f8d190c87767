import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ServiceStatusRow } from "../../../src/engine/status.ts";
import { ManualClock } from "../../../src/monitor/clock.ts";
import type { MonitorEvent } from "../../../src/monitor/events.ts";
import type { ServiceSnapshot } from "../../../src/monitor/monitor.ts";
import { StatusHub } from "../../../src/monitor/web/hub.ts";
import type { StreamClient } from "../../../src/monitor/web/hub.ts";

const T0 = Date.UTC(2025, 0, 1, 12);

function setup() {
  const clock = new ManualClock(T0);
  let phase: ServiceSnapshot["phase"] = "healthy";
  const rows: ServiceStatusRow[] = [
    { service: "a", stack: "t.a", state: "deployed", lastUpdate: undefined, resources: [], pendingOperations: 0, lock: undefined },
    { service: "b", stack: "t.b", state: "deployed", lastUpdate: undefined, resources: [], pendingOperations: 0, lock: undefined },
  ];
  let reads = 0;
  const hub = new StatusHub({
    environment: "t",
    backend: "file:///x",
    names: undefined,
    config: new Map(["a", "b"].map((n) => [n, { name: n, description: undefined, checks: [{ label: "http x", type: "http" as const, url: "http://{address}/", resource: undefined }] }])),
    snapshot: () => ["a", "b"].map((service) => ({ service, phase: service === "a" ? phase : "healthy", reason: "r", since: new Date(T0).toISOString(), lastRemediation: undefined, remediationsLastHour: 0, checks: [{ label: "http x", ok: service === "a" ? phase === "healthy" : true, detail: "d", at: undefined }] })),
    monitor: { source: "live", pid: 1, hostname: "h", running: true },
    clock,
    deployment: { read: () => (reads++, Promise.resolve({ rows, deploys: new Map() })) },
    nodes: undefined,
    previews: () => Promise.resolve(new Map()),
  });
  const sent: string[] = [];
  const client: StreamClient = { write: (c) => (sent.push(c), true), end: () => undefined };
  const check = (service: string, ok: boolean, ms: number): MonitorEvent => ({ type: "check", at: new Date(clock.now()).toISOString(), service, check: "http x", index: 0, ok, latencyMs: ms, detail: ok ? `status 200 (${ms} ms)` : `status 503, expected 2xx/3xx (${ms} ms)` });
  const cards = () => sent.filter((s) => s.startsWith("event: html")).map((s) => (JSON.parse(s.slice(s.indexOf("data: ") + 6)) as { id: string }).id);
  return { clock, hub, client, sent, check, cards, setPhase: (p: ServiceSnapshot["phase"]) => (phase = p), reads: () => reads };
}

void describe("the status page's hub", () => {
  void it("a new verdict is sent within the flush; response times alone at most once a minute", async () => {
    const { clock, hub, client, check, cards, setPhase } = setup();
    await hub.start();
    const { version } = hub.page();
    assert.ok(hub.subscribe(client, hub.boot, version));
    hub.sink(check("a", true, 3));
    hub.sink(check("b", true, 3));
    await clock.advance(1000);
    const first = cards().length;
    // Same verdict, other response time: nothing for a minute.
    for (let i = 0; i < 5; i++) {
      hub.sink(check("a", true, 10 + i));
      await clock.advance(10_000);
    }
    assert.equal(cards().length, first);
    await clock.advance(15_000);
    hub.sink(check("a", true, 99));
    await clock.advance(2000);
    assert.ok(cards().slice(first).includes("svc-a"), "redrawn after a minute");
    // A failure: at once (within the half-second flush), with the summary.
    const before = cards().length;
    setPhase("failing");
    hub.sink(check("a", false, 5));
    await clock.advance(600);
    assert.deepEqual(cards().slice(before).sort(), ["summary", "svc-a"]);
    await hub.close();
  });

  void it("streams resume from a version; another boot or a future version reloads; a slow client is dropped", async () => {
    const { clock, hub, check, setPhase } = setup();
    await hub.start();
    const v0 = hub.page().version;
    setPhase("failing");
    hub.sink(check("a", false, 5));
    await clock.advance(600);
    const later: string[] = [];
    hub.subscribe({ write: (c) => (later.push(c), true), end: () => undefined }, hub.boot, v0);
    assert.ok(later.some((c) => c.includes('"id":"svc-a"')), "the missed card");
    assert.ok(!later.some((c) => c.includes('"id":"svc-b"')), "not what it had");
    for (const [boot, since] of [["other", 0], [hub.boot, v0 + 1000]] as const) {
      const got: string[] = [];
      hub.subscribe({ write: (c) => (got.push(c), true), end: () => undefined }, boot, since);
      assert.ok(got.some((c) => c.startsWith("event: reload")));
    }
    let ended = false;
    hub.subscribe({ write: () => false, end: () => (ended = true) }, hub.boot, hub.page().version);
    setPhase("healthy");
    hub.sink(check("a", true, 5));
    await clock.advance(600);
    assert.equal(ended, true);
    assert.equal(hub.stats.dropped, 1);
    await hub.close();
  });

  void it("reads the deployment every minute, and soon after a remedy ends", async () => {
    const { clock, hub, reads } = setup();
    await hub.start();
    assert.equal(reads(), 1);
    await clock.advance(60_000);
    assert.equal(reads(), 2);
    hub.sink({ type: "action", at: new Date(clock.now()).toISOString(), service: "a", action: "restart", phase: "ok", detail: "restarted" });
    await clock.advance(2500);
    assert.equal(reads(), 3);
    await hub.close();
  });
});
