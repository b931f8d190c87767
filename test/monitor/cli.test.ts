import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { request } from "undici";
import { runMonitor } from "../../src/cli/commands/monitor.ts";
import { makeContext } from "../../src/cli/context.ts";
import type { CliContext } from "../../src/cli/context.ts";
import { EXIT } from "../../src/cli/exit-codes.ts";
import type { Remediator } from "../../src/monitor/actions.ts";
import { ManualClock } from "../../src/monitor/clock.ts";
import type { MonitorEvent } from "../../src/monitor/events.ts";
import { readMonitorState } from "../../src/monitor/status.ts";
import { StaticTargets } from "../../src/monitor/targets.ts";
import { makeRepo } from "../helpers/repo.ts";
import { startServer } from "./helpers.ts";
import type { TestServer } from "./helpers.ts";

function serviceYaml(name: string, port: number, extra = ""): string {
  return [
    `name: ${name}`,
    "resources:",
    "  - id: web",
    "    type: proxmox:container",
    "    image: { name: \"*debian*\", version: \">=12\" }",
    "    host: { tags: [tier:1] }",
    "    docker: { compose: true }",
    "monitoring:",
    "  health_checks:",
    `    - { type: http, url: "http://{address}:${port}/health", interval: 10, timeout: 2, retries: 2 }`,
    "  auto_remediate: true",
    extra,
    "",
  ].join("\n");
}

function repoWith(services: Record<string, string>, env = ""): { root: string; cleanup: () => void } {
  const files: Record<string, string> = {};
  for (const [name, yaml] of Object.entries(services)) {
    files[`services/${name}/service.yaml`] = yaml;
    files[`services/${name}/docker-compose.yaml`] = "services:\n  app:\n    image: nginx:1.27\n";
  }
  if (env) files["Pulumi.test.yaml"] = env;
  return makeRepo(files);
}

function capture(root: string): { ctx: CliContext; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const ctx = { ...makeContext({ dir: root, env: "test", color: false }, {}), stdout: (s: string) => void out.push(s), stderr: (s: string) => void err.push(s) };
  return { ctx, out, err };
}

const deployed = (...names: string[]) => new StaticTargets(names.map((service) => ({ service, deployed: true, containers: [{ id: "web", address: "127.0.0.1", protect: false }] })));

function fakeRemediator(log: string[]): Remediator {
  return {
    restart: (s) => Promise.resolve(void log.push(`restart ${s}`)).then(() => "restarted"),
    recreate: (s) => Promise.resolve(void log.push(`recreate ${s}`)).then(() => "recreated"),
    isDeploying: () => Promise.resolve({ deploying: false, detail: "" }),
  };
}

void describe("homelab monitor --once", () => {
  let up: TestServer;
  let down: TestServer;
  const repos: { cleanup: () => void }[] = [];
  after(async () => {
    await up?.close();
    await down?.close();
    for (const r of repos) r.cleanup();
  });

  void it("exits 0 when every service is healthy, 1 when one is not; repairs nothing", async () => {
    up = await startServer((_r, res) => res.writeHead(200).end("ok"));
    down = await startServer((_r, res) => res.writeHead(500).end("broken"));
    const repo = repoWith({ good: serviceYaml("good", up.port), bad: serviceYaml("bad", down.port) });
    repos.push(repo);
    const log: string[] = [];
    const one = capture(repo.root);
    assert.equal(await runMonitor(one.ctx, ["good"], { once: true }, { targets: deployed("good"), remediator: fakeRemediator(log), onceRetryDelayMs: 0 }), EXIT.ok);
    assert.match(one.out.join(""), /all healthy\n {2}healthy {2}good/);
    const both = capture(repo.root);
    assert.equal(await runMonitor(both.ctx, [], { once: true }, { targets: deployed("good", "bad"), remediator: fakeRemediator(log), onceRetryDelayMs: 0 }), EXIT.failed);
    const text = both.out.join("");
    assert.match(text, /1 of 2 service\(s\) unhealthy/);
    assert.match(text, /UNHEALTHY {2}bad: http http:\/\/\{address\}:\d+\/health: status 500/);
    // Two tries of the failing check (its retries), one of the healthy one.
    assert.equal(down.seen.length, 2);
    assert.deepEqual(log, []);
    // The current view is kept for `homelab status`.
    const state = await readMonitorState(repo.root, "test");
    assert.deepEqual(state?.services.map((s) => [s.service, s.phase]), [["bad", "unhealthy"], ["good", "healthy"]]);
    assert.ok(existsSync(join(repo.root, ".homelab", "monitor", "test", "history.jsonl")));
  });

  void it("a service that is not deployed is unhealthy for --once", async () => {
    const repo = repoWith({ good: serviceYaml("good", up.port) });
    repos.push(repo);
    const c = capture(repo.root);
    assert.equal(await runMonitor(c.ctx, [], { once: true }, { targets: new StaticTargets([]), remediator: fakeRemediator([]), onceRetryDelayMs: 0 }), EXIT.failed);
    assert.match(c.out.join(""), /NOT CHECKED {2}good: .*not deployed/);
  });

  void it("--json prints one JSON event per line and no summary", async () => {
    const repo = repoWith({ good: serviceYaml("good", up.port) });
    repos.push(repo);
    const c = capture(repo.root);
    assert.equal(await runMonitor(c.ctx, [], { once: true, json: true }, { targets: deployed("good"), remediator: fakeRemediator([]), onceRetryDelayMs: 0 }), EXIT.ok);
    const events = c.out.join("").trim().split("\n").map((l) => JSON.parse(l) as MonitorEvent);
    assert.ok(events.some((e) => e.type === "check" && e.ok && e.service === "good"));
    assert.ok(events.some((e) => e.type === "state" && e.to === "healthy"));
  });

  void it("no service with health checks: nothing to do (exit 0 with --once, 1 without)", async () => {
    const repo = repoWith({ plain: serviceYaml("plain", 1).replace(/monitoring:[\s\S]*$/, "") });
    repos.push(repo);
    const c = capture(repo.root);
    assert.equal(await runMonitor(c.ctx, [], { once: true }, { targets: deployed(), remediator: fakeRemediator([]) }), EXIT.ok);
    assert.match(c.err.join(""), /nothing to monitor/);
    assert.equal(await runMonitor(capture(repo.root).ctx, [], {}, { targets: deployed(), remediator: fakeRemediator([]) }), EXIT.failed);
  });

  void it("bad TLS settings stop the start with the check named", async () => {
    const repo = repoWith({ tls: serviceYaml("tls", 1).replace('timeout: 2, retries: 2 }', 'timeout: 2, retries: 2, tls: { ca_file: missing.pem } }') });
    repos.push(repo);
    const c = capture(repo.root);
    assert.equal(await runMonitor(c.ctx, [], { once: true }, { targets: deployed("tls"), remediator: fakeRemediator([]) }), EXIT.failed);
    assert.match(c.err.join(""), /tls: health check 1 \(http .*\): cannot read tls.caFile/);
  });
});

void describe("homelab monitor (long-running, fake clock)", () => {
  void it("a webhook token that cannot be read stops the start, naming the reference", async () => {
    const env = ["config:", "  homelab:monitor:", "    webhook:", "      kind: gotify", "      url: https://gotify.lan", "      token_env: GOTIFY_TOKEN", ""].join("\n");
    const repo = repoWith({ peach: serviceYaml("peach", 1) }, env);
    try {
      const c = capture(repo.root);
      assert.equal(await runMonitor(c.ctx, [], {}, { processEnv: {}, targets: deployed("peach"), remediator: fakeRemediator([]) }), EXIT.failed);
      assert.match(c.err.join(""), /homelab:monitor webhook: token_env names GOTIFY_TOKEN, which is not set\n {2}hint: export GOTIFY_TOKEN/);
    } finally {
      repo.cleanup();
    }
  });

  void it("checks, repairs, notifies the webhook, serves /healthz and /metrics, and stops cleanly", async () => {
    const hook = await startServer((_r, res) => res.writeHead(200).end("{}"));
    const env = ["config:", "  homelab:monitor:", "    webhook:", "      kind: json", `      url: ${hook.url}/hook`, "      token_env: HOOK_TOKEN", ""].join("\n");
    const repo = repoWith({ peach: serviceYaml("peach", 1) }, env);
    const clock = new ManualClock(Date.UTC(2025, 0, 1));
    const log: string[] = [];
    let healthy = false;
    const remediator = fakeRemediator(log);
    remediator.restart = (s) => {
      log.push(`restart ${s}`);
      healthy = true;
      return Promise.resolve("restarted");
    };
    const stop = new AbortController();
    let url = "";
    const c = capture(repo.root);
    try {
      const running = runMonitor(c.ctx, [], { listen: "127.0.0.1:0" }, {
        processEnv: { HOOK_TOKEN: "hook-secret" },
        clock,
        targets: deployed("peach"),
        remediator,
        runCheck: () => Promise.resolve(healthy ? { ok: true, latencyMs: 2, detail: "status 200" } : { ok: false, latencyMs: 2, detail: "status 503" }),
        signal: stop.signal,
        onListening: (u) => (url = u),
      });
      while (url === "") await new Promise((r) => setImmediate(r));
      await clock.advance(5 * 60_000);
      assert.deepEqual(log, ["restart peach"]);
      const health = (await (await request(`${url}/healthz`)).body.json()) as { status: string; services: Record<string, { phase: string }> };
      assert.equal(health.status, "ok");
      assert.equal(health.services["peach"]?.phase, "healthy");
      const metrics = await (await request(`${url}/metrics`)).body.text();
      assert.match(metrics, /homelab_monitor_remediations_total\{service="peach",action="restart",outcome="ok"\} 1/);
      assert.match(metrics, /homelab_monitor_service_healthy\{service="peach"\} 1/);
      stop.abort();
      assert.equal(await running, EXIT.ok);
      const sent = hook.seen.map((s) => (JSON.parse(s.body) as { to: string }).to);
      assert.deepEqual(sent, ["unhealthy", "restarting", "healthy"]);
      assert.ok(hook.seen.every((s) => s.headers["authorization"] === "Bearer hook-secret"));
      assert.ok(!c.out.join("").includes("hook-secret"));
      const history = readFileSync(join(repo.root, ".homelab", "monitor", "test", "history.jsonl"), "utf8").trim().split("\n");
      assert.ok(history.length >= 8);
      assert.equal((await readMonitorState(repo.root, "test"))?.services[0]?.lastRemediation?.action, "restart");
    } finally {
      stop.abort();
      await hook.close();
      repo.cleanup();
    }
  });
});
