import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { request } from "undici";
import { parseListen, startEndpoint } from "../../src/monitor/http.ts";
import { LATENCY_BUCKETS, labelValue, MonitorMetrics } from "../../src/monitor/metrics.ts";
import type { CheckEvent } from "../../src/monitor/events.ts";

const at = "2025-01-01T10:00:00.000Z";

function check(service: string, ok: boolean, latencyMs: number, index = 0): CheckEvent {
  return { type: "check", at, service, check: "http http://{address}:80/", index, ok, latencyMs, detail: "" };
}

/** Parses Prometheus text: name{labels} value, and the TYPE lines. */
function parse(text: string): { types: Map<string, string>; samples: { name: string; labels: Record<string, string>; value: number }[] } {
  const types = new Map<string, string>();
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const t = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (t) {
      types.set(t[1] ?? "", t[2] ?? "");
      continue;
    }
    if (line.startsWith("# HELP ")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] ?? ""] = l[2] ?? "";
    samples.push({ name: m[1] ?? "", labels, value: Number(m[3]) });
  }
  return { types, samples };
}

void describe("metrics", () => {
  void it("renders valid Prometheus text: latency histogram, failures, remediations, health gauges", () => {
    const m = new MonitorMetrics();
    m.service("peach");
    m.service("quiet");
    m.sink(check("peach", true, 3));
    m.sink(check("peach", true, 40));
    m.sink(check("peach", false, 5000));
    m.sink({ type: "state", at, service: "peach", from: "failing", to: "unhealthy", reason: "" });
    m.sink({ type: "action", at, service: "peach", action: "restart", phase: "start", detail: "" });
    m.sink({ type: "action", at, service: "peach", action: "restart", phase: "ok", detail: "" });
    m.sink({ type: "action", at, service: "peach", action: "recreate", phase: "failed", detail: "" });
    m.sink({ type: "state", at, service: "quiet", from: "unknown", to: "healthy", reason: "" });
    const { types, samples } = parse(m.render());
    assert.equal(types.get("homelab_monitor_check_duration_seconds"), "histogram");
    assert.equal(types.get("homelab_monitor_check_failures_total"), "counter");
    assert.equal(types.get("homelab_monitor_remediations_total"), "counter");
    assert.equal(types.get("homelab_monitor_service_healthy"), "gauge");
    const get = (name: string, labels: Record<string, string>): number | undefined =>
      samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    const buckets = samples.filter((s) => s.name === "homelab_monitor_check_duration_seconds_bucket" && s.labels["service"] === "peach");
    assert.equal(buckets.length, LATENCY_BUCKETS.length + 1);
    // Cumulative and ending with +Inf = count.
    assert.ok(buckets.every((b, i) => i === 0 || b.value >= (buckets[i - 1]?.value ?? 0)));
    assert.equal(get("homelab_monitor_check_duration_seconds_bucket", { service: "peach", le: "0.005" }), 1);
    assert.equal(get("homelab_monitor_check_duration_seconds_bucket", { service: "peach", le: "0.05" }), 2);
    assert.equal(get("homelab_monitor_check_duration_seconds_bucket", { service: "peach", le: "+Inf" }), 3);
    assert.equal(get("homelab_monitor_check_duration_seconds_count", { service: "peach" }), 3);
    assert.equal(get("homelab_monitor_check_duration_seconds_sum", { service: "peach" }), 5.043);
    assert.equal(get("homelab_monitor_check_failures_total", { service: "peach", type: "http" }), 1);
    assert.equal(get("homelab_monitor_checks_total", { service: "peach" }), 3);
    assert.equal(get("homelab_monitor_remediations_total", { service: "peach", action: "restart", outcome: "ok" }), 1);
    assert.equal(get("homelab_monitor_remediations_total", { service: "peach", action: "recreate", outcome: "failed" }), 1);
    assert.equal(get("homelab_monitor_service_healthy", { service: "peach" }), 0);
    assert.equal(get("homelab_monitor_service_healthy", { service: "quiet" }), 1);
    assert.equal(get("homelab_monitor_service_state", { service: "peach", state: "unhealthy" }), 1);
    assert.equal(samples.filter((s) => s.name === "homelab_monitor_service_state" && s.labels["service"] === "peach" && s.value === 1).length, 1);
    // Every sample belongs to a declared family.
    for (const s of samples) assert.ok(types.has(s.name.replace(/_(bucket|sum|count)$/, "")) || types.has(s.name), s.name);
  });

  void it("does not grow with time: the text size is fixed by services and checks", () => {
    const m = new MonitorMetrics();
    m.sink(check("peach", true, 3));
    const before = m.render().length;
    for (let i = 0; i < 50_000; i++) m.sink(check("peach", i % 7 !== 0, i % 100));
    // Counters got longer numbers, nothing else.
    assert.ok(m.render().length - before < 200);
  });

  void it("escapes label values", () => {
    assert.equal(labelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
  });
});

void describe("HTTP endpoint", () => {
  void it("parses --listen: a port alone binds to loopback", () => {
    assert.deepEqual(parseListen("9464"), { host: "127.0.0.1", port: 9464 });
    assert.deepEqual(parseListen("0.0.0.0:9464"), { host: "0.0.0.0", port: 9464 });
    assert.deepEqual(parseListen("[::1]:9464"), { host: "::1", port: 9464 });
    assert.throws(() => parseListen("everywhere"), /PORT or ADDR:PORT/);
    assert.throws(() => parseListen("1.2.3.4:99999"), /PORT or ADDR:PORT/);
  });

  void it("serves /healthz and /metrics on 127.0.0.1; other paths 404, other methods 405", async () => {
    const m = new MonitorMetrics();
    m.sink(check("peach", true, 3));
    const ep = await startEndpoint(parseListen("0"), { health: () => ({ status: "ok", services: { peach: { phase: "healthy" } } }), metrics: () => m.render() });
    try {
      assert.match(ep.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const h = await request(`${ep.url}/healthz`);
      assert.equal(h.statusCode, 200);
      assert.deepEqual(await h.body.json(), { status: "ok", services: { peach: { phase: "healthy" } } });
      const mt = await request(`${ep.url}/metrics`);
      assert.equal(mt.statusCode, 200);
      assert.match(String(mt.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
      assert.match(await mt.body.text(), /homelab_monitor_checks_total\{service="peach",check="http http:\/\/\{address\}:80\/",type="http"\} 1/);
      const nf = await request(`${ep.url}/other`);
      assert.equal(nf.statusCode, 404);
      await nf.body.dump();
      const post = await request(`${ep.url}/metrics`, { method: "POST", body: "x" });
      assert.equal(post.statusCode, 405);
      await post.body.dump();
    } finally {
      await ep.close();
    }
  });
});
