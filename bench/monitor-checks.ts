/**
 * Monitor figures:
 *  1. HTTP checks per second one monitor sustains for 200 checks against a
 *     local server (the server runs in a child process, so it does not share
 *     this event loop): a) 200 checks due every second for --seconds, on the
 *     real clock: completed per second, latency p50/p99, CPU; b) flat out:
 *     all 200 checks back to back (concurrency 16) for --seconds.
 *  2. Memory over simulated hours (manual clock): 200 checks every 10 s with
 *     flapping services and remediations, every sink on (metrics, history
 *     file, state file, a discarding printer); heap after GC each hour.
 * Usage: node --expose-gc bench/monitor-checks.ts [--seconds 10] [--hours 3]
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Remediator } from "../src/monitor/actions.ts";
import { CheckRunner } from "../src/monitor/checks.ts";
import { ManualClock, systemClock } from "../src/monitor/clock.ts";
import { monitoredService, monitorSettings } from "../src/monitor/config.ts";
import type { MonitoredService } from "../src/monitor/config.ts";
import { fanOut, HistoryFile, printer } from "../src/monitor/events.ts";
import type { MonitorEvent } from "../src/monitor/events.ts";
import { MonitorMetrics } from "../src/monitor/metrics.ts";
import { Monitor } from "../src/monitor/monitor.ts";
import { mapLimit } from "../src/monitor/scheduler.ts";
import { StateFileWriter } from "../src/monitor/status.ts";
import { StaticTargets } from "../src/monitor/targets.ts";

const { values } = parseArgs({ options: { seconds: { type: "string", default: "10" }, hours: { type: "string", default: "3" }, checks: { type: "string", default: "200" } } });
const SECONDS = Number(values.seconds);
const HOURS = Number(values.hours);
const N = Number(values.checks);

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

function services(n: number, interval: number, url: string): MonitoredService[] {
  return Array.from({ length: n }, (_, i) =>
    monitoredService(
      {
        name: `svc${String(i).padStart(3, "0")}`,
        dir: "/nonexistent",
        resources: [{ id: "web", type: "proxmox:container", dependsOn: [], protect: i % 10 === 0, index: 0, spec: { docker: { compose: true } } }],
        monitoring: { health_checks: [{ type: "http", url, interval, timeout: 5, retries: 3, expect_body: "ok" }], auto_remediate: true, max_remediations_per_hour: 3, grace_period: 30 },
      },
      monitorSettings({}),
    ),
  );
}

function targets(list: MonitoredService[]): StaticTargets {
  return new StaticTargets(list.map((s) => ({ service: s.name, deployed: true, containers: [{ id: "web", address: "127.0.0.1", protect: false }] })));
}

const noRemedy: Remediator = {
  restart: () => Promise.resolve("restarted"),
  recreate: () => Promise.resolve("recreated"),
  isDeploying: () => Promise.resolve({ deploying: false, detail: "" }),
};

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
}

async function startServer(): Promise<{ port: number; stop: () => void }> {
  const code = `
    const http = require("node:http");
    const s = http.createServer((req, res) => res.writeHead(200, { "content-type": "text/plain" }).end("ok " + req.url));
    s.listen(0, "127.0.0.1", () => process.send(s.address().port));`;
  const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
  const port = await new Promise<number>((resolve) => child.once("message", (m) => resolve(Number(m))));
  return { port, stop: () => child.kill() };
}

async function throughput(): Promise<void> {
  const server = await startServer();
  const url = `http://{address}:${server.port}/health`;
  try {
    // a) 200 checks, each due every second, on the real clock.
    const list = services(N, 1, url);
    const runner = new CheckRunner();
    for (const s of list) for (const c of s.checks) runner.prepare(c.key, c.check, s.dir);
    const latencies: number[] = [];
    let failures = 0;
    const monitor = new Monitor({
      services: list,
      clock: systemClock,
      targets: targets(list),
      runCheck: (c, t, signal) => runner.run(c.key, c.check, t, signal),
      remediator: noRemedy,
      concurrency: 16,
      maxJitterMs: 1000,
      sink: (e) => {
        if (e.type !== "check") return;
        latencies.push(e.latencyMs);
        if (!e.ok) failures++;
      },
    });
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    monitor.start();
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    await monitor.stop();
    const wall = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    latencies.sort((a, b) => a - b);
    console.log(`1a. ${N} http checks every 1 s for ${SECONDS} s (real clock, concurrency 16):`);
    console.log(`    ${(latencies.length / wall).toFixed(0)} checks/s completed (demand ${N}/s), ${failures} failed`);
    console.log(`    latency p50 ${pct(latencies, 0.5).toFixed(2)} ms, p99 ${pct(latencies, 0.99).toFixed(2)} ms; monitor CPU ${(((cpu.user + cpu.system) / 1e6 / wall) * 100).toFixed(0)}% of one core`);

    // b) flat out: all checks back to back.
    const checks = list.flatMap((s) => s.checks);
    const signal = new AbortController().signal;
    const t = { service: "x", resource: "web", address: "127.0.0.1" };
    let done = 0;
    const cpu1 = process.cpuUsage();
    const t1 = performance.now();
    while (performance.now() - t1 < SECONDS * 1000) {
      await mapLimit(checks, 16, async (c) => {
        await runner.run(c.key, c.check, t, signal);
        done++;
      });
    }
    const wall2 = (performance.now() - t1) / 1000;
    const cpu2 = process.cpuUsage(cpu1);
    console.log(`1b. flat out, ${N} checks back to back (concurrency 16): ${(done / wall2).toFixed(0)} checks/s, monitor CPU ${(((cpu2.user + cpu2.system) / 1e6 / wall2) * 100).toFixed(0)}% of one core`);
    await runner.close();
  } finally {
    server.stop();
  }
}

async function memory(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "homelab-bench-monitor-"));
  try {
    const clock = new ManualClock(Date.UTC(2025, 0, 1));
    const list = services(N, 10, "http://{address}:80/");
    let events = 0;
    const metrics = new MonitorMetrics();
    const history = new HistoryFile(join(dir, "history.jsonl"));
    const ref: { monitor?: Monitor } = {};
    const state = new StateFileWriter(join(dir, "state.json"), () => ({ environment: "bench", updatedAt: new Date(clock.now()).toISOString(), pid: process.pid, hostname: "bench", services: ref.monitor?.snapshot() ?? [] }));
    const sink = fanOut([printer(() => undefined, { json: true }), metrics.sink, history.sink, state.sink, (_e: MonitorEvent) => void events++]);
    // A tenth of the services flap (down 2 min every 7 min); the rest are healthy.
    const monitor = new Monitor({
      services: list,
      clock,
      targets: targets(list),
      runCheck: (c) => {
        const flappy = Number(c.key.slice(3, 6)) % 10 === 1;
        const ok = !flappy || Math.floor(clock.now() / 60_000) % 7 >= 2;
        return Promise.resolve({ ok, latencyMs: 1 + (c.index % 5), detail: ok ? "status 200 (1 ms)" : "status 503, expected 2xx/3xx (1 ms)" });
      },
      remediator: noRemedy,
      sink,
      concurrency: 16,
    });
    ref.monitor = monitor;
    monitor.start();
    const heap = (): number => {
      gc();
      return process.memoryUsage().heapUsed / 1024 / 1024;
    };
    const figures: string[] = [];
    const h0 = heap();
    const t0 = performance.now();
    for (let h = 1; h <= HOURS; h++) {
      for (let m = 0; m < 60; m++) {
        await clock.advance(60_000, 1);
        await history.flush();
        await state.flush();
      }
      figures.push(`hour ${h}: ${heap().toFixed(1)} MiB`);
    }
    const wall = (performance.now() - t0) / 1000;
    const stop = monitor.stop();
    await clock.advance(60_000);
    await stop;
    await history.flush();
    const remediations = metrics.render().match(/^homelab_monitor_remediations_total\{.*\} (\d+)$/gm)?.reduce((n, l) => n + Number(l.split(" ").pop()), 0) ?? 0;
    console.log(`2.  ${HOURS} simulated hour(s) of ${N} checks every 10 s (${monitor.stats.completed} checks, ${events} events, ${remediations} remediations) in ${wall.toFixed(1)} s:`);
    console.log(`    heap after GC: start ${h0.toFixed(1)} MiB; ${figures.join("; ")}`);
    console.log(`    history ${(statSync(join(dir, "history.jsonl")).size / 1024).toFixed(0)} KiB + rotated ${(statSync(join(dir, "history.jsonl.1")).size / 1024).toFixed(0)} KiB (bounded at 1024 KiB each)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await throughput();
await memory();
