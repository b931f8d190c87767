/**
 * Status page figures, with 200 services checked (generated services, http
 * checks against a local server in a child process, as in
 * bench/monitor-checks.ts), and 24 hours of results already in the charts
 * (every service's 96 bars drawn, as on a page that has run for a day):
 *  1. the monitor's CPU and memory (RSS, heap) with no page open;
 *  2. the page's load time in headless Chromium (Debian's, driven by
 *     playwright-core): first visit and reloads (navigation start to the
 *     load event), its size;
 *  3. the monitor's CPU and memory with the page open and live (server-sent
 *     events), and how many fragments it sent.
 * The monitor (checks, metrics, the page's hub and endpoint) runs in a child
 * process, measured from /proc; the browser and the check server in others.
 * Usage: node bench/status-page.ts [--services 200] [--interval 10] [--seconds 60]
 * (windows of 60 s or more see every card's response time redrawn: at most once a minute).
 */
import { execFileSync, fork, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Remediator } from "../src/monitor/actions.ts";
import { CheckRunner } from "../src/monitor/checks.ts";
import { systemClock } from "../src/monitor/clock.ts";
import { monitoredService, monitorSettings } from "../src/monitor/config.ts";
import type { MonitoredService } from "../src/monitor/config.ts";
import { fanOut } from "../src/monitor/events.ts";
import type { MonitorEvent } from "../src/monitor/events.ts";
import { MonitorMetrics } from "../src/monitor/metrics.ts";
import { Monitor } from "../src/monitor/monitor.ts";
import { StaticTargets } from "../src/monitor/targets.ts";
import { startStatusPage } from "../src/monitor/web/index.ts";
import type { ServiceStatusRow } from "../src/engine/status.ts";
import { BUCKET_MS, BUCKETS } from "../src/status/series.ts";

const { values } = parseArgs({ options: { services: { type: "string", default: "200" }, interval: { type: "string", default: "10" }, seconds: { type: "string", default: "60" }, child: { type: "string" } } });
const N = Number(values.services);
const INTERVAL = Number(values.interval);
const SECONDS = Number(values.seconds);

const noRemedy: Remediator = { restart: () => Promise.resolve("restarted"), recreate: () => Promise.resolve("recreated"), isDeploying: () => Promise.resolve({ deploying: false, detail: "" }) };
const name = (i: number): string => `svc${String(i).padStart(3, "0")}`;

/** The monitor with its page, in this (child) process; tells the parent its URL. */
async function child(port: number): Promise<void> {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const list: MonitoredService[] = Array.from({ length: N }, (_, i) =>
    monitoredService(
      {
        name: name(i),
        dir: "/nonexistent",
        resources: [{ id: "web", type: "proxmox:container", dependsOn: [], protect: false, index: 0, spec: { docker: { compose: true } } }],
        monitoring: { health_checks: [{ type: "http", url: `http://{address}:${port}/${name(i)}`, interval: INTERVAL, timeout: 5, retries: 3, expect_body: "ok" }], auto_remediate: true, max_remediations_per_hour: 3, grace_period: 30 },
      },
      monitorSettings({}),
    ),
  );
  gc();
  // The monitor's own part, before the page exists (what bench/monitor-checks.ts measures).
  const heapBefore = process.memoryUsage().heapUsed / 2 ** 20;
  const targets = new StaticTargets(list.map((s) => ({ service: s.name, deployed: true, containers: [{ id: "web", address: "127.0.0.1", protect: false }] })));
  const runner = new CheckRunner();
  for (const s of list) for (const c of s.checks) runner.prepare(c.key, c.check, s.dir);
  const metrics = new MonitorMetrics();
  const ref: { monitor?: Monitor; sink?: (e: MonitorEvent) => void } = {};
  const rows: ServiceStatusRow[] = list.map((s, i) => ({
    service: s.name,
    stack: `bench.${s.name}`,
    state: "deployed",
    lastUpdate: new Date(Date.now() - 3 * 86_400_000).toISOString(),
    resources: [{ id: "web", type: "homelab:proxmox:Container", node: `pve-0${(i % 3) + 1}`, vmid: 100 + i, address: `127.0.0.1`, template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", detail: undefined, protect: false }],
    pendingOperations: 0,
    lock: undefined,
  }));
  const node = (n: number) => ({ name: `pve-0${n}`, online: true, memTotal: 64 * 2 ** 30, memUsed: 20 * 2 ** 30, memFree: 44 * 2 ** 30, cpuCount: 16, cpuUsage: 0.2, cpuFree: 12.8 });
  const guests = rows.map((r, i) => ({ vmid: 100 + i, node: `pve-0${(i % 3) + 1}`, type: "lxc" as const, name: `${r.service}-web`, status: "running", tags: [], template: false, lock: undefined, memMax: 2 ** 29 }));
  const page = await startStatusPage({
    root: "/nonexistent",
    env: { name: "bench", file: undefined },
    listen: { host: "127.0.0.1", port: 0 },
    token: undefined,
    processEnv: {},
    backend: "file:///bench",
    names: undefined,
    config: new Map(list.map((s) => [s.name, { name: s.name, description: `generated service ${s.name}`, checks: s.checks.map((c) => ({ label: c.label, type: "http" as const, url: `http://{address}:${port}/${s.name}`, resource: undefined })) }])),
    snapshot: () => ref.monitor?.snapshot() ?? [],
    clock: systemClock,
    sources: { deployment: { read: () => Promise.resolve({ rows, deploys: new Map() }) }, nodes: { read: () => Promise.resolve({ nodes: [node(1), node(2), node(3)], guests }) } },
    health: () => ({ status: "ok" }),
    metrics: () => metrics.render(),
    onError: (m) => process.stderr.write(`${m}\n`),
  });
  // A day of results already in the charts: one check per service per bucket, a few failures.
  const now = Date.now();
  const past: MonitorEvent[] = [];
  for (let b = BUCKETS - 1; b >= 1; b--) {
    for (let i = 0; i < N; i++) past.push({ type: "check", at: new Date(now - b * BUCKET_MS).toISOString(), service: name(i), check: "http", index: 0, ok: (i + b) % 37 !== 0, latencyMs: 2 + ((i * b) % 40), detail: "status 200" });
  }
  page.hub.seed(past);
  past.length = 0;
  page.hub.page();
  const monitor = new Monitor({ services: list, clock: systemClock, targets, runCheck: (c, t, signal) => runner.run(c.key, c.check, t, signal), remediator: noRemedy, sink: fanOut([metrics.sink, page.sink]), concurrency: 16, maxJitterMs: INTERVAL * 1000 });
  ref.monitor = monitor;
  monitor.start();
  process.send?.({ url: page.url });
  process.on("message", (m: { stats?: boolean }) => {
    if (!m.stats) return;
    gc();
    process.send?.({ stats: { ...page.hub.stats, clients: page.hub.clients, heapMiB: process.memoryUsage().heapUsed / 2 ** 20, heapBeforeMiB: heapBefore, checks: monitor.stats.completed } });
  });
}

/** CPU seconds (user + system) and RSS of a process, from /proc. */
function usage(pid: number, tick: number): { cpu: number; rssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpu = (Number(fields[11]) + Number(fields[12])) / tick;
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return { cpu, rssMiB: Number(rss) / 1024 };
}

async function window(pid: number, tick: number, seconds: number): Promise<{ cpuPct: number; rssMiB: number }> {
  const a = usage(pid, tick);
  const t = Date.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const b = usage(pid, tick);
  return { cpuPct: ((b.cpu - a.cpu) / ((Date.now() - t) / 1000)) * 100, rssMiB: b.rssMiB };
}

function ask(c: ChildProcess): Promise<Record<string, number>> {
  return new Promise((resolve) => {
    const on = (m: { stats?: Record<string, number> }): void => {
      if (!m.stats) return;
      c.off("message", on);
      resolve(m.stats);
    };
    c.on("message", on);
    c.send({ stats: true });
  });
}

async function main(): Promise<void> {
  const tick = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  const serverCode = `
    const http = require("node:http");
    const s = http.createServer((req, res) => res.writeHead(200, { "content-type": "text/plain" }).end("ok " + req.url));
    s.listen(0, "127.0.0.1", () => process.send(s.address().port));`;
  const server = spawn(process.execPath, ["-e", serverCode], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
  const port = await new Promise<number>((resolve) => server.once("message", (m) => resolve(Number(m))));
  const mon = fork(fileURLToPath(import.meta.url), ["--child", String(port), "--services", String(N), "--interval", String(INTERVAL)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  try {
    const url = await new Promise<string>((resolve) => mon.on("message", (m: { url?: string }) => m.url && resolve(m.url)));
    const pid = mon.pid ?? 0;
    // Let the first round of checks pass (jitter spreads them over one interval).
    await new Promise((r) => setTimeout(r, (INTERVAL + 2) * 1000));
    console.log(`${N} services, one http check each every ${INTERVAL} s, 24 h of results in every chart; ${SECONDS} s per window`);
    const idle = await window(pid, tick, SECONDS);
    const s0 = await ask(mon);
    console.log(`1. no page open:   monitor CPU ${idle.cpuPct.toFixed(1)}% of one core, RSS ${idle.rssMiB.toFixed(0)} MiB, heap after GC ${s0["heapMiB"]?.toFixed(1)} MiB (${s0["heapBeforeMiB"]?.toFixed(1)} MiB before the monitor and page were made)`);

    // Loaded here, not in the monitor's process (its heap is measured).
    const { launchChromium } = await import("../test/helpers/chromium.ts");
    const chromium = await launchChromium();
    try {
      const page = await chromium.context.newPage();
      const loads: Array<{ load: number; dcl: number; bytes: number }> = [];
      for (let i = 0; i < 6; i++) {
        if (i === 0) await page.goto(`${url}/`, { waitUntil: "load" });
        else await page.reload({ waitUntil: "load" });
        loads.push(await page.evaluate<{ load: number; dcl: number; bytes: number }>(`(() => { const n = performance.getEntriesByType("navigation")[0]; return { load: n.loadEventEnd, dcl: n.domContentLoadedEventEnd, bytes: n.transferSize || n.encodedBodySize }; })()`));
      }
      const cards = await page.locator("article.card").count();
      const bars = await page.locator("svg.chart path").count();
      const warm = loads.slice(1).map((l) => l.load).sort((a, b) => a - b);
      console.log(`2. page load (${cards} cards, ${bars} chart paths, ${((loads[0]?.bytes ?? 0) / 1024).toFixed(0)} KiB transferred, gzip):`);
      console.log(`   first visit ${loads[0]?.load.toFixed(0)} ms to the load event (DOM ready ${loads[0]?.dcl.toFixed(0)} ms); reloads: median ${warm[2]?.toFixed(0)} ms, max ${warm[4]?.toFixed(0)} ms`);
      await page.waitForSelector("#live.on", { timeout: 10_000 });
      // The version the page shows: the last event it applied, else the one it was served at.
      const v0 = Number(await page.getAttribute("html", "data-version")) || Number((await page.getAttribute('meta[name="homelab-stream"]', "content"))?.split(":")[1]) || 0;
      const s1 = await ask(mon);
      const open = await window(pid, tick, SECONDS);
      const s2 = await ask(mon);
      const v1 = Number(await page.getAttribute("html", "data-version")) || 0;
      console.log(`3. page open, live: monitor CPU ${open.cpuPct.toFixed(1)}% of one core, RSS ${open.rssMiB.toFixed(0)} MiB, heap after GC ${s2["heapMiB"]?.toFixed(1)} MiB`);
      console.log(
        `   in ${SECONDS} s: ${((s2["checks"] ?? 0) - (s1["checks"] ?? 0))} checks, ${((s2["sent"] ?? 0) - (s1["sent"] ?? 0))} fragments sent, ${((s2["rendered"] ?? 0) - (s1["rendered"] ?? 0))} rendered in ${((s2["flushes"] ?? 0) - (s1["flushes"] ?? 0))} flushes; the page's version moved ${v1 - v0}`,
      );
    } finally {
      await chromium.close();
    }
  } finally {
    mon.kill();
    server.kill();
  }
}

if (values.child !== undefined) await child(Number(values.child));
else await main();
