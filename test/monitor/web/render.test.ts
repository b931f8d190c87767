import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Script } from "node:vm";
import { ASSETS, assetAt } from "../../../src/monitor/web/assets.ts";
import { ago, bytes, esc, fragmentsOf, renderPage, serviceCard, shortTemplate, uptimeChart } from "../../../src/monitor/web/render.ts";
import { buildStatusModel } from "../../../src/status/model.ts";
import type { ModelInput } from "../../../src/status/model.ts";
import { BUCKET_MS, RecentHistory, UptimeSeries } from "../../../src/status/series.ts";

const NOW = Date.UTC(2025, 5, 1, 12, 0, 0);
const iso = (ms: number): string => new Date(ms).toISOString();
const EVIL = `<script>alert("x")</script><img src=x onerror=alert(1)>`;

function model(o: Partial<ModelInput> = {}) {
  return buildStatusModel({
    environment: "test",
    backend: "file:///x",
    now: NOW,
    config: new Map([
      ["web", { name: "web", description: `Web ${EVIL}`, checks: [{ label: `http http://{address}/${EVIL}`, type: "http", url: "http://{address}:8080/x", resource: undefined }] }],
      ["idle", { name: "idle", description: undefined, checks: [] }],
    ]),
    rows: [
      { service: "web", stack: "test.web", state: "deployed", lastUpdate: iso(NOW - 7_200_000), resources: [{ id: "web_ct", type: "homelab:proxmox:Container", node: "pve-01", vmid: 104, address: "10.0.0.9", template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", detail: undefined, protect: true }], pendingOperations: 0, lock: undefined },
      { service: "idle", stack: "test.idle", state: "never-deployed", lastUpdate: undefined, resources: [], pendingOperations: 0, lock: undefined },
    ],
    monitor: {
      source: "live",
      updatedAt: iso(NOW),
      pid: 1,
      hostname: "h",
      running: true,
      services: [{ service: "web", phase: "unhealthy", reason: "check 1 failed 2/2", since: iso(NOW - 30_000), lastRemediation: undefined, remediationsLastHour: 0, checks: [{ label: `http http://{address}/${EVIL}`, ok: false, detail: `status 503 ${EVIL}`, at: iso(NOW - 1000) }] }],
    },
    series: undefined,
    history: undefined,
    deploys: new Map(),
    previews: new Map(),
    nodes: { at: iso(NOW), nodes: [{ name: "pve-01", online: true, memTotal: 8 * 2 ** 30, memUsed: 2 * 2 ** 30, memFree: 6 * 2 ** 30, cpuCount: 4, cpuUsage: 0.1, cpuFree: 3.6 }], guests: [{ vmid: 104, node: "pve-01", type: "lxc", name: "web-ct", status: "running", tags: [], template: false, lock: undefined, memMax: 0 }] },
    ...o,
  });
}

void describe("status page rendering", () => {
  void it("escapes every text from the model: no markup of theirs reaches the page", () => {
    assert.equal(esc(`<a href="x">'&'</a>`), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    const html = fragmentsOf(model(), NOW).map((f) => f.html).join("");
    assert.ok(!html.includes("<script"), html);
    assert.ok(!html.includes("<img"), html);
    assert.match(html, /Web &lt;script&gt;alert\(&quot;x&quot;\)&lt;\/script&gt;/);
  });

  void it("an unhealthy card: red level, the failing check and reason, since when; placement, links, nodes", () => {
    const m = model();
    const card = serviceCard(m.services.find((s) => s.service === "web") ?? assert.fail(), NOW);
    assert.match(card, /^<article class="card lvl-unhealthy" id="svc-web" data-level="unhealthy">/);
    assert.match(card, /<span class="badge">Unhealthy<\/span>/);
    assert.match(card, /<p class="why"><b>http http:\/\/\{address\}\/&lt;script.*<\/b>: status 503 /);
    assert.match(card, /unhealthy since <time datetime="2025-06-01T11:59:30.000Z"[^>]*>30 s ago<\/time>/);
    assert.match(card, /pve-01 · CT 104 · 10\.0\.0\.9 · debian-12-standard_12\.7-1 <span class="tag">protected<\/span>/);
    assert.match(card, /<a href="http:\/\/10\.0\.0\.9:8080\/" rel="noopener noreferrer" target="_blank">/);
    assert.match(card, /<dt>Deployed<\/dt><dd><time[^>]*>2 h ago<\/time><\/dd>/);
    const idle = serviceCard(m.services.find((s) => s.service === "idle") ?? assert.fail(), NOW);
    assert.match(idle, /lvl-never_deployed/);
    assert.match(idle, /Never deployed/);
    assert.doesNotMatch(idle, /class="perf"/, "no chart for a service without checks");
    const nodes = fragmentsOf(m, NOW).find((f) => f.id === "nodes")?.html ?? "";
    assert.match(nodes, /<b>2\.0 GiB<\/b> used<\/span><span><b>6\.0 GiB<\/b> free/);
    assert.match(nodes, /CT 104<\/span> web-ct <a href="#svc-web">web<\/a>/);
    assert.match(nodes, /width="25"/);
    const summary = fragmentsOf(m, NOW)[0]?.html ?? "";
    assert.match(summary, /<li class="pill lvl-unhealthy"><b>1<\/b> unhealthy<\/li>/);
    assert.match(summary, /Needs attention: <a href="#svc-web">web<\/a>/);
  });

  void it("the chart: one bar per 15 minutes, ok / partial / down, labelled for screen readers", () => {
    const s = new UptimeSeries();
    const base = Math.floor(NOW / BUCKET_MS) * BUCKET_MS;
    s.record("a", base - 2 * BUCKET_MS, true, 10);
    s.record("a", base - BUCKET_MS, true, 40);
    s.record("a", base - BUCKET_MS, false, 0);
    s.record("a", base, false, 0);
    const svg = uptimeChart(s.view("a", base + 1) ?? null, base + 1);
    assert.match(svg, /<path class="bar-ok" d="M280\.2 40V31"\/>/);
    assert.match(svg, /<path class="bar-partial" d="M283\.2 40V4"\/>/);
    assert.match(svg, /<path class="bar-down" d="M286\.2 40V0"\/>/);
    assert.match(svg, /aria-label="uptime 50\.0% over the last 24 h, response time 25 ms on average, at most 40 ms in a 15-minute slot"/);
    assert.match(uptimeChart(null, NOW), /no check results yet/);
  });

  void it("history lines: remedies and state changes, newest first", () => {
    const h = new RecentHistory();
    h.record({ type: "action", at: iso(NOW - 20_000), service: "web", action: "restart", phase: "start", detail: "check 1 failed 2/2" });
    h.record({ type: "action", at: iso(NOW - 10_000), service: "web", action: "restart", phase: "failed", detail: "ssh: timed out" });
    const card = serviceCard(model({ history: h }).services.find((s) => s.service === "web") ?? assert.fail(), NOW);
    assert.match(card, /<details class="history" data-key="history"><summary>History <span class="muted">\(2 event\(s\)\)<\/span><\/summary><ol><li class="bad"><time[^>]*>10 s ago<\/time> <b>restart failed<\/b>: ssh: timed out<\/li><li class=""><time[^>]*>20 s ago<\/time> <b>restart started<\/b>/);
  });

  void it("the page: no inline script or style (its CSP allows neither), assets by hashed names, the stream's resume point", () => {
    const page = renderPage(fragmentsOf(model(), NOW), { environment: "test", css: ASSETS.css.path, js: ASSETS.js.path, icon: ASSETS.icon.path, boot: "b00t", version: 42 });
    assert.doesNotMatch(page, /<script(?![^>]*\bsrc=)/);
    // Inside tags (escaped text may say anything).
    for (const tag of page.match(/<[a-z][^>]*>/gi) ?? []) assert.doesNotMatch(tag, /^<style|\sstyle=|\son[a-z]+=/i, tag);
    assert.match(page, /<meta name="homelab-stream" content="b00t:42">/);
    assert.match(page, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
    assert.match(page, /<link rel="stylesheet" href="assets\/style\.[0-9a-f]{12}\.css">/);
    assert.equal(assetAt(ASSETS.js.path), ASSETS.js);
    assert.equal(assetAt("assets/nope.js"), undefined);
    // The script parses, and the stylesheet has a dark mode.
    new Script(ASSETS.js.body.toString("utf8"));
    assert.match(ASSETS.css.body.toString("utf8"), /@media \(prefers-color-scheme: dark\)/);
  });

  void it("small helpers: ages, sizes, template names", () => {
    assert.equal(ago(iso(NOW - 2000), NOW), "just now");
    assert.equal(ago(iso(NOW - 45_000), NOW), "45 s ago");
    assert.equal(ago(iso(NOW - 600_000), NOW), "10 min ago");
    assert.equal(ago(iso(NOW - 3 * 86_400_000), NOW), "3 days ago");
    assert.equal(bytes(512 * 2 ** 20), "512 MiB");
    assert.equal(bytes(1.5 * 2 ** 30), "1.5 GiB");
    assert.equal(shortTemplate("local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"), "ubuntu-24.04-standard_24.04-2");
  });
});
